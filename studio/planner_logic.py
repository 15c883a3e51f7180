"""The Train tab's memory gauge, preset notes and GPU-count control, without Gradio.

The gauge is core.memory.plan() as `python -m core plan --gpu KEY` computes it: sizes in GiB (what
torch reports), the GPU's usable memory as CUDA reports it (a "16 GB" T4 has 14.75 GiB), and the
CUDA context (~0.6 GiB, outside torch's allocator) added before deciding whether the run fits.
Preset notes quote the measured table (assets/memory_measurements.json), not the planner.
"""
from __future__ import annotations

import json
from functools import lru_cache

from core import memory
from core.errors import StudioError
from core.training import config as C
from core.workspace import ASSETS
from studio.common import badge, esc

# (label, key of core.memory.GPUS): the key is what the CLI's --gpu takes
GPU_BUDGETS = [("T4 · 16 GB", "t4"), ("L4 · 24 GB", "l4"), ("A10G · 24 GB", "a10g"), ("A100 · 40 GB", "a100-40"),
               ("A100 · 80 GB", "a100-80"), ("H100 · 80 GB", "h100")]
GPU_LABELS = dict((k, lab) for lab, k in GPU_BUDGETS)
DEFAULT_GPU = "t4"
CPU = "cpu"  # the budget "this machine" on a machine without a CUDA GPU: nothing of GPU memory to plan
MEASURED = ASSETS / "memory_measurements.json"


def ram_gib() -> float:
    import psutil

    return psutil.virtual_memory().total / 2**30


def budget_choices(hw) -> list[tuple[str, str]]:
    """The budget picker: on a machine without a CUDA GPU, this machine first (it trains on CPU),
    then the GPUs a run can be sized for elsewhere; on a GPU machine the GPUs."""
    if hw.cuda:
        return list(GPU_BUDGETS)
    return [(f"This machine · CPU, {ram_gib():.0f} GiB RAM", CPU)] + [(f"{lab} (a GPU elsewhere)", k)
                                                                      for lab, k in GPU_BUDGETS]


def default_budget(hw) -> str:
    return DEFAULT_GPU if hw.cuda else CPU


def usable_gib(gpu: str | None) -> float | None:
    """The GPU's usable GiB; None for the CPU (a RAM run has no GPU budget line)."""
    return None if gpu == CPU else memory.gpu_gb(gpu or DEFAULT_GPU)


def planner_backend(cfg: C.TrainConfig) -> str:
    """The backend the plan is for: the CLI's default (hf) unless Unsloth is picked explicitly; the
    measured rows behind the planner are nearly all transformers+PEFT runs."""
    return "unsloth" if cfg.backend == "unsloth" else "hf"


@lru_cache(maxsize=32)
def _model_config_json(model_id: str) -> str:
    from core.cli.plan import load_model_config

    return json.dumps(load_model_config(model_id)[0])


def model_config(model_id: str) -> dict:
    """config.json contents without downloading weights: registry models by their published shapes,
    the demo model / a local folder by its own config.json (cached: the knobs change often)."""
    return json.loads(_model_config_json(model_id))


def plan_for(cfg: C.TrainConfig, gpu: str | None) -> dict:
    """What `python -m core plan --gpu KEY` says for this config: the same core function, with the
    tokens per example taken from the config's dataset (its longest example) when it exists."""
    from core.memory_data import plan_dataset

    return plan_dataset(model_config(cfg.model_id), cfg, gpu or DEFAULT_GPU, backend=planner_backend(cfg))


def _row(name: str, gib: float, sub: bool = False) -> str:
    return (f'<tr class="{"ts-sub" if sub else ""}"><td>{"&nbsp;&nbsp;" if sub else ""}{esc(name)}</td>'
            f'<td class="ts-num">{gib:.2f}</td></tr>')


