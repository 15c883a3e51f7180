"""The Train tab's logic without Gradio: config knobs grouped as in TrainConfig, building a config
from the knobs, starting / stopping / resuming runs through core.training.runs, and the live view
(status, progress + ETA, log tail) read from a run folder."""
from __future__ import annotations

import re
import time
import typing
from pathlib import Path

from core.errors import StudioError
from core.training import config as C
from core.training import runs as _runs  # noqa: F401  (imports torch + transformers once, at startup)
from core.training.events import read_events
from studio.common import DEMO_MAX_STEPS, badge, esc

# Grouped the way a person decides: what to train, how much, then what it costs in memory and time
# (LlamaBoard's order); a field added to core/training/config.py later lands in "Other".
GROUPS = {
    "What to train": ["method", "lora_r", "lora_alpha", "lora_dropout", "use_dora", "use_rslora", "train_answer_tokens",
                      "target_modules", "finetune_language_layers", "finetune_vision_layers",
                      "finetune_attention_modules", "finetune_mlp_modules", "train_split", "eval_split"],
    "How much": ["max_steps", "num_epochs", "learning_rate", "lr_scheduler", "warmup_ratio", "weight_decay",
                 "max_grad_norm", "optimizer", "seed"],
    "Memory and speed": ["batch_size", "gradient_accumulation_steps", "max_seq_length", "image_size",
                         "load_in_4bit", "double_quant", "precision", "gradient_checkpointing", "backend",
                         "liger_kernel"],
    "Logging and checkpoints": ["logging_steps", "eval_steps", "save_steps", "save_total_limit"],
}
# Fields that mean nothing for a full fine-tune: greyed out when method is "full".
LORA_ONLY = ("lora_r", "lora_alpha", "lora_dropout", "use_dora", "use_rslora", "train_answer_tokens", "target_modules",
             "finetune_language_layers", "finetune_vision_layers", "finetune_attention_modules",
             "finetune_mlp_modules", "load_in_4bit", "double_quant")
SET_ELSEWHERE = ("model_id", "task", "dataset", "gpus")  # gpus: the "GPUs" control by the Start button
CHOICES = {"method": C.METHODS, "optimizer": C.OPTIMIZERS, "precision": C.PRECISIONS,
           "lr_scheduler": C.SCHEDULERS, "backend": C.BACKENDS,
           "liger_kernel": C.SWITCHES}
DEFAULTS_PRESET = "Defaults for the model"


def grouped_fields() -> dict[str, list[str]]:
    known = {n for names in GROUPS.values() for n in names}
    other = [n for n in C.FIELDS if n not in known and n not in SET_ELSEWHERE]
    return {**GROUPS, **({"Other": other} if other else {})}


def field_kind(name: str) -> str:
    """checkbox | choice | list | int | float | text: which input shows a field."""
    if name in CHOICES:
        return "choice"
    typ, _ = C._base_type(name)
    if typing.get_origin(typ) is list:
        return "list"
    return {bool: "checkbox", int: "int", float: "float"}.get(typ, "text")


def knob_values(cfg: C.TrainConfig) -> dict[str, object]:
    out = {}
    for name in C.FIELDS:
        v = getattr(cfg, name)
        out[name] = ", ".join(v) if isinstance(v, list) else v
    return out


def preset_config(preset: str | None, model_id: str | None) -> C.TrainConfig:
    if preset and preset != DEFAULTS_PRESET:
        return C.preset(preset)
    return C.default_config(model_id or "demo")


def config_from_knobs(values: dict[str, object], model_id: str, dataset_path: str, task: str,
                      demo_mode: bool = False, gpus: int = 1) -> tuple[C.TrainConfig, list[str]]:
    """Knob values (by field name) -> a TrainConfig, plus notes about what demo mode changed."""
    data: dict = {"model_id": model_id, "dataset": dataset_path, "task": task, "gpus": max(1, int(gpus or 1))}
    for name, v in values.items():
        if name not in C.FIELDS or name in SET_ELSEWHERE:
            continue
        kind = field_kind(name)
        if kind == "list":
            v = [s.strip() for s in str(v or "").split(",") if s.strip()]
        elif kind in ("int", "float") and (v is None or v == ""):
            if C._base_type(name)[1]:
                v = None  # optional: empty means "the model's own"
            else:
                raise StudioError(f"{name} needs a value.", C.help_text(name))
        elif kind == "int" and isinstance(v, float):
            if v != int(v):
                raise StudioError(f"{name} must be a whole number, got {v}.", C.help_text(name))
            v = int(v)
        data[name] = v
    cfg = C.TrainConfig.from_dict(data)
    notes = []
    if demo_mode:
        if cfg.model_id != "demo":
            raise StudioError("This demo trains the offline demo model only.", "Pick the 'demo' model.")
        if cfg.max_steps == -1 or cfg.max_steps > DEMO_MAX_STEPS:
            cfg.max_steps = DEMO_MAX_STEPS
            notes.append(f"Demo mode: max_steps capped at {DEMO_MAX_STEPS}.")
        cfg.gpus = 1
    return cfg, notes


