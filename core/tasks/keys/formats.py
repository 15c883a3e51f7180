"""Keylike JSONL: one {"image_path", "bittings", "keyway", "brand"} object per line.

Read on import (core/importers.py), written back on export (core/exporters.py); fields the studio
does not know are kept in the record and written back out.
"""
from __future__ import annotations

import re
from pathlib import Path

from core.importers import Item, first_jsonl_object, jsonl_items, resolve_image, source_extra
from core.tasks.base import Format

KEYLIKE_KEYS = {"image_path", "bittings", "keyway", "brand"}


def detect(path: Path) -> float:
    """How sure it is that a .jsonl is Keylike's, from its first object: "bittings" is Keylike's own
    key (1.0, or 0.9 among keys Keylike does not know); an object with Keylike's keys only is likely an
    unlabeled first key (0.5); a keyway or brand among other keys, maybe (0.3); a first line that is
    not an object is reported per record by read() (0.1); an object of other keys is another format's (0)."""
    if path.suffix.lower() != ".jsonl":
        return 0.0
    try:
        obj = first_jsonl_object(path)
    except (OSError, ValueError):
        return 0.1
    if not isinstance(obj, dict):
        return 0.1
    if "bittings" in obj:
        return 1.0 if set(obj) <= KEYLIKE_KEYS else 0.9
    if obj and set(obj) <= KEYLIKE_KEYS:
        return 0.5
    return 0.3 if {"keyway", "brand"} & set(obj) else 0.0


def _bitting(value) -> list[int]:
    if isinstance(value, str) and re.fullmatch(r"[\s,;\-]*(\d[\s,;\-]*)+", value):
        return [int(d) for d in re.findall(r"\d", value)]  # "1,2,5,3,7" / "12537"
    if not isinstance(value, list):
        raise ValueError(f"'bittings' must be a list of digits, got {type(value).__name__}")
    out = []
    for d in value:
        if isinstance(d, bool) or not isinstance(d, (int, str)) or (isinstance(d, str) and not d.strip().isdigit()):
            raise ValueError(f"'bittings' must hold whole numbers, got {d!r}")
        out.append(int(d))
    return out


def read(path: Path) -> list[Item]:
    base, items = path.parent.resolve(), []
    for it, obj, n in jsonl_items(path):
        items.append(it)
        if obj is None:
            continue
        it.image_path = obj.get("image_path") if isinstance(obj.get("image_path"), str) else repr(obj.get("image_path"))
        it.extra = source_extra("keylike", path, it.ref - 1, obj, KEYLIKE_KEYS, line=n)
        try:
            if "bittings" not in obj:
                raise ValueError("no 'bittings' list")
            bitting = _bitting(obj["bittings"])
            for k in ("keyway", "brand"):
                if obj.get(k) is not None and not isinstance(obj[k], str):
                    raise ValueError(f"'{k}' must be a string, got {type(obj[k]).__name__}")
        except ValueError as e:
            it.code, it.reason = "bad_field", str(e)
            continue
        it.fields = {"keyway": (obj.get("keyway") or "").strip(), "bitting": bitting,
                     "brand": (obj.get("brand") or "").strip()}
        if not isinstance(obj.get("image_path"), str):
            it.code, it.reason = "bad_field", f"image_path must be a string, got {type(obj.get('image_path')).__name__}"
            continue
        resolve_image(base, it)
    return items


def write_row(ds, record: dict, image_rel: str) -> dict:
    f = record.get("fields") or {}
    return {"image_path": image_rel, "bittings": list(f.get("bitting") or []), "keyway": f.get("keyway", ""),
            "brand": f.get("brand", "")}


FORMATS = [Format("keylike", "Keylike JSONL", detect, read, write_row, suffixes=(".jsonl",), files=("*.jsonl",),
                  default_name="dataset.jsonl", lines=True)]