def planner_html(cfg: C.TrainConfig | None, gpu: str | None) -> str:
    """Predicted peak (reserved) + CUDA context against the GPU's usable GiB, the breakdown, and
    the planner's cheapest changes when it does not fit."""
    gpu = gpu or DEFAULT_GPU
    if cfg is None:
        return '<div class="ts-gauge ts-muted">Set a valid config to see the predicted peak memory.</div>'
    if gpu == CPU:
        return ('<div class="ts-gauge" id="train-gauge-box" data-cpu="true"><div class="ts-gauge-head">'
                f"Trains on this machine's CPU ({ram_gib():.0f} GiB RAM): there is no GPU memory to plan. "
                "To size this run for a GPU elsewhere, pick that GPU above.</div></div>")
    try:
        res = plan_for(cfg, gpu)
    except StudioError as e:
        return f'<div class="ts-gauge ts-muted">Planner: {esc(e.message)}</div>'
    except Exception as e:  # noqa: BLE001 - the gauge must never break the tab
        return f'<div class="ts-gauge ts-muted">Planner failed: {esc(type(e).__name__)}: {esc(e)}</div>'
    b = res["breakdown"]
    peak, ctx, cap = res["predicted_peak_gb"], b["cuda_context_outside_peak"], res["gpu_gb"]
    need, fits = peak + ctx, res["fits"]
    pct = min(100.0, 100 * need / cap) if cap else 0
    ad, fw = b["activations_detail"], b["frozen_weights_detail"]
    rows = [_row(f"frozen weights ({fw['quantization']})", b["frozen_weights"]),
            _row(f"adapter weights ({b['trainable_params'] / 1e6:.1f}M trainable)", b["adapter_weights"]),
            _row("gradients", b["gradients"]), _row(f"optimizer states ({b['optimizer']})", b["optimizer_states"]),
            _row(f"activations ({ad['peak_phase']} phase at the peak)", b["activations"]),
            _row("text layers", ad["text_layers"], True), _row("vision tower", ad["vision_tower"], True),
            _row("logits / loss", ad["logits_loss"], True),
            _row("CUDA allocator overhead", b["cuda_allocator_overhead"]),
            _row("CUDA context (outside torch)", ctx)]
    advice = "" if fits else (
        '<div class="ts-gauge-advice"><b>Cheapest changes that make it fit:</b><ul>'
        + "".join(f"<li>{esc(a['change'])}"
                  + (f" → {a['predicted_peak_gb'] + ctx:.2f} GiB" if a.get("predicted_peak_gb") is not None else "")
                  + "</li>" for a in res["advice"][:4]) + "</ul></div>")
    backend = planner_backend(cfg)
    seq = res.get("sequence") or {}
    notes = "".join(f'<div class="ts-muted">{esc(n)}</div>' for n in res.get("notes", []))
    seq_html = (f'<div class="ts-muted" id="gauge-seq" data-tokens="{seq["tokens"]}" data-source="{esc(seq["source"])}">'
                f'Sequence: {esc(seq["text"])}</div>') if seq else ""
    return (f'<div class="ts-gauge" id="train-gauge-box" data-fits="{str(fits).lower()}" data-peak="{peak:.3f}">'
            f'<div class="ts-gauge-head">Predicted peak <b id="gauge-peak">{peak:.2f} GiB</b> + {ctx:.2f} GiB CUDA '
            f'context = <b>{need:.2f}</b> of <b>{cap:.2f} GiB</b> usable on {esc(GPU_LABELS.get(gpu, gpu + " GiB"))} '
            f'{badge("fits" if fits else "does not fit", "ok" if fits else "err")}</div>'
            f'<div class="ts-progress"><div class="ts-progress-bar {"" if fits else "ts-bar-err"}" '
            f'style="width:{pct:.0f}%"></div></div>'
            f'<details><summary>Where the memory goes (GiB, {esc(backend)} backend)</summary>'
            f'<table class="ts-breakdown">{"".join(rows)}</table></details>{seq_html}{notes}{advice}</div>')


# ---------------------------------------------------------------------- preset notes (measured)
_MATCH = ("method", "lora_r", "use_dora", "use_rslora", "load_in_4bit", "finetune_vision_layers", "batch_size",
          "gradient_checkpointing")


def _shape_key(model_cfg: dict) -> tuple:
    text = model_cfg.get("text_config") or model_cfg
    return (model_cfg.get("model_type"), text.get("hidden_size"), text.get("num_hidden_layers"))


def measured_rows(cfg: C.TrainConfig, gpu: str = DEFAULT_GPU) -> list[dict]:
    """Rows of the measured table for this config's model shapes and memory-relevant settings
    (any sequence length / gradient accumulation), sorted by sequence length. For an fp16 GPU (T4)
    the rows measured while bf16 QLoRA still upcast to fp32 (planner_precision fp16: the memory
    layout fp16 runs keep), for other GPUs the rows of today's bf16 path."""
    try:
        rows = json.loads(MEASURED.read_text(encoding="utf-8"))
        want = _shape_key(model_config(cfg.model_id))
    except (OSError, ValueError, StudioError):
        return []
    c = cfg.to_dict()
    out = [r for r in rows if _shape_key(r.get("model_config") or {}) == want
           and (r.get("train_config") or {}).get("backend", "hf") in ("hf", "auto")
           and all((r.get("train_config") or {}).get(k) == c[k] for k in _MATCH)
           and (r.get("planner_precision") == "fp16") == (str(gpu).lower() in memory.NO_BF16)]
    return sorted(out, key=lambda r: r["train_config"]["max_seq_length"])


