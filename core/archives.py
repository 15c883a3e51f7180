"""Safe zip extraction: zip-slip and absolute names, symlinks, encrypted entries and zip bombs
(huge entries, extreme compression ratios, headers that lie, too much in total) are refused per
entry with a reason; everything else that looks like an image or a label file (the caller's `keep`:
the installed formats' names, core/label_formats.py) is unpacked."""
from __future__ import annotations

import os
import re
import stat
import zipfile
import zlib
from pathlib import Path

from core.errors import StudioError
from core.fsutil import inside
from core.images import is_image_name

MAX_ZIP_ENTRIES = 100_000
MAX_ENTRY_BYTES = 256 * 1024 ** 2
MAX_ZIP_TOTAL = int(os.environ.get("TRINITY_MAX_ZIP_BYTES", 4 * 1024 ** 3))
MAX_RATIO = 200  # real images barely compress; text inside a zip reaches ~10:1


# ---- zip ---------------------------------------------------------------------------------------
def _unsafe_name(name: str) -> str | None:
    n = name.replace("\\", "/")
    if "\x00" in n:
        return "entry name contains a NUL byte"
    if n.startswith("/") or re.match(r"^[A-Za-z]:", n):
        return "absolute path in the archive"
    if ".." in n.split("/"):
        return "path leads outside the archive folder (zip-slip)"
    return None


def extract_zip(src: Path, dest: Path, report: dict, skip, keep=lambda _name: False, images: bool = True) -> None:
    """Unpacks the safe entries of src into dest: images (unless images=False) and the names keep(name)
    wants (label files); skip(report, name, code, reason) records each refused one, and the others count
    as ignored (report["ignored"], names in report["ignored_files"]). Raises StudioError only when the
    archive itself is unreadable."""
    try:
        zf = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, OSError) as e:
        raise StudioError(f"{src.name} is not a readable zip: {e}.", "Re-create the archive.") from e
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_ENTRIES:
            raise StudioError(f"{src.name} has {len(infos):,} entries (limit {MAX_ZIP_ENTRIES:,}).",
                              "Split the archive, or import the folder directly.")
        total = 0
        for info in infos:
            name = info.filename
            if info.is_dir() or name.replace("\\", "/").split("/")[-1].startswith(".") or "__MACOSX" in name:
                continue
            reason = _unsafe_name(name)
            mode = info.external_attr >> 16
            if reason is None and stat.S_ISLNK(mode):
                reason = "symbolic link in the archive (not followed)"
            if reason is None and info.flag_bits & 0x1:
                reason = "encrypted entry"
            if reason is None and info.file_size > MAX_ENTRY_BYTES:
                reason = f"unpacks to {info.file_size / 1024 ** 2:,.0f} MB, over the {MAX_ENTRY_BYTES // 1024 ** 2} MB per-file limit"
            if reason is None and info.file_size > 1024 ** 2 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                reason = f"compression ratio {info.file_size // max(info.compress_size, 1):,}:1 (a zip bomb?)"
            if reason is None and total + info.file_size > MAX_ZIP_TOTAL:
                reason = f"the archive would unpack to more than {MAX_ZIP_TOTAL / 1024 ** 3:.1f} GB"
            if reason:
                skip(report, name, "unsafe_entry", reason)
                continue
            base = name.replace("\\", "/").split("/")[-1]
            if not ((images and is_image_name(base)) or keep(base)):
                report["ignored"] += 1
                report.setdefault("ignored_files", []).append(name)
                continue
            target = dest / name.replace("\\", "/")
            if not inside(dest, target):
                skip(report, name, "unsafe_entry", "path leads outside the archive folder")
                continue
            try:
                total += _copy_bounded(zf, info, target)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
                skip(report, name, "corrupt_entry", f"cannot be unpacked: {e}")
                target.unlink(missing_ok=True)


def _copy_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path) -> int:
    """Streams one entry, never writing more than its header promised (headers can lie)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    limit, written = min(info.file_size, MAX_ENTRY_BYTES), 0
    try:
        with zf.open(info) as f, open(target, "wb") as out:
            while chunk := f.read(1024 * 1024):
                written += len(chunk)
                if written > limit:
                    raise ValueError("entry is larger than its header says (a zip bomb?)")
                out.write(chunk)
    except zlib.error as e:
        raise ValueError(f"corrupt compressed data ({e})") from e
    return written
