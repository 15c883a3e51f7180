"""Run folders: create one, list them with their status, start the job as a detached subprocess,
stop it. The UI and the CLI both go through here; the job itself is core/training/job.py.

RUN/config.json  the TrainConfig as launched      RUN/events.jsonl  what happened
RUN/backend.json backend, device, versions        RUN/log.txt       the job's stdout + stderr
RUN/pid          the job's process id             RUN/STOP          present = please stop
"""
from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml

from core import workspace
from core.errors import StudioError
from core.fsutil import atomic_write_text
from core.names import is_valid_name
from core.training.config import TrainConfig
from core.training.events import STOP_FILE, last_of, read_events


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:limit].strip("-")


def new_run_id(cfg: TrainConfig) -> str:
    """<dataset>-<model>-<date>-<time>-<4 hex>: named by the dataset it trains (two datasets of one
    task give runs of different names), unique by the time and the random tail."""
    model = _slug(cfg.model_id.rsplit("/", 1)[-1], 30) or "model"
    data = _slug(Path(cfg.dataset).name, 40) if cfg.dataset else ""
    return f"{data or _slug(cfg.task, 40) or 'run'}-{model}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def preflight(config: TrainConfig, hardware=None) -> dict:
    """Everything that can fail before launch: the config on this hardware, the dataset, its task
    and its labeled train split. Returns {"n_train", "n_eval"} for the UI."""
    from core.training.data import load_splits
    from core.training.hardware import detect
    from core.training.levers import check_env

    config.validate(hardware or detect())
    check_env()  # a bad speed-lever variable fails here, before a job is started
    train, ev, _ = load_splits(config)
    return {"n_train": len(train), "n_eval": len(ev) if ev else 0}


def create_run(config: TrainConfig, workspace_dir: str | os.PathLike | None = None,
               run_id: str | None = None, run_dir: str | os.PathLike | None = None,
               check: bool = True) -> Path:
    """A new run folder holding config.json (the dataset path made absolute). Fails if it exists,
    and (check=True) when preflight() finds a problem - nothing is written then."""
    if run_dir is None:
        run_id = run_id or new_run_id(config)
        if not is_valid_name(run_id):
            raise StudioError(f"'{run_id}' is not a usable run name.", "Use letters, digits, '-', '_' and '.'.")
        run_dir = workspace.runs_dir(workspace_dir) / run_id
    run_dir = Path(run_dir)
    if (run_dir / "config.json").exists():
        raise StudioError(f"A run already exists at {run_dir}.", "Pick another name, or resume that run.")
    if run_dir.exists() and any(run_dir.iterdir()):
        raise StudioError(f"{run_dir} exists and is not empty.", "Pick a new folder for the run.")
    if config.dataset:
        config.dataset = str(Path(config.dataset).expanduser().resolve())
    if check:
        preflight(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / "config.json")
    return run_dir.resolve()


def _pid_alive(pid: int) -> bool:
    """The job's process is running (not a zombie, not a recycled pid running something else)."""
    try:
        return any("train" in arg for arg in psutil.Process(pid).cmdline())
    except psutil.NoSuchProcess:  # gone, or a zombie (psutil raises ZombieProcess, a NoSuchProcess)
        return False
    except psutil.AccessDenied:
        return True  # another user's process under that pid: it exists, its command line is private


def run_status(run_dir: str | os.PathLike) -> dict:
    """{"status": created|running|completed|stopped|failed|interrupted, "step", "max_steps", "loss",
    "eval_loss", "error", "hint", ...} from events.jsonl and the job's pid."""
    run_dir = Path(run_dir)
    events = read_events(run_dir)
    last = events[-1] if events else None
    pid_file = run_dir / "pid"
    pid = _read_pid(run_dir)
    # a resumed job may not have written yet: a pid newer than the last end event is this job's
    alive = pid is not None and _pid_alive(pid) and (
        last is None or last["type"] != "end" or pid_file.stat().st_mtime > last.get("time", 0))
    out = {"run_id": run_dir.name, "path": str(run_dir), "events": len(events)}
    if alive:
        status = "running"
    elif last is not None and last["type"] == "end":
        status = last.get("status", "failed")
        out.update({k: last[k] for k in ("error", "hint", "stopped_by", "output") if last.get(k)})
    elif events:
        status = "interrupted"  # the process died without an end event (killed, out of RAM)
    else:
        status = "created"
    out["status"] = status
    out["stop_requested"] = status == "running" and (run_dir / STOP_FILE).exists()
    start, log, ev = last_of(events, "start"), last_of(events, "log"), last_of(events, "eval")
    if start:
        out.update(backend=start.get("backend"), device=start.get("device"), max_steps=start.get("max_steps"))
    if log:
        out.update(step=log.get("step"), epoch=log.get("epoch"), loss=log.get("loss"), eta_s=log.get("eta_s"))
    if last is not None and last["type"] == "end" and last.get("step") is not None:
        out["step"] = last["step"]
    if ev:
        out["eval_loss"] = ev.get("eval_loss")
    out["has_adapter"] = (run_dir / "adapter" / "adapter_config.json").is_file()
    out["has_model"] = (run_dir / "model" / "config.json").is_file()
    return out


def list_runs(workspace_dir: str | os.PathLike | None = None) -> list[dict]:
    """Every run folder (newest first) with its status and the config's headline values."""
    out = []
    root = workspace.runs_dir(workspace_dir)
    for d in sorted((p for p in root.iterdir() if (p / "config.json").is_file()),
                    key=lambda p: p.stat().st_mtime, reverse=True):
        st = run_status(d)
        try:
            cfg = TrainConfig.load(d / "config.json")
            st.update(model_id=cfg.model_id, task=cfg.task, method=cfg.method, dataset=cfg.dataset)
        except StudioError as e:
            st.update(config_error=e.message)
        out.append(st)
    return out


