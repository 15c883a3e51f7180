"""Export a Dataset: its task's own label formats back (Task.formats with a writer) and a Hugging Face
`datasets` folder (`images` + `messages`, what TRL's SFTTrainer takes for VLMs).

Only labeled/reviewed records whose labels pass the task's validation are exported; the others
are listed in the result's "skipped" with a reason. Nothing is written inside the dataset folder.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from core import images as imgs
from core.errors import StudioError
from core.fsutil import atomic_write_bytes, atomic_write_text, inside

GENERIC_FORMATS = ("hf",)


def seed_formats(task_name: str | None = None) -> list[tuple[str, object]]:
    """(task name, Format) of every installed task's writable format (of one task with task_name)."""
    from core.label_formats import formats

    return [(t, f) for t, f in formats() if f.write is not None and task_name in (None, t)]


def format_names(task_name: str | None = None) -> list[str]:
    """The export formats of a task (its own writable formats, then hf); every one with task_name None."""
    return list(dict.fromkeys(f.name for _t, f in seed_formats(task_name))) + list(GENERIC_FORMATS)


def format_titles(task_name: str | None) -> list[tuple[str, str]]:
    """(title, name) of a task's export formats, for a picker."""
    return [(f.title, f.name) for _t, f in seed_formats(task_name)] + [
        ("Hugging Face datasets folder (images + messages)", "hf")]


def _exportable(ds, statuses) -> tuple[list[dict], list[dict]]:
    good, skipped = [], []
    for r in ds.records(status=statuses):
        try:
            errors = [i.message for i in ds.task.validate(r) if i.severity == "error"]
        except Exception as e:
            errors = [f"the task could not read its labels ({e})"]
        if errors:
            skipped.append({"record": r.get("id"), "reason": "invalid label: " + "; ".join(errors)})
            continue
        try:
            if not ds.image_path(r).is_file():
                raise StudioError(f"image {r.get('image')} is missing")
        except StudioError as e:
            skipped.append({"record": r.get("id"), "reason": e.message})
            continue
        good.append(r)
    return good, skipped


def _check_out(ds, out: Path) -> None:
    if inside(ds.path, out) or inside(out, ds.path):
        raise StudioError(f"Cannot export into {out}: it overlaps the dataset folder.",
                          "Pick an output path outside the dataset.")


def export(ds, fmt: str, out, overwrite: bool = False, statuses=("labeled", "reviewed")) -> dict:
    spec = next((f for _t, f in seed_formats(ds.task.name) if f.name == fmt), None)
    others = [t for t, f in seed_formats() if f.name == fmt]
    if spec is None and fmt not in GENERIC_FORMATS:
        if others:
            raise StudioError(f"The {fmt} format holds {others[0]} labels; this dataset is {ds.task.name}.",
                              f"Use --format {' or --format '.join(format_names(ds.task.name))}.")
        raise StudioError(f"Unknown export format '{fmt}'.", f"Use one of: {', '.join(format_names(ds.task.name))}.")
    out = Path(out).resolve()
    _check_out(ds, out)
    records, skipped = _exportable(ds, statuses)
    if fmt == "hf":
        n, more = _export_hf(ds, records, out, overwrite)
        skipped += more
        return {"format": fmt, "out": str(out), "records": n, "skipped": skipped}
    file = out if out.suffix.lower() in spec.suffixes else out / (spec.default_name or "labels" + "".join(spec.suffixes[:1]))
    if file.exists() and not overwrite:
        raise StudioError(f"{file} already exists.", "Pick another --out or pass --force to replace it.")
    folder = file.parent
    rows = []
    for r in records:
        rel = _copy_image(ds, r, folder)
        row = dict(r.get("source_extra") or {})  # fields we did not understand on import go back out
        row.update(spec.write(ds, r, rel))
        rows.append(row)
    if spec.dump is not None:  # the format writes its own kind of file (CSV, ...)
        body = spec.dump(rows)
        atomic_write_bytes(file, body if isinstance(body, bytes) else body.encode("utf-8"))
    elif not spec.lines:
        atomic_write_text(file, json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    else:
        atomic_write_text(file, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
    return {"format": fmt, "out": str(file), "records": len(rows), "skipped": skipped}


def _copy_image(ds, r: dict, folder: Path) -> str:
    src = ds.image_path(r)
    rel = f"images/{src.name}"
    dest = folder / rel
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
    return rel


def _export_hf(ds, records: list[dict], out: Path, overwrite: bool) -> tuple[int, list[dict]]:
    import datasets
    from datasets import Features, Image, List, Value

    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise StudioError(f"{out} exists and is not empty.", "Pick another --out or pass --force to replace it.")
    skipped: list[dict] = []
    rows = []
    for r in records:
        try:
            imgs.load_image(ds.image_path(r))  # checked, not stored: the PNG bytes go in as they are
            prompt, target = ds.task.prompt(r), ds.task.target(r)
        except StudioError as e:
            skipped.append({"record": r.get("id"), "reason": e.message})
            continue
        except Exception as e:  # a label the task cannot render
            skipped.append({"record": r.get("id"), "reason": f"the task could not build its prompt/target ({e})"})
            continue
        rows.append((str(ds.image_path(r)), str(r["id"]), r.get("split") or "", prompt, target))
    if not rows:
        raise StudioError("Nothing to export: no labeled record with a readable image and a valid label.",
                          "Label some images first (or check the validation report).")
    features = Features({
        "id": Value("string"), "split": Value("string"),
        "images": List(Image()),
        "messages": List({"role": Value("string"), "content": Value("string")}),
    })

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".hf-export-", dir=out.parent) as tmp:
        # streamed through an Arrow cache in tmp, so memory stays bounded; only plain data goes in
        # gen_kwargs because datasets fingerprints (pickles) them
        hfds = datasets.Dataset.from_generator(_hf_rows, features=features, gen_kwargs={"rows": rows},
                                               cache_dir=str(Path(tmp) / "cache"))
        staged = Path(tmp) / "staged"
        hfds.save_to_disk(str(staged))
        del hfds
        if out.exists():  # only reached with overwrite (or an empty folder)
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        staged.replace(out)  # the finished folder appears in one step
    return len(rows), skipped


def _hf_rows(rows):
    for path, rid, split, prompt, target in rows:
        yield {"id": rid, "split": split, "images": [{"bytes": Path(path).read_bytes(), "path": None}],
               "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": target}]}
