"""The dataset validation report: every problem, per record and with a reason. It removes nothing.

Checks: records.jsonl lines that are not records, duplicate ids, image paths that are missing or
leave the folder, unreadable / corrupt / truncated images, images over the pixel limit, exact
duplicates (same bytes), near duplicates (perceptual hash), missing labels, and each issue the
task's own validate() finds.
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict

import numpy as np

from core import images as imgs
from core import suggestions as sug
from core.dataset import STATUSES
from core.errors import StudioError


def _phash(im, side: int = 8) -> np.ndarray | None:
    """side x side DCT bits (robust to resizing and recompression) as uint64 words."""
    try:
        import imagehash
    except ImportError:  # the report still works, without near-duplicate detection
        return None
    bits = np.packbits(imagehash.phash(im, hash_size=side).hash.flatten())
    return bits.view(">u8").astype(np.uint64)


def _near_pairs(hashes: list[tuple[str, np.ndarray]], threshold: int) -> list[tuple[str, str, int]]:
    """(later id, earlier id, distance) for every pair within threshold bits; vectorised."""
    if len(hashes) < 2:
        return []
    ids = [h[0] for h in hashes]
    arr = np.stack([h[1] for h in hashes])  # (records, words)
    out = []
    for i in range(1, len(arr)):
        d = np.bitwise_count(np.bitwise_xor(arr[:i], arr[i])).sum(axis=1)
        for j in np.nonzero(d <= threshold)[0]:
            out.append((ids[i], ids[int(j)], int(d[j])))
    return out


def validate_dataset(ds, progress=None, near_threshold: int | None = None, max_pixels: int | None = None) -> dict:
    """near_threshold: bits of the perceptual hash within which two images count as nearly
    identical; None = the task's own (task.near_duplicate: hash side and bits)."""
    from core.tasks import BaseTask

    side, task_bits = getattr(ds.task, "near_duplicate", BaseTask.near_duplicate)
    near_threshold = task_bits if near_threshold is None else near_threshold
    issues: list[dict] = []

    def add(record, severity, code, reason, **more):
        issues.append({"record": record, "severity": severity, "code": code, "reason": reason, **more})

    for n, text in ds.bad_lines():
        add(f"records.jsonl line {n}", "error", "bad_line", f"not a JSON object (kept as is): {text[:80]!r}")

    recs = ds.records()
    id_counts = Counter(r.get("id") for r in recs)
    by_bytes: dict[str, list[str]] = defaultdict(list)
    phashes: list[tuple[str, np.ndarray]] = []
    readable = 0
    for k, r in enumerate(recs):
        rid = r.get("id") if isinstance(r.get("id"), str) and r.get("id") else f"#{k}"
        if progress:
            progress(k, len(recs))
        if id_counts[r.get("id")] > 1:
            add(rid, "error", "duplicate_id", f"the id '{rid}' is used by {id_counts[r.get('id')]} records")
        if r.get("status") not in STATUSES:
            add(rid, "warning", "bad_status", f"unknown status {r.get('status')!r}")
        if r.get("split") not in ("train", "val", "test", None):
            add(rid, "warning", "bad_split", f"unknown split {r.get('split')!r}")
        _check_labels(ds, r, rid, add)
        try:
            path = ds.image_path(r)
        except StudioError as e:
            add(rid, "error", "bad_image_path", e.message)
            continue
        if not path.is_file():
            add(rid, "error", "missing_image", f"image file {r.get('image')} is missing")
            continue
        try:
            data = path.read_bytes()
        except OSError as e:
            add(rid, "error", "unreadable_image", f"image {r.get('image')} cannot be read: {e}")
            continue
        sha = hashlib.sha256(data).hexdigest()
        by_bytes[sha].append(rid)
        try:
            im = imgs.load_image(data, max_pixels=max_pixels)
        except StudioError as e:
            code = "too_large" if "pixels" in e.message and "limit" in e.message else "corrupt_image"
            add(rid, "error", code, e.message.replace("The image", f"Image {r.get('image')}", 1))
            continue
        readable += 1
        if path.stem != sha[:16] and path.parent.name == "images":
            add(rid, "warning", "image_changed",
                f"image {r.get('image')} no longer matches its content hash (edited on disk?)")
        h = _phash(im, side)
        if h is not None:
            phashes.append((rid, h))
    if progress:
        progress(len(recs), len(recs))

    sha_of = {rid: sha for sha, rids in by_bytes.items() for rid in rids}
    for rids in by_bytes.values():
        for later in rids[1:]:
            add(later, "warning", "exact_duplicate", f"same image bytes as record {rids[0]}",
                duplicate_of=rids[0])
    for later, earlier, dist in _near_pairs(phashes, near_threshold):
        if sha_of.get(later) == sha_of.get(earlier):
            continue  # already reported as an exact duplicate
        add(later, "warning", "near_duplicate",
            f"looks nearly identical to record {earlier} (perceptual hash distance {dist}/{side * side})",
            duplicate_of=earlier)

    errors = sum(1 for i in issues if i["severity"] == "error")
    return {"dataset": ds.name, "task": ds.task.name, "records": len(recs), "images_readable": readable,
            "errors": errors, "warnings": len(issues) - errors,
            "by_code": dict(Counter(i["code"] for i in issues)), "counts": ds.counts(), "issues": issues,
            "suggestions": sug.stats(ds.task, recs)}


