"""Atomic writes: build a temp file or folder beside the target, fsync, rename. A crash leaves the old
one or the new one, never half of one."""
from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from core.errors import StudioError

_WHY = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
        errno.EROFS: "the disk is read-only", errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


class WriteError(StudioError, OSError):
    """A failed save, in words for the user; still an OSError for code that catches those."""


def _write_error(path: Path, e: OSError) -> WriteError:
    why = _WHY.get(e.errno, e.strerror or str(e))
    err = WriteError(f"Could not save {path.name}: {why}.",
                     f"Nothing was changed: the previous {path.name} is intact. "
                     + ("Free some disk space and save again." if e.errno in (errno.ENOSPC, errno.EDQUOT)
                        else f"Check that {path.parent} is writable, then save again."))
    err.errno, err.strerror, err.filename = e.errno, e.strerror, str(path)
    return err


def _umask() -> int:
    """The process's umask, read without changing it where /proc tells it (os.umask() only reads by
    setting, which races other threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: Path, new_default: int) -> int:
    """The mode a rewritten path keeps: its own, else what open()/mkdir() would give a new one. The
    temporary file mkstemp makes is 600 (mkdtemp's folder 700), and os.replace would keep that."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return new_default & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.fchmod(fd, _mode_for(path, 0o666))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if isinstance(e, OSError) and not isinstance(e, StudioError):
            raise _write_error(path, e) from e
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def append_jsonl(path: str | os.PathLike, obj, durable: bool = True) -> None:
    """Appends one line, fsynced unless durable=False (a line that may be lost in a power cut, e.g. a
    training step's log: an fsync a step stalls the training loop); a reader never sees a partial
    line as valid JSON."""
    line = (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")
    path = Path(path)
    try:
        with open(path, "ab", buffering=0) as f:  # one write() call, nothing buffered at close
            start = f.tell()
            try:
                view = memoryview(line)
                while view:  # a nearly full disk can take part of it before refusing the rest
                    view = view[f.write(view):]
                if durable:
                    os.fsync(f.fileno())
            except OSError:
                f.truncate(start)  # no half line left behind for the next append to glue onto
                raise
    except OSError as e:
        raise _write_error(path, e) from e


@contextmanager
def atomic_dir(target: str | os.PathLike, *, tmp: str | os.PathLike | None = None, keep_existing: bool = False):
    """Yields an empty folder beside target to build in. On a clean exit it is renamed to target in one
    step; on an error it is removed. So target is whole or absent, never half written.

    An old target is removed first, or, with keep_existing, kept and the new build dropped (another
    process finished the same build first). tmp names the build folder when every rank of a launch
    must write to the same path; by default it is a fresh hidden sibling."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if tmp is None:
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        os.chmod(work, _mode_for(target, 0o777))
    else:
        work = Path(tmp)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    try:
        yield work
        if keep_existing:
            try:
                os.replace(work, target)
            except OSError:
                if not target.exists():
                    raise
                shutil.rmtree(work, ignore_errors=True)
        else:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)  # os.replace cannot put a folder over a non-empty one
            os.replace(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def inside(root: str | os.PathLike, candidate: str | os.PathLike) -> bool:
    """True when candidate (resolved, symlinks followed) lies inside root."""
    root_r = Path(root).resolve()
    cand_r = Path(candidate).resolve()
    return cand_r == root_r or root_r in cand_r.parents
