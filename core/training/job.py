"""The training job: `python -m core train --run RUN_DIR [--resume]`.

Reads RUN/config.json, trains with the chosen backend through TRL's SFTTrainer, streams
events.jsonl, writes TensorBoard logs to RUN/tb/, checkpoints to RUN/checkpoints/, and the result
to RUN/adapter/ (LoRA family: a standard PEFT adapter) or RUN/model/ (full fine-tune). Runs
unchanged under `accelerate launch`: only rank 0 writes events and outputs.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from pathlib import Path

from core.errors import StudioError
from core.fsutil import atomic_dir, atomic_write_json
from core.training.config import TrainConfig
from core.training.events import EventWriter, oom_hint

BACKEND_FILE = "backend.json"


def last_checkpoint(run_dir: Path) -> Path | None:
    ckpts = [p for p in (Path(run_dir) / "checkpoints").glob("checkpoint-*")
             if p.is_dir() and p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(ckpts, key=lambda p: int(p.name.split("-")[-1])) if ckpts else None


def _scrub(text: str) -> str:
    """The HF token must never reach events or logs, even inside a library's error message."""
    from core.secrets import scrub
    return scrub(text)


def _end(writer, status: str, **fields) -> None:
    """The end event; when even that cannot be written (disk full), say so on stderr (log.txt)."""
    try:
        writer.end(status, **fields)
    except OSError as e:
        print(f"could not write the end event ({status}): {e}", file=sys.stderr)


def sft_args(cfg: TrainConfig, hw, run_dir: Path, precision: str, has_eval: bool, overrides: dict,
             n_train: int = 0, world: int = 1):
    from trl import SFTConfig

    # eval_steps -1: about 10 points per run, from the steps it will take (TrainConfig.resolved_eval_steps)
    eval_every = cfg.resolved_eval_steps(cfg.planned_steps(n_train, world)) if has_eval else None
    kwargs = dict(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate, lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # a float below 1 is a share of the total steps
        num_train_epochs=cfg.num_epochs, max_steps=cfg.max_steps,
        weight_decay=cfg.weight_decay, max_grad_norm=cfg.max_grad_norm,
        optim=cfg.resolved_optimizer(hw),
        bf16=precision == "bf16", fp16=precision == "fp16", use_cpu=not hw.cuda,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        eval_strategy="steps" if eval_every else "no", eval_steps=eval_every,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        seed=cfg.seed, data_seed=cfg.seed,
        report_to=["tensorboard"], disable_tqdm=True,
        max_length=cfg.max_seq_length, completion_only_loss=True, remove_unused_columns=False,
        packing=False, padding_free=False,
    )
    workers = data_workers(hw)
    # Workers collate (image decode, resize, processor, tokenizer) while the GPU trains: with none
    # the GPU waits for every batch. Persistent, so an epoch boundary does not restart them.
    kwargs.update(dataloader_num_workers=workers, dataloader_persistent_workers=workers > 0,
                  dataloader_prefetch_factor=2 if workers else None)
    kwargs.update(_checkpointing_args(SFTConfig, cfg.gradient_checkpointing))
    kwargs.update(overrides)
    return SFTConfig(**kwargs)


