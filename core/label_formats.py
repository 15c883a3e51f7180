"""The installed tasks' label-file formats (Task.formats): which there are, which suffixes they read,
and which one a given label file is in.

Nothing here knows a format: every suffix list, folder glob and detector comes from the tasks. A label
file is in the format that claims it with the highest confidence (Format.detect -> 0..1); a tie at the
top between formats is settled by the task the caller prefers (the dataset's, or `--task`), and is
otherwise reported to the user as a StudioError that names both.
"""
from __future__ import annotations

import fnmatch
import logging
from pathlib import Path

from core.errors import StudioError

log = logging.getLogger(__name__)


def formats(prefer: str | None = None) -> list[tuple[str, object]]:
    """(task name, Format) of every installed task; the `prefer` task's formats first."""
    from core.tasks import all_tasks

    out = [(name, f) for name, t in all_tasks().items() for f in (getattr(t, "formats", None) or [])]
    return sorted(out, key=lambda nf: nf[0] != prefer) if prefer else out


def task_formats(task_name: str | None) -> list[object]:
    """The formats of one task, in its own order."""
    return [f for t, f in formats() if t == task_name]


def label_suffixes() -> tuple[str, ...]:
    """Every label-file suffix an installed format reads (".json", ".csv", ...): what zip extraction
    keeps and the upload box accepts."""
    return tuple(sorted({s.lower() for _t, f in formats() for s in f.suffixes}))


def is_label_name(name: str) -> bool:
    """A file name an installed format may read: by suffix, or by one of its folder globs."""
    base = name.replace("\\", "/").split("/")[-1]
    return base.lower().endswith(label_suffixes()) or any(
        fnmatch.fnmatch(base, pattern) for _t, f in formats() for pattern in f.files)


def described() -> str:
    """The installed formats for people: "<title> (<suffixes>, <task>), ..."."""
    return ", ".join(f"{f.title} ({'/'.join(f.suffixes) or 'any file'}, {t})" for t, f in formats())


def confidence(fmt, path: Path) -> float:
    """fmt.detect(path) as a number 0..1 (True/False are 1/0); a detector that fails claims nothing."""
    try:
        value = fmt.detect(path)
    except Exception as e:  # noqa: BLE001 - one task's broken detector must not stop an import
        log.warning("Format %s could not look at %s (%s: %s).", fmt.name, path.name, type(e).__name__, e)
        return 0.0
    try:
        return max(0.0, min(1.0, float(value or 0)))
    except (TypeError, ValueError):
        return 0.0


def _pick(claims: list[tuple[float, str, object, Path]], prefer: str | None, what: str):
    """The best of (confidence, task, Format, file) claims; ties at the top go to `prefer`, else are
    reported. None when nothing claims."""
    claims = [c for c in claims if c[0] > 0]
    if not claims:
        return None
    top = max(c[0] for c in claims)
    tied = [c for c in claims if c[0] == top]
    if len(tied) > 1:
        mine = [c for c in tied if c[1] == prefer]
        tied = mine if len(mine) == 1 else tied
    if len(tied) == 1:
        return tied[0][1:]
    names = " or ".join(f"{f.title} ({t} task)" for _c, t, f, _p in tied)
    tasks = list(dict.fromkeys(t for _c, t, _f, _p in tied))
    hint = ("Say which task it is for: " + " or ".join(f"--task {t}" for t in tasks)
            + ", or import it into a dataset of that task." if len(tasks) > 1 else
            f"The {tasks[0]} task's formats cannot tell this file apart; each detect() should recognise its own files.")
    raise StudioError(f"{what} could be {names}: they fit it equally well ({top:.2f}).", hint)


def format_of_file(path: Path, prefer: str | None = None):
    """(task name, Format) that reads this label file best, or None when no format claims it."""
    suffix = path.suffix.lower()
    claims = [(confidence(f, path), t, f, path) for t, f in formats(prefer) if suffix in (s.lower() for s in f.suffixes)]
    found = _pick(claims, prefer, path.name)
    return found[:2] if found else None


def label_file_in(folder: Path, prefer: str | None = None):
    """(task name, Format, label file) found in an imported folder (or a zip's single top folder) by
    the formats' globs (Format.files), each glob matching one file; None when there is none."""
    roots = [folder]
    subdirs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX"))]
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    if len(subdirs) == 1 and not files:  # a zip of one folder
        roots.append(subdirs[0])
    for root in roots:
        claims = []
        for task, f in formats(prefer):
            for pattern in f.files:
                found = [p for p in root.glob(pattern) if p.is_file()]
                if len(found) == 1:
                    claims.append((confidence(f, found[0]), task, f, found[0]))
        best = _pick(claims, prefer, f"The label file in {root.name or 'the folder'}")
        if best:
            return best
    return None
