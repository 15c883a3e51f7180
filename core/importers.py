"""Import into a Dataset: a folder of images, a zip, or a label file in one of the installed tasks' own
formats (Task.formats; which one is core/label_formats.py's to say).

Every bad item is skipped with its record (1-based item number, line or file name) and a reason; the good ones
import; nothing already in the dataset changes except unlabeled duplicates gaining labels. Only a
source that cannot be read at all raises StudioError (the CLI's exit 2).
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from core.archives import extract_zip
from core.errors import StudioError
from core.fsutil import inside
from core.images import is_image_name
from core.label_formats import (confidence, described, format_of_file, formats, is_label_name, label_file_in,
                                task_formats)

__all__ = ["Item", "import_source", "sniff", "formats", "summary_lines", "plural", "item_name", "resolve_image",
           "json_error", "source_extra", "jsonl_items", "csv_items", "first_jsonl_object"]

BATCH = 50       # records per locked rewrite of records.jsonl


@dataclass
class Item:
    ref: object                 # what the user sees as "record": index, line or file name
    image_path: str             # as written in the source
    path: Path | None = None    # resolved file to read
    fields: dict | None = None
    extra: dict = field(default_factory=dict)
    reason: str | None = None   # set when the item is already known to be bad
    code: str = ""
    line: int | None = None
    pos: int = 0                # order in the source, for the report
    warnings: list = field(default_factory=list)


def _skip_entry(report: dict, name: str, code: str, reason: str) -> None:
    _skip(report, Item(name, name), code, reason)


def _skip(report: dict, it: Item, code: str, reason: str) -> None:
    entry = {"record": it.ref, "image_path": it.image_path, "code": code, "reason": reason, "_pos": it.pos}
    if it.line is not None:
        entry["line"] = it.line
    report["skipped"].append(entry)


def plural(n: int, one: str, many: str | None = None) -> str:
    """"1 record", "2 records": counts read as words, not as "1 record(s)"."""
    return f"{n} {one if n == 1 else many or one + 's'}"


def item_name(entry: dict) -> str:
    """Where a skipped or warned item is, in words: "line 3" (JSONL), "item 2" (a JSON list), or its file."""
    if entry.get("line") is not None:
        return f"line {entry['line']}"
    return f"item {entry['record']}" if isinstance(entry.get("record"), int) else str(entry.get("record"))


def summary_lines(report: dict) -> list[str]:
    """The import's outcome in sentences (the CLI prints them; the studio shows them)."""
    n, lab = report.get("imported", 0), report.get("labeled", 0)
    head = f"Imported {plural(n, 'new image')}"
    if n:
        if lab == n:
            head += ", all labeled" if n > 1 else ", labeled"
        else:
            head += (", not labeled yet" if n == 1 else ", none labeled yet") if lab == 0 else f", {lab} of them labeled"
    lines = [head + "."]
    if report.get("labels_added"):
        lines.append(f"{plural(report['labels_added'], 'image')} already in the dataset got labels.")
    if report.get("duplicates"):
        lines.append(f"{plural(report['duplicates'], 'duplicate image')} skipped (already in the dataset).")
    if report.get("ignored"):
        names = report.get("ignored_files") or []
        shown = f" ({', '.join(names[:3])}{', …' if len(names) > 3 else ''})" if names else ""
        lines.append(f"{plural(report['ignored'], 'non-image file')} ignored{shown}: neither an image nor a label "
                     "file of this dataset's task.")
    if report.get("split"):
        sp = report["split"]
        lines.append("Split: " + ", ".join(f"{k} {v}" for k, v in sp.items() if v) + ".")
    return lines


# ---- what a source is: the tasks' own formats (core/label_formats.py) ----------------------------
def _hint() -> str:
    return f"Give a folder of images, a .zip, or a label file: {described() or 'no installed task reads label files'}."


