"""python -m core plan: will a training config fit a GPU, where does the memory go, what to change.

  python -m core plan --config RUN/config.json --gpu t4 [--model-config config.json] [--json]
  python -m core plan --preset "Ghost Architect (T4)" --gpu 16
  python -m core plan --config RUN/config.json --gpu t4 --dataset workspace/datasets/mine

The tokens per example are the dataset's longest example (image tokens + text, counted with the
model's processor where it loads here, else estimated) when --dataset is given or the config's
dataset exists, else max_seq_length; the output says which.

The model's config.json comes from --model-config (a file or a model folder), else from the
config's model_id (local folder, or one small file from the hub), else - offline - from the
published shapes of the registry's Gemma 3 / 3n models.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.errors import StudioError


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="predict peak GPU memory of a training config before launch",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="TrainConfig JSON file (e.g. a run's config.json)")
    src.add_argument("--preset", help="a preset name instead of a file")
    p.add_argument("--model-config", help="the model's config.json (file or model folder); default: from model_id")
    p.add_argument("--gpu", required=True, help="t4, l4, a10g, a100-40, a100-80, h100, or GiB (e.g. 24)")
    p.add_argument("--backend", default="hf", choices=["hf", "unsloth", "auto"], help="training backend")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set batch_size=4")
    p.add_argument("--dataset", help="plan from this dataset's longest example (default: the config's dataset, if any)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=main)


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudioError(f"No {what} at {path}.", "Check the path.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StudioError(f"{path} is not valid JSON ({e}).", f"Pass the {what} as a JSON file.") from None
    if not isinstance(data, dict):
        raise StudioError(f"{path} does not hold a JSON object.", f"Pass the {what} as a JSON object.")
    return data


def load_model_config(model_id: str, model_config: str | None = None) -> tuple[dict, str]:
    """(config.json contents, where it came from)."""
    from core.memory import published_config

    if model_config:
        p = Path(model_config)
        return _read_json(p / "config.json" if p.is_dir() else p, "model config"), str(p)
    from core.models import read_model_config

    if not Path(model_id).is_dir():  # registry models: their published shapes, no network round trip
        known = published_config(model_id)
        if known is not None:
            return known, f"published shapes of {model_id}"
    try:
        return read_model_config(model_id), model_id
    except StudioError as e:
        raise StudioError(f"Could not read the config.json of {model_id}: {e.message}",
                          "Pass it with --model-config FILE (only config.json is needed, no weights).") from None


def main(args) -> int:
    from core.memory_data import plan_dataset
    from core.training.config import TrainConfig, preset

    cfg = preset(args.preset) if args.preset else TrainConfig.from_dict(_read_json(Path(args.config), "config"))
    cfg.apply_overrides(args.overrides)
    model_cfg, source = load_model_config(cfg.model_id, args.model_config)
    result = plan_dataset(model_cfg, cfg, args.gpu, backend=args.backend, dataset=args.dataset)
    if args.json:
        keys = ("predicted_peak_gb", "fits", "breakdown", "advice", "sequence", "notes")
        print(json.dumps({k: result[k] for k in keys}, indent=1))
        return 0
    print(format_plan(result, cfg.model_id, source))
    return 0


def format_plan(result: dict, model_id: str = "", source: str = "") -> str:
    b = result["breakdown"]
    ad, fw = b["activations_detail"], b["frozen_weights_detail"]
    rows = [
        (f"frozen weights ({fw['quantization']}; other weights {fw['other_params_dtype']})", b["frozen_weights"]),
        (f"adapter weights ({b['trainable_params'] / 1e6:.1f}M trainable)", b["adapter_weights"]),
        ("gradients", b["gradients"]),
        (f"optimizer states ({b['optimizer']})", b["optimizer_states"]),
        (f"activations at the peak ({ad['peak_phase']} phase)", b["activations"]),
        (f"  text layers (checkpointing {'on' if ad['gradient_checkpointing'] else 'off'})", ad["text_layers"]),
        ("  vision tower", ad["vision_tower"]),
        ("  logits / loss over the vocabulary", ad["logits_loss"]),
        ("CUDA allocator overhead", b["cuda_allocator_overhead"]),
    ]
    lines = [f"model: {model_id}" + (f"  [{source}]" if source and source != model_id else "")]
    if result.get("sequence"):
        lines.append(f"sequence: {result['sequence']['text']}")
    lines += [f"  {name:<62} {gb:7.2f} GiB" for name, gb in rows]
    verdict = "fits" if result["fits"] else "does NOT fit"
    lines.append(f"  {'predicted peak (reserved by torch)':<62} {result['predicted_peak_gb']:7.2f} GiB")
    lines.append(f"  + CUDA context {b['cuda_context_outside_peak']:.2f} GiB -> {verdict} a {result['gpu_gb']:.2f} GiB GPU")
    lines += [f"note: {n}" for n in result.get("notes", [])]
    if result["advice"]:
        lines.append("cheapest changes that make it fit:")
        for a in result["advice"]:
            peak = "-" if a["predicted_peak_gb"] is None else f"{a['predicted_peak_gb']:.2f} GiB"
            lines.append(f"  - {a['change']}  ->  {peak}")
    return "\n".join(lines)