def data_workers(hw) -> int:
    """Data-loader worker processes: on a GPU, half the CPU cores up to 4, as collation (image,
    processor, tokenizer: ~0.35 s for one 896 px example on an H100 host) would otherwise stall
    the GPU and one worker cannot keep up with batch 4; none on the CPU, where the CPU is the
    trainer too. Workers share the truncation counters through memory inherited by fork, so other
    start methods get none. TRINITY_DATA_WORKERS=N overrides it (the speed benchmark compares)."""
    import multiprocessing

    from core.training.levers import env_whole_number

    forced = env_whole_number("TRINITY_DATA_WORKERS")  # a bad value: StudioError naming it
    if multiprocessing.get_start_method() != "fork" or (forced is None and not hw.cuda):
        return 0
    return forced if forced is not None else max(1, min(4, (os.cpu_count() or 2) // 2))


def _checkpointing_args(config_cls, on: bool) -> dict:
    """transformers 5.23 calls it activation_checkpointing; 5.17 (seen on GPU hosts) gradient_checkpointing."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(config_cls)}
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    return {key: on, f"{key}_kwargs": {"use_reentrant": False} if on else None}


def _save_output(trainer, prepared, cfg: TrainConfig, run_dir: Path) -> Path:
    """RUN/adapter (PEFT) or RUN/model (full), written beside and swapped in whole."""
    name = "adapter" if cfg.method == "lora" else "model"
    final, tmp = run_dir / name, run_dir / f".{name}.tmp"  # one path on every rank
    if not trainer.is_world_process_zero():
        trainer.save_model(str(tmp))  # collective under DDP/FSDP; writes on rank 0 only
        return final
    with atomic_dir(final, tmp=tmp):
        trainer.save_model(str(tmp))
        prepared.processor.save_pretrained(str(tmp))  # inference/export find everything in one folder
    return final


def world_size() -> int:
    """Processes in this launch (accelerate launch / torchrun set WORLD_SIZE); 1 when run plainly."""
    try:
        return max(int(os.environ.get("WORLD_SIZE", "1") or 1), 1)
    except ValueError:
        return 1


def choose_backend(cfg: TrainConfig, hw, world: int | None = None) -> tuple[str, str | None]:
    """(backend, note): Unsloth's open-source release trains on one GPU (its docs describe
    multi-GPU as a manual, not yet official setup), so several processes use transformers+PEFT,
    and the note says so for the events / the UI."""
    world = world_size() if world is None else world
    n = max(world, cfg.gpus)
    if n > 1 and cfg.backend == "auto" and hw.cuda and hw.unsloth and cfg.method == "lora":
        return "hf", (f"Training on {n} GPUs with transformers+PEFT: Unsloth (open-source) trains on "
                      "one GPU only, so it is used for single-GPU runs.")
    backend = cfg.resolved_backend(hw)
    if backend == "unsloth" and world > 1:  # backend=unsloth forced, launched by hand on N GPUs
        raise StudioError("The Unsloth backend trains on one GPU here, but this job was launched on "
                          f"{world} processes.", "Use backend=auto or hf for several GPUs.")
    return backend, None


def _setup_distributed(cfg: TrainConfig, hw, world: int) -> str | None:
    """Under a multi-process launch: pins this rank to its GPU before the model loads (models.py
    maps the whole model to the current CUDA device, so every rank would otherwise load onto
    GPU 0, and a 4-bit model cannot be moved afterwards), and opens the process group now, which
    FSDP's rank-0-only loading needs. Returns "fsdp" when accelerate was launched with FSDP."""
    if world <= 1:
        return None
    import torch
    from accelerate import PartialState

    fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if fsdp and cfg.load_in_4bit:
        raise StudioError("FSDP with a 4-bit (QLoRA) model is not supported here: the 4-bit weights would "
                          "need bnb_4bit_quant_storage equal to the compute dtype to be sharded.",
                          "Use plain multi-GPU (without --fsdp) for QLoRA: each GPU holds the 4-bit model; "
                          "or turn load_in_4bit off with --fsdp.")
    if hw.cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    PartialState(cpu=not hw.cuda)  # the Trainer's Accelerator reuses this shared state
    return "fsdp" if fsdp else "ddp"


def _sum_truncation(stats):
    """Every rank cut its own batches: the end event reports the sums (a collective)."""
    from core.training.callbacks import gather_floats

    if stats is None:
        return None
    rows = gather_floats([stats.truncated, stats.examples_seen, stats.longest])
    return {"truncated": int(sum(r[0] for r in rows)), "examples_seen": int(sum(r[1] for r in rows)),
            "longest_tokens": int(max(r[2] for r in rows))}


def _train(cfg: TrainConfig, run_dir: Path, resume: bool, writer: EventWriter, progress: bool) -> str:
    from core.training.callbacks import StopFlag

    stop = StopFlag(run_dir)
    stop.install()
    tb_before = os.environ.get("TENSORBOARD_LOGGING_DIR")
    try:
        return _train_inner(cfg, run_dir, resume, writer, progress, stop)
    finally:
        stop.restore()
        if tb_before is None:
            os.environ.pop("TENSORBOARD_LOGGING_DIR", None)
        else:
            os.environ["TENSORBOARD_LOGGING_DIR"] = tb_before


def _train_inner(cfg: TrainConfig, run_dir: Path, resume: bool, writer: EventWriter, progress: bool,
                 stop) -> str:
    import torch
    from trl import SFTTrainer

    from core.training.callbacks import EventsCallback, memory_per_rank
    from core.training.data import load_splits
    from core.training.hardware import detect

    hw = detect()
    cfg.validate(hw)
    world = world_size()
    distributed = _setup_distributed(cfg, hw, world)
    torch.manual_seed(cfg.seed)
    (backend, backend_note), precision = choose_backend(cfg, hw, world), cfg.resolved_precision(hw)
    ckpt = last_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        raise StudioError("There is no checkpoint to resume from in this run.",
                          "Start the run again without --resume (checkpoints are saved every save_steps).")
    if backend_note:
        writer.write("info", message=backend_note)
    writer.write("info", phase="loading_model", backend=backend, model_id=cfg.model_id)
    if backend == "unsloth":
        from core.training import backend_unsloth as impl
    else:
        from core.training import backend_hf as impl
    # Resuming a full fine-tune loads the weights from the checkpoint itself: transformers 5.23's
    # Trainer reloads them with load_state_dict(strict=False), and the checkpoint's (legacy) key
    # names match none of the model's, so training silently restarted from the base weights.
    load_cfg = dataclasses.replace(cfg, model_id=str(ckpt)) if ckpt and cfg.method == "full" else cfg
    from core.training import speed_path

    cache = speed_path.cache_state()  # before the load: Unsloth writes its compiled code while loading
    prepared = impl.prepare(load_cfg, hw, precision)
    train_ds, eval_ds, side = load_splits(cfg, prepared.processor)
    for note in prepared.notes:
        writer.write("info", message=note)
    path = speed_path.describe(cfg, backend, prepared.model, prepared.liger,
                               cache=cache)
    writer.write("info", **path)
    if writer.enabled:
        print(path["message"], file=sys.stderr, flush=True)  # the log tail and the CLI's terminal
    record = {"backend": backend, "device": hw.describe(), "precision": precision,
              "optimizer": cfg.resolved_optimizer(hw), "world_size": world, "distributed": distributed,
              "per_device_batch": cfg.batch_size, "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
              "global_batch": cfg.batch_size * cfg.gradient_accumulation_steps * world,
              "image_size": side, "n_train": len(train_ds), "n_eval": len(eval_ds) if eval_ds else 0}
    if writer.enabled:
        atomic_write_json(run_dir / BACKEND_FILE, {**record, "hardware": hw.to_dict(), "versions": _versions()})
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tb")
    args = sft_args(cfg, hw, run_dir, precision, eval_ds is not None, prepared.sft_overrides,
                    n_train=len(train_ds), world=world)
    record["eval_steps"] = args.eval_steps if args.eval_strategy == "steps" else None  # resolved; None: at the end
    stats = getattr(prepared.collator, "stats", None)
    if args.dataloader_num_workers:  # before the workers fork
        if stats is not None:
            stats.share()
        for split in (train_ds, eval_ds):
            if split is not None:
                split.prepare_texts()
    callback = EventsCallback(
        writer, stop, {"config_hash": cfg.config_hash(), **record, "resume_from": str(ckpt) if ckpt else None},
        hw.device, truncation=stats, samples_per_step=record["global_batch"], progress=progress)
    trainer = SFTTrainer(model=prepared.model, args=args, train_dataset=train_ds.as_hf(),
                         eval_dataset=eval_ds.as_hf() if eval_ds is not None else None,
                         processing_class=prepared.processor, data_collator=prepared.collator,
                         peft_config=prepared.peft_config, callbacks=[callback])
    if precision == "fp16":
        # TRL casts adapters of a quantized model to bf16, which fp16 GPUs (T4) only emulate, and
        # AMP's grad scaler wants fp32 master weights anyway: trainable weights stay fp32.
        for p in trainer.model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    if _autocast_needless(cfg, trainer.model, precision, backend):
        # accelerate would wrap the forward in autocast: every op pays a dispatch hop and the
        # fp32-listed ones (norms, softmax) an upcast and a cast back, for weights already bf16
        trainer.accelerator.native_amp = False
        writer.write("info", message="autocast off: the weights and adapters train in bf16 (TRINITY_AUTOCAST=0)")
    if progress:  # our bar replaces transformers' printing of every log dict
        from transformers import PrinterCallback
        trainer.remove_callback(PrinterCallback)
    if stats is None:  # the Unsloth wrapper exposes its stats only after construction
        callback.truncation = getattr(trainer.data_collator, "stats", None)
    if world > 1:
        kind = str(trainer.accelerator.distributed_type).rsplit(".", 1)[-1]  # MULTI_GPU, FSDP, MULTI_CPU
        callback.start_fields["accelerate"] = kind
        if distributed == "fsdp" and kind != "FSDP":
            writer.write("info", message=f"FSDP was requested but accelerate runs FSDP on GPUs only; "
                                         f"this {kind} run is plain data-parallel.")
    if path.get("compile") in ("compiled", "partly compiled"):
        # the first step compiles (minutes when cold): its own phase, ended by the callback
        cold = path.get("cache") != "warm"
        writer.write("info", phase=speed_path.PATH_PHASE, cache=path.get("cache"),
                     message="compiling, first run only" if cold else "compiling (cache warm)")
        callback.compiling_since = time.time()
    else:
        writer.write("info", phase="training")
    result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    status = "stopped" if callback.stopped_by else "completed"
    if status == "completed" and eval_ds is not None and (
            args.eval_strategy != "steps" or trainer.state.global_step % int(args.eval_steps)):
        trainer.evaluate()  # the last point: eval_steps=0 evaluates only here; else the last step was not one
    writer.write("info", phase="saving")
    out = _save_output(trainer, prepared, cfg, run_dir)
    summary = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float))}
    writer.end(status, step=trainer.state.global_step, max_steps=trainer.state.max_steps,
               output=str(out), stopped_by=callback.stopped_by,
               truncation=_sum_truncation(callback.truncation) if world > 1 else
               (callback.truncation.to_dict() if callback.truncation else None),
               train_loss=summary.get("train_loss"), train_runtime_s=summary.get("train_runtime"),
               **memory_per_rank(hw.device))  # each rank's peak at the end (a collective)
    return status