def _source(src: Path, prefer: str | None = None) -> tuple[str, str | None, object]:
    """(kind, task it implies or None, Format or None): kind is folder | zip | image | label."""
    if not src.exists():
        raise StudioError(f"{src} does not exist.", _hint())
    if src.is_dir():
        found = label_file_in(src, prefer)
        return ("folder", found[0] if found else None, None)
    if zipfile.is_zipfile(src):
        # only the entries a format may read are unpacked to look at, with the import's own safety checks
        with tempfile.TemporaryDirectory(prefix="trinity-sniff-") as tmp:
            extract_zip(src, Path(tmp), {"skipped": [], "ignored": 0}, lambda *_a: None, keep=is_label_name,
                        images=False)
            found = label_file_in(Path(tmp), prefer)
        return "zip", found[0] if found else None, None
    if src.suffix.lower() == ".zip":  # named like a zip but no readable central directory: cut off or not a zip
        raise StudioError(f"{src.name} is not a readable zip archive (damaged, cut off, or another format).",
                          "Re-create or re-download the archive, or import the unpacked folder.")
    found = format_of_file(src, prefer)
    if found:
        return "label", found[0], found[1]
    if is_image_name(src.name):
        return "image", None, None
    raise StudioError(f"Cannot import {src.name}: not a folder, zip, image or a label file a task reads.", _hint())


def sniff(src, prefer: str | None = None) -> tuple[str, str | None]:
    """(format, task it implies or None): folder | zip | image | a task's format name.
    prefer: the task of the dataset being imported into (or --task), which settles a tie between formats."""
    kind, task, fmt = _source(Path(src), prefer)
    return (fmt.name if fmt is not None else kind), task


# ---- entry point -------------------------------------------------------------------------------
def import_source(ds, src, task: str | None = None, progress=None) -> dict:
    src = Path(src)
    kind, need, fmt = _source(src, ds.task.name)
    if task and task != ds.task.name:
        raise StudioError(f"This dataset's task is {ds.task.name}, not {task}.", "Import into a dataset of that task.")
    report = {"source": str(src), "format": fmt.name if fmt is not None else kind, "imported": 0, "labeled": 0,
              "labels_added": 0, "duplicates": 0, "skipped": [], "warnings": [], "ignored": 0}
    if kind == "zip":
        with tempfile.TemporaryDirectory(prefix="trinity-zip-") as tmp:
            extract_zip(src, Path(tmp), report, _skip_entry, keep=is_label_name)
            _import_folder(ds, Path(tmp), report, progress)
    elif kind == "folder":
        _import_folder(ds, src, report, progress)
    elif kind == "image":
        _ingest(ds, [Item(src.name, src.name, src)], report, progress)
    else:
        _import_label_file(ds, need, fmt, src, report, progress)
    for e in report["skipped"]:
        e.pop("_pos", None)
    if ds.meta.get("split") is None and (report["labeled"] or report["labels_added"]):
        report["split"] = ds.split()  # the first labels get the seeded split, so they can train at once
    report["total"] = len(ds.records())
    return report


def _import_label_file(ds, need: str, f, path: Path, report: dict, progress) -> None:
    if ds.task.name != need:
        if confidence(f, path) >= 0.5:
            raise StudioError(f"{path.name} holds {need} labels ({f.title}) but this dataset's task is {ds.task.name}.",
                              f"Import it into a {need} dataset (--task {need} with a new --into folder).")
        own = ", ".join(f"{x.title} ({'/'.join(x.suffixes)})" for x in task_formats(ds.task.name))
        raise StudioError(f"{path.name} is not a label file the {ds.task.name} task reads.",
                          f"The {ds.task.name} task reads: {own}." if own else
                          f"The {ds.task.name} task reads no label files; import its images and label them in Annotate.")
    report["format"] = f.name
    items = f.read(path)
    _ingest(ds, items, report, progress)
    missing = [e for e in report["skipped"] if e["code"] == "missing_image"]
    if items and len(missing) == len(items):  # a label file uploaded without its images
        report["hint"] = (f"None of the images {path.name} names were found next to it. Upload a zip that "
                          f"holds {path.name} and its images, or give the folder that holds them in the "
                          "path box.")