def command_preview(cfg: C.TrainConfig, hw=None) -> str:
    """The `python -m core train …` command that starts the same run from a shell: the dataset,
    the model, and a --set for every value that differs from the CLI's defaults for that model."""
    import shlex

    base = C.default_config(cfg.model_id, hw)
    parts = ["python -m core train", f"--dataset {shlex.quote(cfg.dataset)}", f"--model {shlex.quote(cfg.model_id)}"]
    if cfg.gpus > 1:
        parts.append(f"--gpus {cfg.gpus}")
    for name in C.FIELDS:
        if name in SET_ELSEWHERE:
            continue
        v = getattr(cfg, name)
        if v != getattr(base, name):
            parts.append("--set " + shlex.quote(f"{name}={C._fmt(v)}"))
    return " \\\n    ".join(parts)


def run_config(run_dir: str | None) -> C.TrainConfig:
    """The config a past run was launched with (RUN/config.json), to load into the form."""
    return C.TrainConfig.load(_run(run_dir) / "config.json")


def start(state, cfg: C.TrainConfig) -> Path:
    from core.dataset import Dataset
    from core.training.hardware import detect
    from core.training.runs import create_run, start_run_subprocess

    from core.model_check import check_base_model

    check_base_model(cfg.model_id)  # a custom folder / hub id: its family, files or access, before a job starts
    cfg.validate(detect())
    ds = Dataset.open(cfg.dataset)
    n_train = sum(1 for r in ds.records(split=cfg.train_split) if ds.task.is_labeled(r))
    if n_train == 0:
        raise StudioError(f"The '{cfg.train_split}' split of {ds.name} has no labeled records.",
                          "Label some images, then press Re-split in the Datasets tab.")
    run_dir = create_run(cfg, state.workspace)
    start_run_subprocess(run_dir, resume=False, gpus=cfg.gpus)  # gpus > 1: under accelerate launch
    return run_dir


def resume(run_dir: str) -> None:
    from core.training.runs import start_run_subprocess

    start_run_subprocess(_run(run_dir), resume=True)


def stop(run_dir: str) -> None:
    from core.training.runs import stop_run

    stop_run(_run(run_dir))


def _run(run_dir: str | None) -> Path:
    if not run_dir or not (Path(run_dir) / "config.json").is_file():
        raise StudioError("No run is selected.", "Start a run, or pick one in the run list.")
    return Path(run_dir)


def pick_run_on_load(runs: list[dict]) -> str | None:
    """After a page (re)load: the running run if there is one, else the newest."""
    for r in runs:
        if r.get("status") == "running":
            return r["path"]
    return runs[0]["path"] if runs else None


def step_text(st: dict) -> str:
    """"85/600"; before the job has counted its steps, "starting" rather than "0/?"."""
    if st.get("max_steps"):
        return f"{st.get('step') or 0}/{st['max_steps']}"
    return "starting" if st.get("status") in ("created", "running") else str(st.get("step") or "–")


def run_rows(runs: list[dict]) -> list[list]:
    out = []
    for r in runs:
        step = step_text(r)
        loss = r.get("loss")
        ev = r.get("eval_loss")
        out.append([r["run_id"], r["status"], r.get("model_id", ""), r.get("task", ""), step,
                    f"{loss:.4f}" if isinstance(loss, (int, float)) else "",
                    f"{ev:.4f}" if isinstance(ev, (int, float)) else ""])
    return out


def _fmt_eta(s) -> str:
    if not isinstance(s, (int, float)):
        return "–"
    s = int(s)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


STATUS_KIND = {"running": "info", "completed": "ok", "stopped": "warn", "failed": "err",
               "interrupted": "err", "created": "neutral"}


