"""The TrainerCallback that streams a run into events.jsonl and obeys STOP / SIGTERM.

Rank 0 writes; every rank takes part in the stop decision (an all-reduce), so a multi-GPU run
stops on the same step everywhere instead of hanging in a collective, and in each log's
per-rank memory gather (Trainer calls on_log on every rank at the same steps).
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather, reduce
from transformers import TrainerCallback

from core.training.events import STOP_FILE, EventWriter


class StopFlag:
    """Set by SIGTERM / SIGINT or by a STOP file in the run folder."""

    def __init__(self, run_dir: Path):
        self.stop_file = Path(run_dir) / STOP_FILE
        self.signalled: str | None = None
        self._previous: dict = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread (e.g. called from a test thread): STOP file only
                pass

    def restore(self) -> None:
        """Gives the signals back (the job may run inside a longer-lived process, e.g. tests)."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _on_signal(self, signum, frame) -> None:
        self.signalled = signal.Signals(signum).name

    def reason(self) -> str | None:
        if self.signalled:
            return self.signalled
        return "STOP file" if self.stop_file.exists() else None


def _agree(local: bool) -> bool:
    """True on every rank when any rank wants to stop (a collective: call it on all ranks). A single
    process decides alone: no device tensor and no `.item()`, which would wait for the GPU every step."""
    state = PartialState()  # the Trainer's; its device suits the backend (NCCL: CUDA, gloo: CPU)
    if state.num_processes <= 1:
        return local
    flag = torch.tensor([1.0 if local else 0.0], device=state.device)
    return bool(reduce(flag, reduction="max").item() > 0)


def gather_floats(values: list[float]) -> list[list[float]]:
    """Each rank's values, in rank order, on every rank (a collective: call it on all ranks).
    A single process gets [values]."""
    state = PartialState()
    local = torch.tensor(values, dtype=torch.float64, device=state.device)
    return gather(local).view(state.num_processes, len(values)).tolist()


def memory_per_rank(device: str) -> dict:
    """Per-GPU memory (CUDA: allocated/reserved now and peak allocated, in GB) or per-process RSS
    (CPU), one value per rank in rank order. A collective under DDP: call it on every rank.
    Empty for a single process (memory_stats covers it)."""
    if PartialState().num_processes <= 1:
        return {}
    if device == "cuda" and torch.cuda.is_available():
        keys = ("vram_alloc_gb", "vram_reserved_gb", "vram_peak_gb")
    else:
        keys = ("rss_gb",)
    mine = memory_stats(device)
    rows = gather_floats([float(mine.get(k, float("nan"))) for k in keys])
    return {f"{k}_per_rank": [round(r[i], 4) if r[i] == r[i] else None for r in rows]
            for i, k in enumerate(keys)}


def memory_stats(device: str) -> dict:
    if device == "cuda" and torch.cuda.is_available():
        gb = 2**30
        return {"vram_alloc_gb": torch.cuda.memory_allocated() / gb,
                "vram_reserved_gb": torch.cuda.memory_reserved() / gb,
                "vram_peak_gb": torch.cuda.max_memory_allocated() / gb,
                "vram_peak_reserved_gb": torch.cuda.max_memory_reserved() / gb}  # what the planner predicts
    try:
        import psutil
        return {"rss_gb": psutil.Process().memory_info().rss / 2**30}
    except ImportError:
        return {}


class EventsCallback(TrainerCallback):
    def __init__(self, writer: EventWriter, stop: StopFlag, start_fields: dict, device: str,
                 truncation=None, samples_per_step: int = 1, progress: bool = False):
        self.writer, self.stop, self.start_fields, self.device = writer, stop, start_fields, device
        self.truncation = truncation          # TruncationStats from the collator, or None
        self.samples_per_step = samples_per_step
        self.progress = progress
        self.stopped_by: str | None = None
        self.bar = None
        self._t0 = self._t_last = 0.0
        self._step0 = self._step_last = 0
        self._tokens_last: float | None = None
        self.compiling_since: float | None = None  # set when the first step compiles (its own phase)

    # ---------------------------------------------------------------- lifecycle
    def on_train_begin(self, args, state, control, model=None, **kw):
        self._t0 = self._t_last = time.time()
        self._step0 = self._step_last = state.global_step
        trainable = total = 0
        if model is not None:
            for p in model.parameters():
                n = p.numel() * (2 if type(p).__name__ == "Params4bit" else 1)  # 4-bit packs 2 per byte
                total += n
                trainable += n if p.requires_grad else 0
        self.writer.write("start", **self.start_fields, max_steps=state.max_steps,
                          resumed_from_step=state.global_step or None,
                          trainable_params=trainable, total_params=total,
                          trainable_percent=round(100 * trainable / total, 4) if total else None)
        if self.progress and state.is_world_process_zero:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, unit="step", dynamic_ncols=True)

    def _end_compile_phase(self) -> None:
        if self.compiling_since is not None:
            self.writer.write("info", phase="training", compile_s=round(time.time() - self.compiling_since, 1))
            self.compiling_since = None

    def on_substep_end(self, args, state, control, **kw):  # a micro-batch within gradient accumulation
        self._end_compile_phase()

    def on_step_end(self, args, state, control, **kw):
        self._end_compile_phase()
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
        reason = self.stop.reason()
        if _agree(reason is not None):
            self.stopped_by = reason or "another rank"
            control.should_save = True        # the Trainer saves a checkpoint of this step...
            control.should_training_stop = True  # ...then leaves the loop
        return control

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        if "loss" not in logs:
            return  # eval logs arrive in on_evaluate; the final summary goes into the end event
        now = time.time()
        dt = max(now - self._t_last, 1e-9)
        steps = state.global_step - self._step_last
        tokens = logs.get("num_tokens")
        tok_s = None
        if tokens is not None and self._tokens_last is not None and tokens >= self._tokens_last:
            tok_s = (tokens - self._tokens_last) / dt
        elif tokens is not None and steps > 0:
            # first log of this process: TRL counts tokens from zero in each process
            tok_s = tokens / max(now - self._t0, 1e-9)
        done = state.global_step - self._step0
        per_step = (now - self._t0) / done if done > 0 else None
        eta = per_step * max(state.max_steps - state.global_step, 0) if per_step else None
        extra = {"truncated": self.truncation.truncated} if self.truncation is not None else {}
        self.writer.write(
            "log", step=state.global_step, epoch=state.epoch, loss=logs.get("loss"),
            lr=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
            token_accuracy=logs.get("mean_token_accuracy"), tokens_per_s=tok_s,
            samples_per_s=steps * self.samples_per_step / dt if steps > 0 else None,
            step_time_s=dt / steps if steps > 0 else None, eta_s=eta, **memory_stats(self.device),
            **memory_per_rank(self.device), **extra)
        if self.bar is not None and logs.get("loss") is not None:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}")
        self._t_last, self._step_last, self._tokens_last = now, state.global_step, tokens

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        metrics = metrics or {}
        self.writer.write("eval", step=state.global_step, epoch=state.epoch, eval_loss=metrics.get("eval_loss"),
                          eval_token_accuracy=metrics.get("eval_mean_token_accuracy"),
                          eval_runtime_s=metrics.get("eval_runtime"))

    def on_save(self, args, state, control, **kw):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        self.writer.write("checkpoint", step=state.global_step, path=str(path))

    def on_train_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