def _import_folder(ds, root: Path, report: dict, progress) -> None:
    found = label_file_in(root, ds.task.name)
    if found:
        report["label_file"] = found[2].name
        _import_label_file(ds, found[0], found[1], found[2], report, progress)
        return
    items = []
    root_r = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root_r):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__MACOSX")))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(root_r).as_posix()
            if name.startswith("."):
                continue
            if not is_image_name(name):
                report["ignored"] += 1
                report.setdefault("ignored_files", []).append(rel)
                continue
            it = Item(rel, rel, p)
            if p.is_symlink() and not inside(root_r, p):
                it.code, it.reason = "path_escapes", "symlink leads outside the imported folder"
            items.append(it)
    _ingest(ds, items, report, progress)


# ---- the common path: check label, store image, commit in batches ----------------------------
def _label_problems(ds, it: Item) -> tuple[list[str], list[str]]:
    """(errors, warnings). An error about a field the source left empty (a format whose field is
    optional) is not a bad label but an incomplete one: the record imports, unlabeled, with a warning."""
    rec = {"id": str(it.ref), "image": "", "fields": it.fields, "status": "labeled", "split": None}
    try:
        issues = ds.task.validate(rec)
    except Exception as e:  # a label the task cannot even read is a bad label, not a crash
        return [f"the {ds.task.name} task could not read it ({type(e).__name__}: {e})"], []
    errors, warnings = [], []
    for i in issues:
        text = i.message + (f" [{i.field}]" if getattr(i, "field", None) else "")
        given = i.field is None or it.fields.get(i.field) not in (None, "", [])
        if i.severity == "error" and given:
            errors.append(text)
        else:
            warnings.append(text if i.severity != "error" else f"incomplete label, needs annotation: {text}")
    return errors, warnings


def _ingest(ds, items: list[Item], report: dict, progress) -> None:
    pending: list[tuple[Item, str]] = []
    names = [f.name for f in ds.task.fields]

    def flush():
        results = ds.add_stored([(rel, it.fields, None, it.extra) for it, rel in pending]) if pending else []
        for (it, _), (rec, outcome) in zip(pending, results):
            if outcome in ("added", "labels_added"):
                report["imported" if outcome == "added" else "labels_added"] += 1
                if outcome == "added" and rec.get("status") in ("labeled", "reviewed"):
                    report["labeled"] += 1
                report["warnings"] += [{"record": it.ref, "image_path": it.image_path, "reason": w,
                                        **({"line": it.line} if it.line is not None else {})}
                                       for w in it.warnings]
            else:
                report["duplicates"] += 1
                theirs = rec.get("fields") or {}
                differ = it.fields and any(theirs.get(n) != it.fields[n] for n in names if it.fields.get(n) not in (None, "", []))
                _skip(report, it, "duplicate", f"duplicate: same image as record {rec['id']}"
                      + (" which has different labels (kept those)" if differ else ""))
                report["skipped"][-1]["duplicate_of"] = rec["id"]
        pending.clear()

    first = len(report["skipped"])
    for k, it in enumerate(items):
        it.pos = k
        if progress:
            progress(k, len(items))
        if it.reason:
            _skip(report, it, it.code or "skipped", it.reason)
            continue
        if it.fields is not None:
            errors, warnings = _label_problems(ds, it)
            if errors:
                _skip(report, it, "invalid_label", "invalid label: " + "; ".join(errors))
                continue
            it.warnings = warnings  # reported only if the record is imported
        try:
            rel, _ = ds.store_image(it.path)
        except StudioError as e:
            _skip(report, it, "too_large" if "limit of" in e.message else "bad_image", e.message)
            continue
        pending.append((it, rel))
        if len(pending) >= BATCH:
            flush()
    flush()
    # duplicates are known only at commit time; list skips in source order all the same
    report["skipped"][first:] = sorted(report["skipped"][first:], key=lambda e: e.get("_pos", 0))
    if progress:
        progress(len(items), len(items))