def phase_text(status: str, events: list[dict], now: float | None = None) -> str | None:
    """The job's current phase for the status badge: "loading model", "saving", or, while the
    first step compiles, "compiling, first run only · 83 s" (elapsed seconds) instead of a step 1
    that seems stalled. None while training (the step counter says it)."""
    phase = last = None
    for e in reversed(events):
        if e.get("type") == "info" and e.get("phase"):
            phase, last = e["phase"], e
            break
    if status != "running" or not phase or phase == "training":
        return None
    if phase == "compiling":
        elapsed = max(0, int((time.time() if now is None else now) - float(last.get("time") or 0)))
        return f"{last.get('message') or 'compiling'} · {elapsed} s"
    return phase.replace("_", " ")


def path_text(events: list[dict]) -> str:
    """The path the job took ("backend: unsloth, compiled, cache warm"), and how long its first
    step compiled once that is known."""
    at = next((i for i in range(len(events) - 1, -1, -1) if events[i].get("type") == "info"
               and events[i].get("path")), None)
    if at is None:
        return ""
    # this job's compile only: a resumed run's folder also holds the earlier job's events
    done = next((e for e in events[at:] if e.get("type") == "info" and e.get("compile_s") is not None), None)
    text = events[at].get("message", "")
    if done:
        text += f" · first step compiled in {done['compile_s']:.0f} s"
    return text


def status_html(st: dict, events: list[dict], now: float | None = None) -> str:
    status = st.get("status", "created")
    step, max_steps = st.get("step") or 0, st.get("max_steps") or 0
    pct = 100 * step / max_steps if max_steps else 0
    phase = phase_text(status, events, now)
    label = status + (" · stop requested" if st.get("stop_requested") else "")
    if phase:
        label += f" · {phase}"
    path = path_text(events)
    parts = [f'<div class="ts-run-head"><code>{esc(st.get("run_id", ""))}</code> '
             f'<span id="train-status">{badge(label, STATUS_KIND.get(status, "neutral"))}</span></div>',
             f'<div class="ts-progress ts-progress-lg"><div class="ts-progress-bar" style="width:{pct:.1f}%"></div></div>',
             '<div class="ts-run-stats">'
             f'<span>step <b id="train-step">{step_text(st)}</b></span>'
             f'<span>ETA <b>{_fmt_eta(st.get("eta_s")) if status == "running" else "–"}</b></span>'
             + (f'<span>loss <b>{st["loss"]:.4f}</b></span>' if isinstance(st.get("loss"), (int, float)) else "")
             + (f'<span>eval loss <b>{st["eval_loss"]:.4f}</b></span>' if isinstance(st.get("eval_loss"), (int, float)) else "")
             + (f'<span class="ts-muted">{esc(st.get("device") or "")} · {esc(st.get("backend") or "")}</span>'
                if st.get("device") and not path else "")
             + (f'<span class="ts-muted" id="train-path">{esc(((st.get("device") or "") + " · ") if st.get("device") else "")}'
                f'{esc(path)}</span>' if path else "") + "</div>"]
    if st.get("error"):
        parts.append(f'<div class="ts-msg ts-msg-err"><b>{esc(st["error"])}</b>'
                     + (f"<br>{esc(st['hint'])}" if st.get("hint") else "") + "</div>")
    return "".join(parts)


# Lines a person need not read in the log: tqdm's redraws (kept: the last one), and the kernels
# hub's note that it has no CPU kernel (bitsandbytes then uses its own, which is fine).
_TQDM = re.compile(r"\d+%\|.*\|\s*\d+/\d+|\[\d+:\d+<|it/s\]|s/it\]")
_NOISE = re.compile(r"kernels-community|gemm_4bit_forward|Failed to load CPU .*kernels|from kernels import")


def log_tail(run_dir: str | Path, lines: int = 40) -> str:
    p = Path(run_dir) / "log.txt"
    try:
        with open(p, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 64_000))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    out, bar = [], None
    for ln in text.replace("\r", "\n").splitlines():  # progress bars redraw with \r
        if not ln.strip() or _NOISE.search(ln):
            continue
        if _TQDM.search(ln):
            bar = ln.strip()  # only the latest state of the bar, shown last
            continue
        out.append(ln)
    return "\n".join(out[-lines:] + ([bar] if bar else []))


def live(run_dir: str | None) -> tuple[dict, list[dict]]:
    from core.training.runs import run_status

    if not run_dir or not Path(run_dir).is_dir():
        return {}, []
    return run_status(run_dir), read_events(run_dir)
