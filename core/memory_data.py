"""The sequence length a training run will really see: its dataset's longest example.

The collator pads a batch to its longest example and cuts at max_seq_length, so the planner's
tokens per example are min(longest example, max_seq_length). The longest example is counted with
the chosen model's own processor where it can be loaded here (chat template + tokenizer for the
text, the processor's image expansion for each image); otherwise it is a stated estimate. Only the
CANDIDATES longest examples by characters are rendered, so a large dataset stays quick.
`plan_dataset` is what both `python -m core plan --dataset D` and the Train tab's gauge call.
"""
from __future__ import annotations

import copy
import math
from functools import lru_cache
from pathlib import Path

from core.errors import StudioError

LABELED = ("labeled", "reviewed")  # the statuses the job trains on (core/training/data.py)
EST_BYTES_PER_TOKEN = 3.0  # conservative for Gemma's tokenizer (~4 characters per English token)


CANDIDATES = 64  # examples rendered exactly: the longest by characters (a target can take a SQL parse)


def _examples(dataset: str, split: str):
    """(dataset, [(record, prompt, target)] of the CANDIDATES longest by characters, usable count)."""
    import json

    from core.dataset import Dataset

    ds = Dataset.open(dataset)
    task = ds.task
    usable = [r for r in ds.records(split=split) if r.get("status") in LABELED
              and (not getattr(task, "is_labeled", None) or task.is_labeled(r))]
    usable.sort(key=lambda r: len(task.prompt(r)) + len(json.dumps(r.get("fields") or {}, ensure_ascii=False)),
                reverse=True)
    return ds, [(r, task.prompt(r), task.target(r)) for r in usable[:CANDIDATES]], len(usable)


def _messages(prompt: str, target: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
            {"role": "assistant", "content": [{"type": "text", "text": target}]}]


def _count_with_processor(processor, ds, rows) -> tuple[int, str]:
    tok = getattr(processor, "tokenizer", processor)

    def text_len(prompt, target):
        text = processor.apply_chat_template(_messages(prompt, target), tokenize=False)
        return len(tok(text, add_special_tokens=False)["input_ids"]), text

    lengths = [text_len(p, t)[0] for _, p, t in rows]
    i = max(range(len(rows)), key=lengths.__getitem__)
    record, prompt, target = rows[i]
    n_text, text = text_len(prompt, target)
    # the processor expands the image placeholder into the model's image tokens: count it once, exactly
    full = processor(text=[text], images=[[ds.load_image(record).convert("RGB")]], add_special_tokens=False)
    return len(full["input_ids"][0]), f"counted with the processor of the model (longest: record {record.get('id')})"


def _estimate(rows, mm_tokens: int) -> tuple[int, str]:
    longest = max(len((p + t).encode("utf-8")) for _, p, t in rows)
    n = math.ceil(longest / EST_BYTES_PER_TOKEN) + 16 + mm_tokens + 4
    return n, (f"estimated: the model's processor is not downloaded here, so ~{EST_BYTES_PER_TOKEN:g} bytes of text "
               f"per token + {mm_tokens + 4} tokens per image")


def _local_processor(model_id: str):
    """The model's processor from this machine only (a model folder, the demo model, or the hub
    cache): the gauge must not wait on the network. None when it is not here."""
    try:
        from transformers import AutoProcessor

        from core import models

        path = models.resolve(model_id)
        return AutoProcessor.from_pretrained(path, local_files_only=True, **models._hub_kwargs())
    except Exception:  # noqa: BLE001 - not downloaded / unknown id: fall back to the estimate
        return None


@lru_cache(maxsize=16)
def _longest(dataset: str, stamp: float, model_id: str, split: str, mm_tokens: int) -> tuple[int, str, int]:
    ds, rows, usable = _examples(dataset, split)
    if not rows:
        raise StudioError(f"The '{split}' split of {dataset} has no labeled examples to plan from.",
                          "Label some images and assign a train split, or plan without --dataset.")
    processor = _local_processor(model_id)
    if processor is not None:
        try:
            n, how = _count_with_processor(processor, ds, rows)
            return n, how, usable
        except Exception:  # noqa: BLE001 - a processor without a chat template etc.
            pass
    n, how = _estimate(rows, mm_tokens)
    return n, how, usable


def longest_example(dataset: str, model_id: str, split: str = "train", mm_tokens: int = 256) -> dict:
    """{"tokens", "how", "examples"}: the longest training example of the dataset, image tokens included."""
    p = Path(dataset)
    rec = p / "records.jsonl"
    stamp = rec.stat().st_mtime if rec.exists() else 0.0
    n, how, count = _longest(str(p.resolve()), stamp, model_id, split, mm_tokens)
    return {"tokens": n, "how": how, "examples": count}


def plan_dataset(model_config: dict, cfg, gpu, backend: str = "hf", dataset: str | None = None) -> dict:
    """core.memory.plan with the sequence length taken from the dataset when one is given (or the
    config's own dataset exists): result["sequence"] says which length was used and how it was found."""
    from core import memory

    c = memory._cfg_dict(cfg)
    ds = dataset or c.get("dataset")
    seq = {"max_seq_length": c["max_seq_length"], "tokens": c["max_seq_length"], "source": "max_seq_length",
           "text": f"max_seq_length {c['max_seq_length']} (no dataset to measure: every example assumed that long)"}
    if ds and (dataset or (Path(ds) / "dataset.json").exists()):
        mm = memory.shapes(model_config).get("mm_tokens", 256) or 256
        info = longest_example(ds, c["model_id"], c.get("train_split") or "train", mm)
        used = min(info["tokens"], c["max_seq_length"])
        cut = " (cut to max_seq_length)" if info["tokens"] > c["max_seq_length"] else ""
        seq = {"max_seq_length": c["max_seq_length"], "tokens": used, "longest_example": info["tokens"],
               "source": "dataset", "how": info["how"], "examples": info["examples"],
               "text": f"{used} tokens: the dataset's longest example is {info['tokens']} tokens{cut}, "
                       f"{info['how']}; {info['examples']} examples"}
        c = copy.deepcopy(c)
        c["max_seq_length"] = used
    result = memory.plan(model_config, c, gpu, backend)
    result["sequence"] = seq
    return result