# ---- the seed formats --------------------------------------------------------------------------
def resolve_image(base: Path, it: Item) -> None:
    raw = it.image_path
    if not isinstance(raw, str) or not raw.strip():
        it.code, it.reason = "bad_field", f"image_path must be a non-empty string, got {type(raw).__name__}"
        return
    p = Path(raw.strip())
    cand = p if p.is_absolute() else base / p
    if not inside(base, cand):
        it.code, it.reason = "path_escapes", f"image_path '{raw}' leads outside the folder of the label file"
    elif not cand.is_file():
        it.code, it.reason = "missing_image", f"image file '{raw}' not found"
    else:
        it.path = cand


def json_error(path: Path, e: json.JSONDecodeError) -> StudioError:
    return StudioError(f"{path.name} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}.",
                       "Fix the file (a missing comma or bracket?) and import again.")


def source_extra(fmt: str, path: Path, index: int, obj: dict, known: set, line: int | None = None) -> dict:
    src = {"format": fmt, "file": path.name, "index": index}
    if line is not None:
        src["line"] = line
    extra = {"source": src}
    unknown = {k: v for k, v in obj.items() if k not in known}
    if unknown:
        extra["source_extra"] = unknown  # unknown fields are kept, and written back on export
    return extra


def jsonl_items(path: Path):
    """Yields (Item, object, line number) for each non-blank line of a JSON-lines label file; a line
    that is not UTF-8, not JSON or not an object gets its Item's code/reason and object None (one bad
    line is one bad record, not a bad file). Items count from 1, as lines do."""
    try:
        raw_lines = path.read_bytes().removeprefix(b"\xef\xbb\xbf").splitlines()
    except OSError as e:
        raise StudioError(f"{path.name} cannot be read: {e}.", "Check the file is UTF-8 JSON lines.") from e
    index = 0
    for n, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        index += 1
        it, obj = Item(index, "", line=n), None
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            it.code, it.reason = "bad_json", f"not UTF-8 text (byte {e.start + 1} is 0x{raw[e.start]:02x})"
        except json.JSONDecodeError as e:
            it.code, it.reason = "bad_json", f"not valid JSON: {e.msg} at column {e.colno}"
        else:
            if not isinstance(obj, dict):
                it.code, it.reason, obj = "bad_field", f"a {type(obj).__name__}, not an object", None
        yield it, obj, n


def csv_items(path: Path):
    """Yields (Item, row, line number) for each data row of a CSV label file whose first row names the
    columns (csv.DictReader: quoting, commas inside quotes, a BOM). A row with more or fewer cells than
    the header gets its Item's code/reason and row None; raises StudioError for a file that cannot be
    read or has no header."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise StudioError(f"{path.name} cannot be read: {e}.", "Check the file is a UTF-8 CSV.") from e
    except UnicodeDecodeError as e:
        raise StudioError(f"{path.name} is not UTF-8 text (byte {e.start + 1}).", "Save the CSV as UTF-8.") from e
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames
    except csv.Error as e:
        raise StudioError(f"{path.name} is not a readable CSV: {e}.", "Check its quoting.") from e
    if not header:
        raise StudioError(f"{path.name} is empty.", "A CSV label file starts with a header row naming its columns.")
    index, line = 0, 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            index += 1
            it = Item(index, "", line=reader.line_num, code="bad_csv", reason=f"line {reader.line_num}: {e}")
            yield it, None, reader.line_num
            continue
        index, line = index + 1, reader.line_num
        it = Item(index, "", line=line)
        if None in row:
            it.code, it.reason, row = "bad_field", f"line {line} has more cells than the header's {len(header)}", None
        elif any(v is None for v in row.values()):
            it.code, it.reason = "bad_field", f"line {line} has fewer cells than the header's {len(header)}"
            row = None
        yield it, row, line


def first_jsonl_object(path: Path):
    """The first non-blank line of a JSON-lines file, parsed (None for an empty file), for the formats'
    detect(); OSError / ValueError propagate, each format decides what a broken line means."""
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                return json.loads(raw.decode("utf-8-sig"))
    return None
