"""python -m core train: create a run and train it in the foreground, or run an existing run.

  python -m core train --dataset DIR [--preset NAME | --config FILE] [--model ID]
                       [--set key=value ...] [--out RUN_DIR] [--gpus N [--fsdp]]
  python -m core train --run RUN_DIR [--resume] [--gpus N [--fsdp]]

--gpus N (N > 1) starts `accelerate launch --multi_gpu --num_processes N -m core train --run RUN`
(data-parallel: one process and one copy of the model per GPU); --fsdp shards the model instead
(for a model that does not fit one GPU), from RUN/accelerate_fsdp.yaml. Under such a launcher
`--run` trains as one rank.
"""
from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from core.errors import StudioError


def add_parser(sub) -> None:
    from core.training.config import FIELDS, PRESETS

    p = sub.add_parser("train", help="fine-tune a model on a dataset (or run/resume a run folder)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="config keys for --set: " + ", ".join(FIELDS))
    p.add_argument("--dataset", help="dataset folder to train on (creates a new run)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=list(PRESETS), help="start from a preset")
    src.add_argument("--config", help="start from a TrainConfig JSON file")
    p.add_argument("--model", help="base model id (registry id, hub id or local folder)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set max_steps=10 (repeatable)")
    p.add_argument("--out", help="run folder to create (default: a new folder under workspace/runs)")
    p.add_argument("--gpus", type=int, help="GPUs to train on (more than 1 uses accelerate launch)")
    p.add_argument("--fsdp", action="store_true",
                   help="with --gpus N: shard the model over the GPUs (FSDP) instead of one copy per GPU")
    p.add_argument("--run", help="existing run folder: train it (the UI starts jobs this way)")
    p.add_argument("--resume", action="store_true", help="with --run: continue from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def build_config(args):
    """The TrainConfig for a new run from the CLI arguments, validated for this machine."""
    from core.dataset import Dataset
    from core.training.config import TrainConfig, default_config, preset
    from core.training.hardware import detect

    hw = detect()
    ds = Dataset.open(args.dataset)
    if args.model:
        from core.model_check import check_base_model

        check_base_model(args.model)  # a custom folder / hub id: checked before a run folder is made
    if args.preset:
        cfg = preset(args.preset)
    elif args.config:
        cfg = TrainConfig.load(args.config)
    else:
        cfg = default_config(args.model or "demo", hw, task=ds.task.name)
    if args.model:
        cfg.model_id = args.model
    cfg.dataset, cfg.task = str(Path(args.dataset).resolve()), ds.task.name
    if args.gpus:
        cfg.gpus = args.gpus
    cfg.apply_overrides(args.overrides)
    cfg.validate(hw)
    return cfg


def _under_launcher() -> bool:
    """True inside a process started by accelerate launch / torchrun (one rank of N)."""
    import os
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def _launch_gpus(args, config_gpus: int) -> int:
    """How many processes to launch; checks the request against this machine first."""
    from core.training.hardware import detect

    gpus = args.gpus or config_gpus
    if args.gpus is not None and args.gpus < 1:
        raise StudioError(f"--gpus {args.gpus} is not a GPU count.", "Use --gpus 1 or more.")
    if args.fsdp and gpus < 2:
        raise StudioError("--fsdp shards the model over several GPUs.", "Add --gpus 2 (or more), or drop --fsdp.")
    if gpus > 1:
        hw = detect()
        if not hw.cuda:
            raise StudioError(f"--gpus {gpus} but this machine has no CUDA GPU.",
                              "Train with --gpus 1 here. (A CPU test of the multi-process path: "
                              "python -m accelerate.commands.launch --multi_gpu --num_processes 2 "
                              "-m core train --run RUN)")
        if gpus > hw.gpu_count:
            raise StudioError(f"--gpus {gpus} but {hw.gpu_count} GPU(s) are visible.", f"Use --gpus {hw.gpu_count} or fewer.")
    return gpus


def _launch(run_dir, resume: bool, gpus: int, fsdp: bool) -> int:
    from core.training.runs import job_command, write_fsdp_config

    if fsdp:
        write_fsdp_config(run_dir, gpus)
    cmd = job_command(run_dir, resume, gpus)
    print("launching: " + " ".join(cmd[1:]), flush=True)
    return subprocess.call(cmd)


def main(args) -> int:
    from core.training.config import TrainConfig
    from core.training.job import run_job
    from core.training.runs import create_run

    progress = not args.no_progress
    if args.run:
        if args.dataset or args.preset or args.config or args.overrides:
            raise StudioError("--run trains an existing run folder as its config.json says.",
                              "Drop --dataset/--preset/--config/--set, or create a new run with --dataset.")
        if _under_launcher():  # one rank of an accelerate launch: train here
            return run_job(args.run, resume=args.resume, progress=progress)
        gpus = _launch_gpus(args, TrainConfig.load(Path(args.run) / "config.json").gpus)
        if gpus > 1:
            return _report(Path(args.run), _launch(Path(args.run).resolve(), args.resume, gpus, args.fsdp))
        return run_job(args.run, resume=args.resume, progress=progress)
    if args.resume:
        raise StudioError("--resume needs --run RUN_DIR.", "Example: python -m core train --run workspace/runs/ID --resume")
    if not args.dataset:
        raise StudioError("Nothing to train: give --dataset DIR (new run) or --run RUN_DIR.",
                          "Example: python -m core train --dataset assets/demo/keys --set max_steps=10")
    cfg = build_config(args)
    gpus = _launch_gpus(args, cfg.gpus)
    run_dir = create_run(cfg, run_dir=args.out)
    print(f"run folder: {run_dir}", flush=True)
    code = _launch(run_dir, False, gpus, args.fsdp) if gpus > 1 else run_job(run_dir, progress=progress)
    return _report(run_dir, code)


def _report(run_dir, code: int) -> int:
    from core.training.events import last_of, read_events

    end = last_of(read_events(run_dir), "end") or {}
    status = end.get("status", "unknown")
    print(f"status: {status}" + (f"  step {end.get('step')}/{end.get('max_steps')}" if end.get("step") else ""))
    if end.get("output"):
        print(f"output: {end['output']}")
    return code if code else (0 if status in ("completed", "stopped") else 1)
