"""Training examples from a dataset split, in the shape TRL 1.16's SFTTrainer takes natively.

Each example is {"images": [PIL], "prompt": [user turn], "completion": [assistant turn]}. With that
shape TRL's DataCollatorForVisionLanguageModeling renders the chat template, expands the image
tokens, pads, and - because the data is prompt/completion - sets the labels of the prompt
(including every image token) and of the padding to -100 (trl/trainer/sft_trainer.py,
`_collate_prompt_completion`, `completion_only_loss`). Images are loaded lazily per example, so a
large dataset never sits in memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

from core.errors import StudioError

LABELED = ("labeled", "reviewed")


class VisionExamples:
    """One split's usable records; loads and resizes the image when an example is read."""

    def __init__(self, dataset, task, split: str, image_side: int | None):
        self.dataset, self.task, self.split, self.image_side = dataset, task, split, image_side
        self.records = [r for r in dataset.records(split=split) if _usable(task, r)]
        self._texts: dict[int, tuple[str, str]] = {}  # (prompt, target) by row: a target can take
        # a parse (ui2sql pretty-prints through sqlglot, ~0.1 s for a long schema) - once per row

    def __len__(self) -> int:
        return len(self.records)

    def prepare_texts(self, budget_s: float = 3.0) -> int:
        """Renders rows' prompts and targets now, for at most `budget_s` seconds; returns how many
        are ready. Called before data-loader workers fork, so each worker inherits them instead of
        rendering each row once per worker: on a small dataset (many epochs, each starting with
        one worker's first batch) that rendering was the wait at every epoch start. A large
        dataset renders the rest lazily, in the workers, as before (a 4,400-word ui2sql target
        costs ~0.2 s: 64 of them took 14 s on an H200 host)."""
        import time

        t0 = time.perf_counter()
        for i, record in enumerate(self.records):
            if i not in self._texts:
                if time.perf_counter() - t0 > budget_s:
                    break
                self._texts[i] = (self.task.prompt(record), self.task.target(record))
        return len(self._texts)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self.records):
            raise IndexError(i)  # also ends `iter(dataset)`, which TRL uses to peek at the first example
        record = self.records[i]
        image = self.dataset.load_image(record)
        if self.image_side:
            image = resize_square(image, self.image_side)
        if i not in self._texts:
            self._texts[i] = (self.task.prompt(record), self.task.target(record))
        prompt, target = self._texts[i]
        return {"images": [image], "prompt": [{"role": "user", "content": prompt}],
                "completion": [{"role": "assistant", "content": target}]}

    def as_hf(self):
        """A `datasets.Dataset` (what SFTTrainer accepts) holding only row numbers; the example,
        image included, is built when a row is read (`with_transform`)."""
        import datasets

        def build(batch):
            rows = [self[i] for i in batch["row"]]
            return {key: [r[key] for r in rows] for key in ("images", "prompt", "completion")}

        level = datasets.logging.get_verbosity()
        datasets.logging.set_verbosity_error()  # "transform couldn't be hashed": nothing is cached here
        try:
            return datasets.Dataset.from_dict({"row": list(range(len(self)))}).with_transform(build)
        finally:
            datasets.logging.set_verbosity(level)


def resize_square(image: Image.Image, side: int) -> Image.Image:
    """The processor resizes to a square without keeping the aspect ratio; doing it here first
    keeps a 12-megapixel photo from travelling through the data loader."""
    if image.size == (side, side):
        return image
    return image.convert("RGB").resize((side, side), Image.BICUBIC)


def native_image_side(processor) -> int | None:
    """The model's input size as its image processor states it (Gemma 3: 896, Gemma 3n: 768)."""
    size = getattr(getattr(processor, "image_processor", None), "size", None) or {}
    if isinstance(size, dict):
        side = size.get("height") or size.get("shortest_edge") or size.get("width")
    else:
        side = getattr(size, "height", None) or getattr(size, "shortest_edge", None)
    return int(side) if side else None


def _usable(task, record: dict) -> bool:
    if record.get("status") not in LABELED:
        return False
    is_labeled = getattr(task, "is_labeled", None)
    return bool(is_labeled(record)) if is_labeled else True


