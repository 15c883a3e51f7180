"""Meter CSV: a header row, then one `image,kind,reading,unit` row per photo (image paths relative to the
file). Readings are read and written as text, so "004217" keeps its zeros; columns the studio does not
know are kept in the record and written back out."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from core.importers import csv_items, resolve_image, source_extra
from core.tasks import Format

COLUMNS = ("image", "kind", "reading", "unit")


def detect(path: Path) -> float:
    """Sure when the header names image and reading (1.0), likely with image and kind or unit (0.5)."""
    if path.suffix.lower() != ".csv":
        return 0.0
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            header = {h.strip().lower() for h in next(csv.reader(f), [])}
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0.1   # read() says what is wrong with it
    if {"image", "reading"} <= header:
        return 1.0
    return 0.5 if "image" in header and header & {"kind", "unit"} else 0.0


def read(path: Path) -> list:
    base, items = path.parent.resolve(), []
    for it, row, line in csv_items(path):
        items.append(it)
        if row is None:
            continue
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items()}
        it.image_path = row.get("image", "")
        it.extra = source_extra("meter-csv", path, it.ref - 1, row, set(COLUMNS), line=line)
        reading = row.get("reading", "").replace(" ", "")
        if reading and not reading.isdigit():
            it.code, it.reason = "bad_field", f"reading '{row['reading']}' is not a row of digits"
            continue
        it.fields = {k: v for k, v in (("kind", row.get("kind", "")), ("reading", reading),
                                        ("unit", row.get("unit", ""))) if v}
        resolve_image(base, it)
    return items


def write_row(ds, record: dict, image_rel: str) -> dict:
    f = record.get("fields") or {}
    return {"image": image_rel, "kind": f.get("kind", ""), "reading": f.get("reading", ""), "unit": f.get("unit", "")}


def dump(rows: list[dict]) -> str:
    """The CSV text: our columns first, then any kept from the import, in order of appearance."""
    columns = list(dict.fromkeys([*COLUMNS, *(k for r in rows for k in r)]))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if r.get(k) is None else r[k]) for k in columns} for r in rows)
    return out.getvalue()


FORMATS = [Format("meter-csv", "Meter CSV (image, kind, reading, unit)", detect, read, write_row,
                  suffixes=(".csv",), files=("*.csv",), default_name="meters.csv", dump=dump)]
