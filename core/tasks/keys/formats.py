"""Keylike JSONL: one {"image_path", "bittings", "keyway", "brand"} object per line.

Read on import (core/importers.py), written back on export (core/exporters.py); fields the studio
does not know are kept in the record and written back out.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from core.errors import StudioError
from core.importers import Item, resolve_image, source_extra
from core.tasks.base import Format

KEYLIKE_KEYS = {"image_path", "bittings", "keyway", "brand"}


def detect(path: Path) -> bool:
    """A .jsonl is Keylike's unless its first object is clearly another format's (no "bittings"
    but an "output" object, the json task's lines)."""
    if path.suffix.lower() != ".jsonl":
        return False
    try:
        with open(path, "rb") as f:
            for raw in f:
                if raw.strip():
                    obj = json.loads(raw.decode("utf-8-sig"))
                    return not (isinstance(obj, dict) and "bittings" not in obj and isinstance(obj.get("output"), dict))
    except (OSError, ValueError):
        return True   # a broken first line is reported per record by read()
    return True


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


class _NotUtf8(str):
    """A JSONL line that could not be decoded; the text says where."""


def read(path: Path) -> list[Item]:
    try:
        raw_lines = path.read_bytes().removeprefix(b"\xef\xbb\xbf").splitlines()
    except OSError as e:
        raise StudioError(f"{path.name} cannot be read: {e}.", "Check the file is UTF-8 JSON lines.") from e
    lines = []  # one line that is not UTF-8 is one bad record, not a bad file
    for raw in raw_lines:
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            lines.append(_NotUtf8(f"byte {e.start + 1} (0x{raw[e.start]:02x}) is not UTF-8"))
    base = path.parent.resolve()
    items, index = [], 0
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        it = Item(index + 1, "", line=n)  # items count from 1, as lines do
        index += 1
        items.append(it)
        if isinstance(line, _NotUtf8):
            it.code, it.reason = "bad_json", f"line {n} is not UTF-8 text: {line}"
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            it.code, it.reason = "bad_json", f"line {n} is not valid JSON: {e.msg} at column {e.colno}"
            continue
        if not isinstance(obj, dict):
            it.code, it.reason = "bad_field", f"line {n} is a {type(obj).__name__}, not an object"
            continue
        it.image_path = obj.get("image_path") if isinstance(obj.get("image_path"), str) else repr(obj.get("image_path"))
        it.extra = source_extra("keylike", path, index - 1, obj, KEYLIKE_KEYS, line=n)
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