def _autocast_needless(cfg: TrainConfig, model, precision: str, backend: str) -> bool:
    """TRINITY_AUTOCAST=0 on a bf16 LoRA run of the hf path whose trained weights are all bf16 (TRL
    casts a quantized model's adapters to bf16), except DoRA magnitudes that only the fused layers
    read (they cast the scale themselves). Anything else keeps autocast."""
    from core.training.levers import env_choice

    if env_choice("TRINITY_AUTOCAST") != "0" or precision != "bf16" or backend != "hf" or cfg.method != "lora":
        return False
    import torch

    from core.training.speed_path import fused_layers

    for name, p in model.named_parameters():
        if p.requires_grad and p.dtype != torch.bfloat16:
            if not ("lora_magnitude_vector" in name and cfg.lora_dropout == 0 and fused_layers(model)):
                return False
    return True


def _job_env(cfg: TrainConfig, run_dir: Path) -> None:
    """Checks the speed levers' variables, and points the compile caches into the workspace for a
    compiling backend (before unsloth is imported: it reads them then). A user's own values stay."""
    from core.training.hardware import detect
    from core.training.levers import check_env
    from core.training.speed_path import compile_cache_env

    check_env()
    try:
        backend = choose_backend(cfg, detect())[0]
    except StudioError:
        return  # _train reports it
    os.environ.update(compile_cache_env(run_dir, backend))


