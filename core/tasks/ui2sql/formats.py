"""Ghost Architect's dataset_vision.json: [{"image_path", "instruction", "output" (the SQL), "domain"}].

Read on import (core/importers.py), written back on export (core/exporters.py); fields the studio
does not know are kept in the record and written back out.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.errors import StudioError
from core.importers import Item, json_error, resolve_image, source_extra
from core.tasks.base import Format

GHOST_KEYS = {"image_path", "instruction", "output", "domain"}


def _entries(data):
    """The list of entries: the file's list, or one under "data" / "records" / "items"."""
    if isinstance(data, dict):
        return next((v for k, v in data.items() if k in ("data", "records", "items") and isinstance(v, list)), data)
    return data


def detect(path: Path) -> float:
    """A .json list of {"image_path", "output", ...}: sure when the first entry has image_path with
    output or instruction (1.0), plausible with image_path alone (0.5) or for an empty list (0.3).
    Any other .json gets 0.1, so that when no format reads it better, read() says what is wrong with
    it (not JSON at line L, not a list of records)."""
    if path.suffix.lower() != ".json":
        return 0.0
    try:
        data = _entries(json.loads(path.read_text(encoding="utf-8-sig")))
    except (OSError, UnicodeDecodeError, ValueError):
        return 0.1
    if isinstance(data, list) and not data:
        return 0.3
    first = data[0] if isinstance(data, list) else None
    if not isinstance(first, dict) or "image_path" not in first:
        return 0.1
    return 1.0 if {"output", "instruction"} & set(first) else 0.5


def read(path: Path) -> list[Item]:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise json_error(path, e) from e
    except (OSError, UnicodeDecodeError) as e:
        raise StudioError(f"{path.name} cannot be read: {e}.", "Check the file is UTF-8 JSON.") from e
    data = _entries(data)
    if not isinstance(data, list):
        raise StudioError(f"{path.name} is not a list of records.",
                          'Ghost Architect format: [{"image_path": ..., "instruction": ..., "output": ..., "domain": ...}].')
    base = path.parent.resolve()
    items = []
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            items.append(Item(i + 1, "", reason=f"entry is a {type(obj).__name__}, not an object", code="bad_field"))
            continue
        raw = obj.get("image_path")
        it = Item(i + 1, raw if isinstance(raw, str) else repr(raw))  # people count items from 1
        bad = [k for k in ("output", "instruction", "domain")
               if obj.get(k) is not None and not isinstance(obj[k], str)]
        if not isinstance(raw, str):
            it.code, it.reason = "bad_field", f"image_path must be a string, got {type(raw).__name__}"
        elif obj.get("output") is None:
            it.code, it.reason = "missing_label", "no 'output' (the SQL schema)"
        elif bad:
            it.code, it.reason = "bad_field", f"'{bad[0]}' must be a string, got {type(obj[bad[0]]).__name__}"
        else:
            it.fields = {"sql": obj["output"]}
            for k in ("domain", "instruction"):
                if isinstance(obj.get(k), str) and obj[k].strip():
                    it.fields[k] = obj[k]
            resolve_image(base, it)
        it.extra = source_extra("ghost", path, i, obj, GHOST_KEYS)
        items.append(it)
    return items


def write_row(ds, record: dict, image_rel: str) -> dict:
    f = record.get("fields") or {}
    return {"image_path": image_rel, "instruction": f.get("instruction") or ds.task.prompt(record),
            "output": f.get("sql", ""), "domain": f.get("domain", "")}


FORMATS = [Format("ghost", "Ghost Architect dataset_vision.json", detect, read, write_row, suffixes=(".json",),
                  files=("dataset_vision.json",), default_name="dataset_vision.json", lines=False)]