def _read_pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / "pid").read_text().strip())
    except (OSError, ValueError):
        return None


FSDP_FILE = "accelerate_fsdp.yaml"  # present in a run folder = launch it with FSDP


_FSDP_HEADER = """\
# accelerate launch config written by Trinity Studio (python -m core train --fsdp)
# mixed_precision 'no': precision comes from the run's config (bf16/fp16 flags).
# TRANSFORMER_BASED_WRAP wraps model._no_split_modules; FULL_STATE_DICT saves one standard
# adapter/model file at the end; with cpu_ram_efficient_loading ranks > 0 load on the meta device
# and sync_module_states sends them rank 0's weights; the run's gradient_checkpointing does the
# activation checkpointing.
"""


def fsdp_config(gpus: int) -> dict:
    """An `accelerate launch --config_file` for FSDP2 (for a model that does not fit one GPU):
    every decoder/encoder layer (the model's `_no_split_modules`) is its own shard unit, the
    adapter/model is saved as one full state dict on rank 0, and non-zero ranks load on the meta
    device. Edit the file in the run folder to change any plugin setting (accelerate's names)."""
    return {
        "compute_environment": "LOCAL_MACHINE", "distributed_type": "FSDP", "num_machines": 1,
        "num_processes": gpus, "machine_rank": 0, "mixed_precision": "no", "use_cpu": False,
        "fsdp_config": {
            "fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_state_dict_type": "FULL_STATE_DICT", "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True, "fsdp_reshard_after_forward": True,
            "fsdp_offload_params": False, "fsdp_activation_checkpointing": False,
        },
    }


def fsdp_config_text(gpus: int) -> str:
    return _FSDP_HEADER + yaml.safe_dump(fsdp_config(gpus), sort_keys=False)


def write_fsdp_config(run_dir: str | os.PathLike, gpus: int) -> Path:
    """Marks a run for FSDP by writing RUN/accelerate_fsdp.yaml (kept for resumes)."""
    if gpus < 2:
        raise StudioError("FSDP shards the model over several GPUs; this run uses one.",
                          "Use --gpus 2 or more with --fsdp, or leave --fsdp off.")
    path = Path(run_dir) / FSDP_FILE
    atomic_write_text(path, fsdp_config_text(gpus))
    return path


def job_command(run_dir: Path, resume: bool, gpus: int) -> list[str]:
    """The job's command line. gpus > 1: the same entry under `accelerate launch`, one process
    per GPU (the job writes from rank 0 only). Flags are explicit so that a user's default
    accelerate config cannot change the launch: --multi_gpu picks the torchrun launcher (DDP;
    on a machine without GPUs the processes train on CPU over gloo), port 0 = a free port, and
    mixed precision stays off here because TrainingArguments sets it from the run's config.
    A run folder holding accelerate_fsdp.yaml is launched with FSDP from that file instead."""
    run_dir = Path(run_dir)
    cmd = ["-m", "core", "train", "--run", str(run_dir)] + (["--resume"] if resume else [])
    if gpus <= 1:
        return [sys.executable] + cmd
    fsdp = run_dir / FSDP_FILE
    mode = ["--config_file", str(fsdp)] if fsdp.is_file() else ["--multi_gpu"]
    return [sys.executable, "-m", "accelerate.commands.launch", *mode, "--num_processes", str(gpus),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", "0"] + cmd


def start_run_subprocess(run_dir: str | os.PathLike, resume: bool = False,
                         gpus: int | None = None) -> subprocess.Popen:
    """Starts the job detached from the caller (own session: closing the UI leaves it running);
    stdout and stderr go to RUN/log.txt. Refuses a run that is already running. gpus (default:
    the config's) > 1 starts it under accelerate launch; RUN/pid is then the launcher's pid, and
    SIGTERM to it reaches every rank (torchrun forwards it, then waits 30 s before killing)."""
    run_dir = Path(run_dir).resolve()
    cfg = TrainConfig.load(run_dir / "config.json")
    if run_status(run_dir)["status"] == "running":
        raise StudioError("This run is already training.", "Stop it first, or open its progress.")
    (run_dir / STOP_FILE).unlink(missing_ok=True)
    env = dict(os.environ)
    repo = str(workspace.REPO)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(_compile_cache_env(cfg, run_dir, env))
    log = open(run_dir / "log.txt", "ab")
    try:
        proc = subprocess.Popen(job_command(run_dir, resume, gpus or cfg.gpus), cwd=repo, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    finally:
        log.close()
    atomic_write_text(run_dir / "pid", f"{proc.pid}\n")
    return proc


def _compile_cache_env(cfg: TrainConfig, run_dir: Path, env: dict) -> dict:
    """WORKSPACE/cache/ folders for the compile caches of a run whose backend compiles (Unsloth),
    where the user has not set them (core/training/speed_path.py); nothing for the hf path."""
    from core.training.hardware import detect
    from core.training.job import choose_backend
    from core.training.speed_path import compile_cache_env

    try:
        backend = choose_backend(cfg, detect(), world=1)[0]
    except StudioError:
        return {}  # the job reports it
    return compile_cache_env(run_dir, backend, env)


def stop_run(run_dir: str | os.PathLike) -> None:
    """Asks the job to stop: it saves a checkpoint at the end of the current step and ends with
    status "stopped". The STOP file works across machines and for accelerate launches."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise StudioError(f"{run_dir} is not a run folder.", "Pick a run from the list.")
    atomic_write_text(run_dir / STOP_FILE, f"requested {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