def load_splits(cfg, processor=None):
    """(train, eval or None, image side). Raises StudioError when there is nothing to train on.
    Cheap without a processor (no image is read): the pre-launch check uses it that way."""
    from core.dataset import Dataset

    ds = Dataset.open(cfg.dataset)
    task = ds.task
    if cfg.task and task.name != cfg.task:
        raise StudioError(f"The dataset is a '{task.name}' dataset but the config says task={cfg.task}.",
                          f"Set task={task.name}, or pick a {cfg.task} dataset.")
    side = cfg.image_size or (native_image_side(processor) if processor is not None else None)
    train = VisionExamples(ds, task, cfg.train_split, side)
    if len(train) == 0:
        raise StudioError(f"The '{cfg.train_split}' split has no labeled examples.",
                          "Label some images and assign a train split in the Datasets tab "
                          "(`python -m core dataset split`).")
    ev = VisionExamples(ds, task, cfg.eval_split, side) if cfg.eval_split else None
    return train, (ev if ev is not None and len(ev) else None), side


def answer_token_ids(cfg, processor) -> list[int]:
    """Every token id the train split's answers use, as the tokenizer writes them (train_answer_tokens)."""
    train, _, _ = load_splits(cfg)
    tok = getattr(processor, "tokenizer", processor)
    ids: set[int] = set()
    for i in range(len(train)):
        ids.update(tok(train.task.target(train.records[i]), add_special_tokens=False)["input_ids"])
    return sorted(ids)


class TruncationStats:
    """What max_seq_length cut off, across all batches. `share()` moves the counters into shared
    memory so that data-loader worker processes (forked after it) count into the same place."""

    def __init__(self):
        self._values = [0, 0, 0]
        self._lock = None

    def share(self) -> "TruncationStats":
        import multiprocessing as mp

        if self._lock is None:
            self._values = mp.RawArray("q", self._values)
            self._lock = mp.Lock()
        return self

    def add(self, truncated: int, seen: int, longest: int) -> None:
        if self._lock is None:
            self._add(truncated, seen, longest)
        else:
            with self._lock:
                self._add(truncated, seen, longest)

    def _add(self, truncated: int, seen: int, longest: int) -> None:
        v = self._values
        v[0], v[1], v[2] = v[0] + truncated, v[1] + seen, max(v[2], longest)

    truncated = property(lambda self: int(self._values[0]))
    examples_seen = property(lambda self: int(self._values[1]))
    longest = property(lambda self: int(self._values[2]))

    def to_dict(self) -> dict:
        return {"truncated": self.truncated, "examples_seen": self.examples_seen, "longest_tokens": self.longest}


def truncate_batch(out: dict, limit: int | None, stats: TruncationStats) -> dict:
    """Cuts an untruncated, right-padded batch to `limit` tokens exactly as TRL would (keep the
    start), counting the examples that lose tokens. A cut inside the prompt would drop image tokens
    and crash the model with an opaque shape error, so that fails with advice instead."""
    lengths = out["attention_mask"].sum(dim=1)
    if limit is None or out["input_ids"].shape[1] <= limit:
        stats.add(0, len(lengths), int(lengths.max()))
        return out
    answer = out["labels"] != -100
    prompt_len = torch.where(answer.any(1), answer.int().argmax(1), lengths)
    if int(prompt_len.max()) >= limit:
        raise StudioError(
            f"max_seq_length={limit} is shorter than a prompt with its image tokens ({int(prompt_len.max())} tokens).",
            f"Raise max_seq_length to at least {int(lengths.max())} (the longest example in this batch).")
    stats.add(int((lengths > limit).sum()), len(lengths), int(lengths.max()))
    for key in ("input_ids", "attention_mask", "labels", "token_type_ids", "mm_token_type_ids"):
        if key in out and getattr(out[key], "dim", lambda: 0)() == 2:
            out[key] = out[key][:, :limit]
    return out


@dataclass
class CountingVisionCollator(DataCollatorForVisionLanguageModeling):
    """TRL's collator, plus counting what max_length cuts off (TRL truncates silently).

    The batch is built untruncated (TRL flushes it left), then cut by truncate_batch. With data
    loader workers, call `stats.share()` before they start so that their counts reach the trainer.
    """

    stats: TruncationStats | None = None

    def __post_init__(self):
        self.stats = self.stats or TruncationStats()

    def torch_call(self, examples):
        limit = self.max_length
        self.max_length = None
        try:
            out = super().torch_call(examples)
        finally:
            self.max_length = limit
        return truncate_batch(out, limit, self.stats)
