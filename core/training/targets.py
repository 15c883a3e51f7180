"""Which linear layers get LoRA adapters, from the config's part (language / vision) and kind
(attention / MLP) toggles - the same four switches Unsloth's get_peft_model takes.

The result is one regular expression (PEFT full-matches a string `target_modules`), with layer
numbers generalised to \\d+, so adapter_config.json stays a few lines long even for 48 layers.
"""
from __future__ import annotations

import re

from core.errors import StudioError

VISION_PARTS = ("vision_tower", "vision_model", "multi_modal_projector", "embed_vision")
SKIP_PARTS = ("audio_tower", "embed_audio", "lm_head")
ATTENTION_PARTS = ("self_attn", "attn", "attention", "cross_attn")
MLP_PARTS = ("mlp", "feed_forward", "ffn")
# Gemma 3n's AltUp reads these weights directly instead of calling the layer, so an adapter on
# them would never take part in the forward pass (and 4-bit ones corrupt or fail).
NEVER = ("altup", "correction_coefs", "prediction_coefs", "modality_router")


def _is_linear(module) -> bool:
    import torch.nn as nn

    if isinstance(module, nn.Linear):
        return True
    # bitsandbytes Linear4bit / Linear8bitLt subclass nn.Linear; this catches other wrappers
    return type(module).__name__ in ("Linear4bit", "Linear8bitLt")


def classify(name: str) -> tuple[str, str] | None:
    """(part, kind) of a linear layer by its qualified name; None when it is never adapted."""
    parts = name.split(".")
    if any(p in SKIP_PARTS for p in parts) or any(n in name for n in NEVER):
        return None
    part = "vision" if any(p in VISION_PARTS for p in parts) else "language"
    if any(p in ATTENTION_PARTS for p in parts):
        kind = "attention"
    elif any(p in MLP_PARTS for p in parts):
        kind = "mlp"
    else:
        kind = "other"
    return part, kind


def select_modules(model, cfg) -> list[str]:
    """Qualified names of the linear layers that get adapters under cfg."""
    explicit = [t for t in cfg.target_modules if t != "all-linear"]
    chosen = []
    for name, module in model.named_modules():
        if not _is_linear(module):
            continue
        pk = classify(name)
        if pk is None:
            continue
        part, kind = pk
        if part == "language" and not cfg.finetune_language_layers:
            continue
        if part == "vision" and not cfg.finetune_vision_layers:
            continue
        leaf = name.rsplit(".", 1)[-1]
        if explicit:
            if leaf in explicit:
                chosen.append(name)
            continue
        if kind == "attention" and cfg.finetune_attention_modules:
            chosen.append(name)
        elif kind == "mlp" and cfg.finetune_mlp_modules:
            chosen.append(name)
        elif kind == "other" and part == "vision":
            # projector / embedding projections: on Gemma 3n (a convolutional vision tower) the
            # only linear layer on the vision side is embed_vision.embedding_projection
            chosen.append(name)
    if not chosen:
        raise StudioError(
            "No layer of this model matches the chosen target modules.",
            "Use target_modules=all-linear, or check the layer names and the language/vision and "
            "attention/MLP switches.")
    return chosen


def to_regex(names: list[str]) -> str:
    patterns = sorted({re.sub(r"\\\.\d+\\\.", r"\\.\\d+\\.", re.escape(n)) for n in names})
    return "(?:" + "|".join(patterns) + ")"


def target_regex(model, cfg) -> str:
    return to_regex(select_modules(model, cfg))