def preset_note(name: str | None, gpu: str = DEFAULT_GPU) -> str:
    """Markdown: what the preset is, and whether it fits the GPU as measured (or only as planned)."""
    if not name or name not in C.PRESETS:
        return "Sensible defaults for the picked model on this machine."
    gpu = DEFAULT_GPU if gpu == CPU else gpu  # a preset is a GPU recipe: its note is about the GPU it is for
    cfg = C.preset(name)
    cap, label = usable_gib(gpu), GPU_LABELS.get(gpu, gpu)
    head = (f"**{name}**: {cfg.model_id}, {'4-bit QLoRA' if cfg.load_in_4bit else '16-bit'}"
            f"{' + DoRA' if cfg.use_dora else ''}{' + rsLoRA' if cfg.use_rslora else ''}, r={cfg.lora_r}, "
            f"batch {cfg.batch_size} × accumulation {cfg.gradient_accumulation_steps}, "
            f"max_seq_length {cfg.max_seq_length}.")
    rows = measured_rows(cfg, gpu)
    if not rows:
        try:
            p = plan_for(cfg, gpu)
        except StudioError as e:
            return f"{head} Not measured; the planner cannot size it: {e.message}"
        verdict = "fits" if p["fits"] else "does **not** fit"
        return (f"{head} Not measured on a GPU yet; the planner predicts {p['predicted_peak_gb']:.2f} GiB + "
                f"{memory.CUDA_CONTEXT_GB:.1f} GiB CUDA context: {verdict} a {label} ({cap:.2f} GiB usable).")
    lines = []
    for r in rows:
        t, got = r["train_config"], r["measured_peak_reserved_gb"]
        need = got + memory.CUDA_CONTEXT_GB
        ok = need <= cap
        extra = "" if t["gradient_accumulation_steps"] == cfg.gradient_accumulation_steps else \
            f", gradient accumulation {t['gradient_accumulation_steps']}"
        lines.append(f"- **{'Fits' if ok else 'Does not fit'} the {label} at {t['max_seq_length']} tokens** (measured "
                     f"{got:.2f} GiB reserved + {memory.CUDA_CONTEXT_GB:.1f} GiB CUDA context = {need:.2f} "
                     f"{'≤' if ok else '>'} {cap:.2f} GiB usable{extra})")
    path = (" in bf16 on the fp16 path's memory layout (fp32 upcast of the non-4-bit weights, as fp16 runs do); "
            "no fp16 GPU was measured" if rows[0].get("planner_precision") == "fp16" else "")
    return (f"{head}\n\n" + "\n".join(lines) + f"\n\nMeasured on a lent {esc(rows[0].get('device', 'GPU'))} with "
            f"random weights of the published shapes{path} (assets/memory_measurements.json).")


# ---------------------------------------------------------------------- GPUs: N
def gpu_control(hw) -> dict:
    """How the "GPUs" control shows on this machine: {visible, interactive, maximum, info}. Without a
    CUDA GPU it is not shown (the backend note names the machine: CPU)."""
    if hw.cuda and hw.gpu_count > 1:
        return {"visible": True, "interactive": True, "maximum": hw.gpu_count,
                "info": f"{hw.gpu_count} GPUs visible: more than 1 trains data-parallel under accelerate launch."}
    return {"visible": bool(hw.cuda), "interactive": False, "maximum": 1,
            "info": "One GPU is visible: multi-GPU training needs more than one."}


def backend_note(cfg: C.TrainConfig | None, hw, gpus: int) -> str:
    """Which backend the job will use with N GPUs, and why (core.training.job.choose_backend)."""
    from core.training.job import choose_backend

    if cfg is None:
        return ""
    try:
        backend, note = choose_backend(cfg, hw, world=max(1, int(gpus or 1)))
    except StudioError as e:
        return f'<div class="ts-msg ts-msg-err">{esc(e.message)} {esc(e.hint)}</div>'
    where = f"{gpus} GPUs" if gpus and gpus > 1 else hw.describe()
    liger = f" · Liger kernels {'on' if cfg.resolved_liger(hw, backend) else 'off'}" if backend == "hf" else ""
    return (f'<div class="ts-muted" id="train-backend-note">Backend: <b>{esc(backend)}</b> on {esc(where)}{liger}'
            + (f"<br>{esc(note)}" if note else "") + "</div>")
