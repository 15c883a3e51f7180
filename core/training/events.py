"""RUN/events.jsonl: the one channel from the training job to the UI, the CLI and tests.

Each line is a JSON object with "type" (start | log | eval | checkpoint | end | info) and "time"
(unix seconds). The job appends (rank 0 only, so a multi-GPU run writes one file); readers poll
and tolerate a half-written last line. "info" events carry a `phase` (loading_model, compiling -
the first step of a compiling backend - training, saving; the training event after compiling has
`compile_s`), the `path` taken (core/training/speed_path.py) or a `message`.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from core.fsutil import append_jsonl

EVENTS_FILE = "events.jsonl"
STOP_FILE = "STOP"  # a run stops at its next step when this file appears in its folder
TYPES = ("start", "log", "eval", "checkpoint", "end", "info")
END_STATUSES = ("completed", "stopped", "failed")


def is_main_process() -> bool:
    """Rank 0 under torchrun/accelerate launch; True for a plain single process."""
    import torch
    from accelerate import PartialState

    # cpu=True where there is no GPU: accelerate then sees a CPU launch as multi-process (gloo)
    # instead of one process; job._setup_distributed and the Trainer reuse this shared state
    return PartialState(cpu=not torch.cuda.is_available()).is_main_process


class EventWriter:
    def __init__(self, run_dir: str | os.PathLike, enabled: bool | None = None):
        self.path = Path(run_dir) / EVENTS_FILE
        self.enabled = is_main_process() if enabled is None else enabled

    def write(self, type: str, **fields) -> dict:
        if type not in TYPES:
            raise ValueError(f"unknown event type {type!r}")
        event = {"type": type, "time": round(time.time(), 3), **_clean(fields)}
        if self.enabled:
            # per-step logs go out unsynced (the OS writes them within seconds; the reader skips a
            # torn last line); the phase, checkpoint and end events are fsynced
            append_jsonl(self.path, event, durable=type != "log")
        return event

    def end(self, status: str, error: str | None = None, hint: str | None = None, **fields) -> dict:
        if status not in END_STATUSES:
            raise ValueError(f"unknown end status {status!r}")
        extra = {k: v for k, v in (("error", error), ("hint", hint)) if v}
        return self.write("end", status=status, **extra, **fields)


def read_events(run_dir_or_file: str | os.PathLike) -> list[dict]:
    """All complete events; a partial or corrupt line (a job killed mid-write) is skipped."""
    p = Path(run_dir_or_file)
    if p.is_dir():
        p = p / EVENTS_FILE
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "type" in obj:
            out.append(obj)
    return out


def last_of(events: list[dict], type: str) -> dict | None:
    for e in reversed(events):
        if e.get("type") == type:
            return e
    return None


def oom_hint(cfg) -> str:
    """What to lower, in the order that saves the most memory for the least quality."""
    tips = []
    if cfg.batch_size > 1:
        tips.append(f"batch_size {cfg.batch_size} -> 1 (raise gradient_accumulation_steps to keep the effective batch)")
    if not cfg.gradient_checkpointing:
        tips.append("turn gradient_checkpointing on")
    if cfg.method == "lora" and not cfg.load_in_4bit:
        tips.append("turn load_in_4bit on (QLoRA)")
    if cfg.max_seq_length > 512:
        tips.append(f"max_seq_length {cfg.max_seq_length} -> {cfg.max_seq_length // 2}")
    if cfg.image_size is None or cfg.image_size > 448:
        tips.append("a smaller image_size, where the model accepts it")
    if cfg.method == "lora" and cfg.lora_r > 16:
        tips.append(f"lora_r {cfg.lora_r} -> 16")
    if cfg.method == "lora" and cfg.use_dora:
        tips.append("use_dora off (DoRA keeps extra activations)")
    if cfg.method == "lora" and cfg.finetune_vision_layers:
        tips.append("finetune_vision_layers off")
    if cfg.method == "full":
        tips.append("method=lora instead of a full fine-tune")
    tips.append("a smaller model or a GPU with more memory")
    return "Out of memory. Lower, in this order: " + "; ".join(tips) + "."


def _clean(d: dict) -> dict:
    """Drops None values and turns tensors / numpy scalars into plain numbers."""
    out = {}
    for k, v in d.items():
        if v is None:
            continue
        if hasattr(v, "item") and callable(v.item):
            try:
                v = v.item()
            except (ValueError, RuntimeError):
                v = str(v)
        if isinstance(v, float):
            v = round(v, 8) if v == v and abs(v) != float("inf") else None
            if v is None:
                v = "nan"
        out[k] = v
    return out