def _import_unsloth_first(cfg: TrainConfig) -> None:
    """Unsloth patches transformers/TRL when imported and wants to come first; a failure here is
    left for the backend to report (or the HF backend is used)."""
    if "unsloth" in sys.modules or cfg.backend == "hf":
        return
    from core.training.hardware import detect
    hw = detect()
    try:
        backend = choose_backend(cfg, hw)[0]
    except StudioError:
        return  # _train reports it
    if backend == "unsloth" and not any(m in sys.modules for m in ("trl", "peft")):
        try:
            import unsloth  # noqa: F401
        except Exception:  # noqa: BLE001 - the backend raises a StudioError with advice
            pass


def _versions() -> dict:
    import importlib.metadata as md
    out = {}
    for pkg in ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "unsloth"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def run_job(run_dir: str | os.PathLike, resume: bool = False, progress: bool | None = None) -> int:
    """Runs one training job to its end event. Exit code: 0 completed/stopped, 2 a StudioError,
    3 out of memory, 1 anything else."""
    run_dir = Path(run_dir).resolve()
    if not (run_dir / "config.json").is_file():
        raise StudioError(f"{run_dir} is not a run folder (no config.json).",
                          "Create a run with `python -m core train --dataset DIR`.")
    from core.quiet import silence_known_warnings

    silence_known_warnings()  # the job's log is what the Train tab shows
    writer = EventWriter(run_dir)
    if writer.enabled:
        (run_dir / "STOP").unlink(missing_ok=True)  # a stale STOP from the last stop must not end this one
    if progress is None:
        progress = sys.stderr.isatty()
    cfg = TrainConfig.load(run_dir / "config.json")
    try:
        _job_env(cfg, run_dir)
        _import_unsloth_first(cfg)
        _train(cfg, run_dir, resume, writer, progress)
        return 0
    except StudioError as e:
        _end(writer, "failed", error=_scrub(e.message), hint=_scrub(e.hint))
        print(f"error: {_scrub(e.message)}\nhint: {_scrub(e.hint)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - every failure must end with an end event
        text = _scrub(f"{type(e).__name__}: {e}")
        print(_scrub(traceback.format_exc()), file=sys.stderr)
        if _is_oom(e):
            _end(writer, "failed", error=text, hint=_oom_hint_with_plan(cfg))
            return 3
        _end(writer, "failed", error=text[:2000], hint="See log.txt in the run folder for the full traceback.")
        return 1


def _oom_hint_with_plan(cfg: TrainConfig) -> str:
    """The memory planner's advice for this GPU first, then the generic list of what to lower."""
    hint = oom_hint(cfg)
    try:
        import torch

        if not torch.cuda.is_available():
            return hint
        from core.memory import oom_advice

        total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / 2**30
        from core.training.hardware import detect

        planned = oom_advice(cfg, total, cfg.resolved_backend(detect()))
        return f"{planned} {hint}" if planned else hint
    except Exception:  # noqa: BLE001 - advice is best effort; the failure itself is already reported
        return hint


def _is_oom(e: BaseException) -> bool:
    import torch
    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()
