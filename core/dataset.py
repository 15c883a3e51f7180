"""A dataset on disk: dataset.json + records.jsonl + content-addressed images/<sha16>.png.

A record is a plain dict: {"id", "image", "fields", "split", "status", "updated", ...}; keys this
module does not know are kept. Every change re-reads records.jsonl, edits it and rewrites it
atomically while holding an fcntl lock on `.lock`, so two processes (two studio users, a CLI
import next to the UI) never lose each other's saves; a kill -9 leaves the old file or the new one.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import random
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core import images as imgs
from core.errors import StudioError
from core import suggestions as sug
from core.fsutil import atomic_write_bytes, atomic_write_json, atomic_write_text, inside
from core.tasks import Task, all_tasks, get_task, task_for_dataset

STATUSES = ("unlabeled", "suggested", "labeled", "reviewed")  # suggested: a model's answer waits for review
SPLITS = ("train", "val", "test")
META_FILE, RECORDS_FILE, IMAGES_DIR, LOCK_FILE = "dataset.json", "records.jsonl", "images", ".lock"
FORMAT_VERSION = 1


class _RawLine(str):
    """A records.jsonl line that is not a JSON object: kept verbatim so no rewrite loses it."""


def _now(after: str | None = None) -> str:
    t = datetime.now(timezone.utc)
    if after:  # strictly increasing, so a conflicting edit is always visible as a changed stamp
        try:
            prev = datetime.fromisoformat(after)
            if t <= prev:
                t = prev + timedelta(microseconds=1)
        except ValueError:
            pass
    return t.isoformat(timespec="microseconds")


class Dataset:
    def __init__(self, path: Path, meta: dict):
        self.path = Path(path).resolve()
        self._meta = meta
        self.task: Task = task_for_dataset(meta, self.path.name)
        self._local = threading.local()

    # ---- create / open -------------------------------------------------------------------
    @classmethod
    def create(cls, path, task: str, name: str | None = None, config: dict | None = None) -> "Dataset":
        """config: the task's per-dataset settings stored in dataset.json (the json task's
        {"schema": {...}}); the task checks them before anything is written."""
        path = Path(path)
        extra = {k: v for k, v in (config or {}).items() if k not in ("format", "name", "task", "created", "split")}
        get_task(task)  # unknown task -> StudioError before anything is written
        task_for_dataset({"task": task, "name": name or path.name, **extra})  # so is a bad configuration
        if (path / META_FILE).exists():
            raise StudioError(f"{path} is already a dataset.", "Open it instead, or pick another folder.")
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise StudioError(f"{path} exists and is not an empty folder.",
                              "Pick a new folder name; the studio never writes into other folders.")
        (path / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT_VERSION, "name": name or path.name, "task": task,
                "created": _now(), "split": None, **extra}
        atomic_write_text(path / RECORDS_FILE, "")
        atomic_write_json(path / META_FILE, meta)  # written last: its presence marks a dataset
        return cls(path, meta)

    @classmethod
    def open(cls, path) -> "Dataset":
        path = Path(path)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise StudioError(f"{path} is not a dataset (no {META_FILE}).",
                              "Create one with `python -m core dataset import SRC --into FOLDER`.")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise StudioError(f"{meta_path} is not valid JSON: {e}.", "Fix or restore the file.") from e
        if not isinstance(meta, dict) or not isinstance(meta.get("task"), str):
            raise StudioError(f"{meta_path} does not name a task.",
                              f'Add "task": one of {", ".join(all_tasks())}.')
        return cls(path, meta)

    @classmethod
    def scan(cls, root) -> list[tuple[Path, "Dataset | StudioError"]]:
        """Every dataset folder directly under root, by name: (path, the Dataset or why it cannot be
        opened, e.g. "Dataset 'x' needs task 'y', which is not installed.")."""
        out = []
        for p in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
            if (p / META_FILE).is_file():
                try:
                    out.append((p, cls.open(p)))
                except StudioError as e:
                    out.append((p, e))
        return out

    @classmethod
    def find_all(cls, root) -> list["Dataset"]:
        """Datasets directly under root (e.g. workspace/datasets), by name; broken ones skipped."""
        out = []
        for p in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
            if (p / META_FILE).is_file():
                try:
                    out.append(cls.open(p))
                except StudioError:
                    continue
        return out

    @property
    def meta(self) -> dict:
        try:
            self._meta = json.loads((self.path / META_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # keep the last good copy
        return dict(self._meta)

    @property
    def name(self) -> str:
        return self._meta.get("name") or self.path.name

    def update_meta(self, **changes) -> dict:
        with self._locked():
            meta = self.meta
            meta.update(changes)
            atomic_write_json(self.path / META_FILE, meta)
            self._meta = meta
        return dict(meta)

    # ---- storage -------------------------------------------------------------------------
    @contextmanager
    def _locked(self):
        depth = getattr(self._local, "depth", 0)
        if depth:  # re-entrant within one thread; flock would deadlock against ourselves
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _read_rows(self) -> list:
        try:
            text = (self.path / RECORDS_FILE).read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return []
        rows: list = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            rows.append(obj if isinstance(obj, dict) else _RawLine(line))
        return rows

    def _write_rows(self, rows: list) -> None:
        lines = [r if isinstance(r, _RawLine) else json.dumps(r, ensure_ascii=False) for r in rows]
        data = ("\n".join(lines) + "\n" if lines else "").encode("utf-8", errors="surrogateescape")
        atomic_write_bytes(self.path / RECORDS_FILE, data)

    def bad_lines(self) -> list[tuple[int, str]]:
        """(line number, text) of records.jsonl lines that are not JSON objects."""
        out, n = [], 0
        for r in self._read_rows():
            n += 1
            if isinstance(r, _RawLine):
                out.append((n, str(r)))
        return out

    # ---- reading -------------------------------------------------------------------------
    def records(self, split=None, status=None) -> list[dict]:
        """All records (fresh from disk), optionally only those in split(s) / with status(es)."""
        splits = {split} if isinstance(split, str) else set(split) if split else None
        statuses = {status} if isinstance(status, str) else set(status) if status else None
        out = []
        for r in self._read_rows():
            if isinstance(r, _RawLine):
                continue
            if splits is not None and r.get("split") not in splits:
                continue
            if statuses is not None and r.get("status") not in statuses:
                continue
            out.append(r)
        return out

    def get(self, id: str) -> dict:
        for r in self.records():
            if r.get("id") == id:
                return r
        raise StudioError(f"Record '{id}' is not in dataset {self.name}.",
                          "It may have been deleted; reload the dataset.")

    def image_path(self, record: dict) -> Path:
        rel = record.get("image")
        if not isinstance(rel, str) or not rel or os.path.isabs(rel):
            raise StudioError(f"Record '{record.get('id')}' has no valid image path ({rel!r}).",
                              "Image paths are relative to the dataset folder, e.g. images/<hash>.png.")
        p = self.path / rel
        if not inside(self.path, p):
            raise StudioError(f"Record '{record.get('id')}' points outside the dataset folder ({rel}).",
                              "The studio only reads images inside the dataset folder.")
        return p

    def load_image(self, record: dict, max_pixels: int | None = None):
        return imgs.load_image(self.image_path(record), max_pixels=max_pixels)

    def counts(self) -> dict:
        recs = self.records()
        status = {s: 0 for s in STATUSES}
        split = {s: 0 for s in SPLITS} | {"none": 0}
        for r in recs:
            st = r.get("status")
            status[st if st in status else "unlabeled"] += 1
            sp = r.get("split")
            split[sp if sp in SPLITS else "none"] += 1
        return {"status": status, "split": split, "total": len(recs)}

    # ---- writing -------------------------------------------------------------------------
    def _status_for(self, record: dict, wanted: str | None, previous: dict | None = None) -> str:
        """A wanted status is kept when it fits the labels; incomplete labels are always
        "unlabeled" (or "suggested", while a model's suggestion waits on the record) and complete
        ones never are (so a stale status cannot stick)."""
        if wanted is not None and wanted not in STATUSES:
            raise StudioError(f"Unknown status '{wanted}'.", f"Use one of: {', '.join(STATUSES)}.")
        if not self.task.is_labeled(record):
            return "suggested" if sug.has_suggestion(record) else "unlabeled"
        if wanted in ("labeled", "reviewed"):
            return wanted
        if previous and previous.get("status") == "reviewed" and previous.get("fields") == record.get("fields"):
            return "reviewed"
        return "labeled"

    def store_image(self, src, max_pixels: int | None = None) -> tuple[str, tuple[int, int]]:
        """Normalises src to PNG and writes images/<sha16>.png (once). Returns (relative path, size)."""
        data, sha, size = imgs.normalise_to_png(src, max_pixels=max_pixels)
        rel = f"{IMAGES_DIR}/{sha}.png"
        dest = self.path / rel
        if not dest.exists():
            atomic_write_bytes(dest, data)
        return rel, size

    def add_image(self, src, fields: dict | None = None, status: str | None = None,
                  extra: dict | None = None) -> tuple[dict, bool]:
        """Adds one image (path or bytes). Returns (record, is_duplicate): an image already in the
        dataset returns its existing record (given labels fill it only if it had none)."""
        rel, _ = self.store_image(src)
        record, outcome = self.add_stored([(rel, fields, status, extra)])[0]
        return record, outcome != "added"

    def add_stored(self, items: list[tuple]) -> list[tuple[dict, str]]:
        """items: (image rel path from store_image, fields, status, extra). One locked rewrite for
        all of them. Outcome per item: "added", "labels_added" (an unlabeled duplicate got the
        labels) or "duplicate"."""
        results = []
        with self._locked():
            rows = self._read_rows()
            by_image = {r.get("image"): r for r in rows if isinstance(r, dict)}
            ids = {r.get("id") for r in rows if isinstance(r, dict)}
            for rel, fields, status, extra in items:
                existing = by_image.get(rel)
                if existing is not None:
                    candidate = {**existing, "fields": {**(existing.get("fields") or {}), **(fields or {})}}
                    if fields and not self.task.is_labeled(existing) and self.task.is_labeled(candidate):
                        existing.update(fields=candidate["fields"], updated=_now(existing.get("updated")),
                                        status=self._status_for(candidate, status))
                        sug.finish(self.task, None, existing)
                        results.append((existing, "labels_added"))
                    else:
                        results.append((existing, "duplicate"))
                    continue
                rid, k = Path(rel).stem, 1
                while rid in ids:  # only after hand edits: keep ids unique
                    rid, k = f"{Path(rel).stem}-{k}", k + 1
                rec = {k2: v for k2, v in (extra or {}).items()
                       if k2 not in ("id", "image", "fields", "split", "status", "updated")}
                rec.update(id=rid, image=rel, fields=dict(fields or {}), split=None)
                rec["status"] = self._status_for(rec, status)
                rec["updated"] = _now()
                rows.append(rec)
                by_image[rel], ids = rec, ids | {rid}
                results.append((rec, "added"))
            self._auto_split_rows(rows)
            self._write_rows(rows)
        return [(dict(r), outcome) for r, outcome in results]

    def _find(self, rows: list, id: str) -> int:
        for i, r in enumerate(rows):
            if isinstance(r, dict) and r.get("id") == id:
                return i
        return -1

    @staticmethod
    def _check_conflict(stored: dict | None, id: str, expected_updated: str | None) -> None:
        if expected_updated is None:
            return
        if stored is None:
            raise StudioError(f"Record '{id}' was deleted by someone else while you edited it.",
                              "Reload the dataset; your edit was not saved.")
        if stored.get("updated") != expected_updated:
            raise StudioError(
                f"Record '{id}' was changed by someone else (saved {stored.get('updated')}) since you "
                "opened it; your edit was not saved so theirs is not overwritten.",
                "Reload the record to see their version, then apply your change again.")

    def _validated(self, record: dict) -> dict:
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
            raise StudioError("A record needs a non-empty string 'id'.", "Save records read from this dataset.")
        self.image_path(record)  # raises if missing or escaping
        if not isinstance(record.get("fields", {}), dict):
            raise StudioError(f"Record '{record['id']}': 'fields' must be an object.", "")
        if record.get("split") not in (*SPLITS, None):
            raise StudioError(f"Unknown split '{record.get('split')}'.", f"Use one of {', '.join(SPLITS)} or null.")
        return record

    def save_record(self, record: dict, expected_updated: str | None = None) -> dict:
        """Writes one record (new or replacing the one with its id). With expected_updated, refuses
        (StudioError) when the stored record's `updated` differs: someone else saved in between."""
        record = self._validated(dict(record))
        with self._locked():
            rows = self._read_rows()
            i = self._find(rows, record["id"])
            stored = rows[i] if i >= 0 else None
            self._check_conflict(stored, record["id"], expected_updated)
            merged = {**(stored or {}), **record}  # keys the caller did not send are kept
            merged["fields"] = dict(merged.get("fields") or {})
            merged.setdefault("split", None)
            merged["status"] = self._status_for(merged, record.get("status") or None, None)
            sug.finish(self.task, stored, merged)
            merged["updated"] = _now(stored.get("updated") if stored else None)
            if i >= 0:
                rows[i] = merged
            else:
                rows.append(merged)
            self._auto_split_rows(rows, only=merged)
            self._write_rows(rows)
        return dict(merged)

    def set_fields(self, id: str, fields: dict, status: str | None = None,
                   expected_updated: str | None = None, shown_suggestion: str | None = None) -> dict:
        """Merges fields into the record's fields (keys not given are kept) and saves it. The status
        follows the labels unless given: unlabeled when incomplete, else labeled (a reviewed record
        stays reviewed only if nothing changed). shown_suggestion: the run whose suggestion the
        editor showed; a label saved from it records which fields were kept and which the person
        changed (core/suggestions.py)."""
        if not isinstance(fields, dict):
            raise StudioError("Fields must be a dict of field name -> value.", "")
        with self._locked():
            rows = self._read_rows()
            i = self._find(rows, id)
            stored = rows[i] if i >= 0 else None
            if stored is None and expected_updated is None:
                raise StudioError(f"Record '{id}' is not in dataset {self.name}.", "Reload the dataset.")
            self._check_conflict(stored, id, expected_updated)
            new = {**stored, "fields": {**(stored.get("fields") or {}), **fields}}
            new["status"] = self._status_for(new, status, stored)
            sug.finish(self.task, stored, new, shown_suggestion)
            new["updated"] = _now(stored.get("updated"))
            rows[i] = new
            self._auto_split_rows(rows, only=new)
            self._write_rows(rows)
        return dict(new)

    def put_suggestions(self, run: str, answers: dict[str, dict]) -> dict:
        """Stores one run's suggestion per record id, in one locked rewrite. Only records without a
        label take one: a record labeled meanwhile (someone saved it while the model was answering)
        is left exactly as it is. `updated` does not move: a suggestion is not an edit, so an editor
        open on the record saves over it without a conflict. Returns the counts of "written",
        "labeled" (skipped: labeled meanwhile) and "missing" (deleted meanwhile)."""
        out = {"written": 0, "labeled": 0, "missing": 0}
        with self._locked():
            rows = self._read_rows()
            by_id = {r.get("id"): r for r in rows if isinstance(r, dict)}
            for rid, answer in answers.items():
                rec = by_id.get(rid)
                if rec is None:
                    out["missing"] += 1
                elif rec.get("status") in ("labeled", "reviewed") or self.task.is_labeled(rec):
                    out["labeled"] += 1
                else:
                    sug.put(rec, run, answer)
                    rec["status"] = self._status_for(rec, None)
                    out["written"] += 1
            if out["written"]:
                self._write_rows(rows)
        return out

    def delete(self, id: str, expected_updated: str | None = None) -> dict:
        """Removes the record; its image file goes too when no other record uses it."""
        with self._locked():
            rows = self._read_rows()
            i = self._find(rows, id)
            if i < 0:
                raise StudioError(f"Record '{id}' is not in dataset {self.name}.", "It may already be deleted.")
            self._check_conflict(rows[i], id, expected_updated)
            gone = rows.pop(i)
            self._write_rows(rows)
            if not any(isinstance(r, dict) and r.get("image") == gone.get("image") for r in rows):
                try:
                    p = self.image_path(gone)
                    if p.parent == self.path / IMAGES_DIR:
                        p.unlink(missing_ok=True)
                except (StudioError, OSError):
                    pass
        return gone

    # ---- split ---------------------------------------------------------------------------
    def _auto_split_rows(self, rows: list, only: dict | None = None) -> None:
        """A labeled record without a split joins one now, so a labeled record is never left out of
        training until someone presses Re-split: the dataset's own seed and fractions (the defaults
        before any split), drawn by a stable hash of seed + id, so a record always lands in the same
        split; with min_records or fewer labeled records everything trains, as split() does."""
        conf = self._meta.get("split") or {}
        usable = [r for r in rows if isinstance(r, dict) and r.get("status") in ("labeled", "reviewed")]
        small = len(usable) <= int(conf.get("min_records", 20))
        val, test = float(conf.get("val_fraction", 0.1)), float(conf.get("test_fraction", 0.0))
        for r in usable if only is None else [r for r in usable if r is only]:
            if r.get("split") is not None:
                continue
            h = int(hashlib.sha256(f"{conf.get('seed', 42)}:{r.get('id')}".encode()).hexdigest()[:8], 16) / 2**32
            r["split"] = "train" if small else "val" if h < val else "test" if h < val + test else "train"

    def split(self, seed: int = 42, val_fraction: float = 0.1, test_fraction: float = 0.0,
              min_records: int = 20) -> dict:
        """Seeded split of the labeled/reviewed records (unlabeled ones get split None).

        The seed's rule: with more than min_records records, ceil(val_fraction*n) go to val (and
        ceil(test_fraction*n) to test); otherwise everything trains. Same records + seed -> same split.
        """
        for name, v in (("val", val_fraction), ("test", test_fraction)):
            if not 0.0 <= float(v) < 1.0:
                raise StudioError(f"The {name} fraction must be in [0, 1), got {v}.", "e.g. --val 0.1")
        if val_fraction + test_fraction >= 1.0:
            raise StudioError("val + test fractions leave nothing to train on.", "Keep their sum below 1.")
        with self._locked():
            rows = self._read_rows()
            recs = [r for r in rows if isinstance(r, dict)]
            usable = sorted((r for r in recs if r.get("status") in ("labeled", "reviewed")),
                            key=lambda r: str(r.get("id")))
            random.Random(seed).shuffle(usable)
            n = len(usable)
            n_val = math.ceil(round(val_fraction * n, 6)) if n > min_records else 0
            n_test = math.ceil(round(test_fraction * n, 6)) if n > min_records else 0
            if n and n_val + n_test >= n:
                n_val, n_test = 0, 0
            assigned = {id(r): "val" for r in usable[:n_val]}
            assigned |= {id(r): "test" for r in usable[n_val:n_val + n_test]}
            assigned |= {id(r): "train" for r in usable[n_val + n_test:]}
            for r in recs:
                r["split"] = assigned.get(id(r))
            self._write_rows(rows)
            self.update_meta(split={"seed": seed, "val_fraction": val_fraction,
                                    "test_fraction": test_fraction, "min_records": min_records,
                                    "at": _now()})
        return self.counts()["split"]

    # ---- reports, import, export (kept in their own modules) ----------------------------
    def validate(self, progress=None, near_threshold: int | None = None) -> dict:
        from core.dataset_report import validate_dataset
        return validate_dataset(self, progress=progress, near_threshold=near_threshold)

    def import_source(self, src, task: str | None = None, progress=None) -> dict:
        from core.importers import import_source
        return import_source(self, src, task=task, progress=progress)

    def export(self, fmt: str, out, overwrite: bool = False, statuses=("labeled", "reviewed")) -> dict:
        from core.exporters import export
        return export(self, fmt, out, overwrite=overwrite, statuses=statuses)


def format_report(report: dict) -> str:
    from core.dataset_report import format_report as _fmt
    return _fmt(report)
