"""The planner's measured rows, split for an honest error: a fixed held-out third by config.

Each row of assets/memory_measurements.json stores `holdout: true|false`, chosen by a stable hash
of the row's config (model shapes + the memory-relevant training settings + backend), never at
random per run: `python3 bench/gpu_memory.py fit` fits core.memory.K on the other rows only, and
tests/test_memory.py reports the in-sample and the held-out errors separately.
"""
from __future__ import annotations

import hashlib
import json

# the settings that change memory (TrainConfig field names)
MEMORY_FIELDS = ("method", "load_in_4bit", "double_quant", "lora_r", "use_dora", "use_rslora",
                 "finetune_vision_layers", "finetune_language_layers", "finetune_attention_modules",
                 "finetune_mlp_modules", "batch_size", "gradient_accumulation_steps", "max_seq_length",
                 "gradient_checkpointing", "optimizer", "precision")


def planner_config(row: dict) -> dict:
    """The train config the planner is scored on: rows measured while bf16 QLoRA still upcast to
    fp32 carry planner_precision fp16 (they describe the path fp16 GPUs keep)."""
    tc = dict(row["train_config"])
    if row.get("planner_precision"):
        tc["precision"] = row["planner_precision"]
    return tc


def config_key(row: dict) -> str:
    mc = row["model_config"]
    text = mc.get("text_config") or mc
    tc = planner_config(row)
    key = {"model": [mc.get("model_type"), text.get("hidden_size"), text.get("num_hidden_layers")],
           "backend": row.get("backend", "hf"), **{k: tc.get(k) for k in MEMORY_FIELDS}}
    return json.dumps(key, sort_keys=True)


def is_holdout(row: dict) -> bool:
    """A third of the configs, by a stable hash (the same config always lands on the same side)."""
    return int(hashlib.sha256(config_key(row).encode()).hexdigest()[:8], 16) % 3 == 0


def predicted(row: dict) -> float:
    from core import memory

    return memory.estimate(row["model_config"], planner_config(row), row.get("backend", "hf"))["predicted_peak_gb"]


def error(row: dict) -> float:
    """(predicted - measured) / measured of the reserved peak: negative = the planner promised too little."""
    m = row["measured_peak_reserved_gb"]
    return (predicted(row) - m) / m


def split(rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(in-sample, held-out) by the stored flag."""
    return [r for r in rows if not r.get("holdout")], [r for r in rows if r.get("holdout")]