def _check_labels(ds, r: dict, rid: str, add) -> None:
    if not isinstance(r.get("fields", {}), dict):
        add(rid, "error", "bad_fields", "'fields' is not an object")
        return
    try:
        labeled = ds.task.is_labeled(r)
    except Exception as e:  # a task bug must not hide the rest of the report
        add(rid, "error", "task_error", f"the task could not read this record's labels: {e}")
        return
    if not labeled:
        if r.get("status") in ("labeled", "reviewed"):
            add(rid, "error", "missing_labels", f"marked {r.get('status')} but its labels are incomplete")
        elif sug.has_suggestion(r):
            add(rid, "warning", "missing_labels",
                f"not labeled yet: a suggestion from {sug.suggestion(r)[0]} waits for review")
        else:
            add(rid, "warning", "missing_labels", "not labeled yet")
    try:
        found = ds.task.validate(r)
    except Exception as e:
        add(rid, "error", "task_error", f"the task could not validate this record: {e}")
        return
    if not labeled:  # a value of the wrong type (hand edits) reads as "unlabeled": say what is wrong
        given = {k for k, v in r.get("fields", {}).items() if v not in (None, "", [])}
        found = [i for i in found if i.severity == "error" and getattr(i, "field", None) in given]
    for issue in found:
        where = f" [{issue.field}]" if getattr(issue, "field", None) else ""
        pos = f" (line {issue.line}, column {issue.column})" if getattr(issue, "line", None) else ""
        add(rid, issue.severity if issue.severity in ("error", "warning") else "warning",
            "label", f"{issue.message}{where}{pos}")


def format_report(report: dict, limit: int = 200) -> str:
    """The report for people: a summary, then one line per issue (errors first)."""
    from core.importers import plural

    lines = [f"Dataset {report.get('dataset', '')} ({report.get('task', '')}): {plural(report['records'], 'record')}, "
             f"{plural(report.get('images_readable', 0), 'readable image')}.",
             f"{plural(report.get('errors', 0), 'error')}, {plural(report.get('warnings', 0), 'warning')}."]
    counts = report.get("counts") or {}
    if counts:
        st, sp = counts.get("status", {}), counts.get("split", {})
        lines.append("Status: " + ", ".join(f"{k} {v}" for k, v in st.items())
                     + " | Split: " + ", ".join(f"{k} {v}" for k, v in sp.items()))
    lines += sug.format_stats(report.get("suggestions") or {})
    ordered = sorted(report.get("issues", []), key=lambda i: i["severity"] != "error")
    for i in ordered[:limit]:
        lines.append(f"  [{i['severity']}] {i['record']}: {i['reason']}")
    if len(ordered) > limit:
        lines.append(f"  ... and {len(ordered) - limit} more (use --json for all).")
    if not ordered:
        lines.append("No problems found.")
    return "\n".join(lines)
