"""Builds the bad-input corpus. `python tests/corpus/make_corpus.py` (re)writes the small files
kept in git under tests/corpus/; `build_big(folder)` writes the large ones (decompression bomb,
zip bomb, 1 MB of SQL) at test time so nothing huge is committed. Deterministic: fixed seeds,
no timestamps in the files."""
from __future__ import annotations

import hashlib
import io
import json
import random
import stat
import struct
import sys
import zipfile
import zlib
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parent
GOOD_SQL = "CREATE TABLE users (\n  id INT PRIMARY KEY,\n  email TEXT NOT NULL\n);"
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _noise(w: int, h: int, seed: int) -> Image.Image:
    return Image.frombytes("RGB", (w, h), _random_bytes(w * h * 3, seed))


def _random_bytes(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(n))


def _enc(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _marker(w: int, h: int) -> Image.Image:
    """Grey image with a red 8x8 square at the stored top-left: shows where "up" ended."""
    im = Image.new("RGB", (w, h), (128, 128, 128))
    im.paste((255, 0, 0), (0, 0, 8, 8))
    return im


# ---- images ------------------------------------------------------------------------------------
def images() -> dict[str, bytes]:
    png = _enc(_noise(64, 64, 1), "PNG")
    jpg = _enc(_noise(64, 64, 2), "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: the camera was turned; viewers rotate 90 degrees clockwise
    palette = Image.new("P", (16, 16), 0)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (0, 0, 8, 16))  # left half index 1 (blue) ...
    rgba = Image.new("RGBA", (16, 16), (0, 0, 255, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 8, 16))  # ... left half fully transparent
    grey16 = Image.frombytes("I;16", (16, 16), struct.pack("<H", 32768) * 256)  # mid grey
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    gif = io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return {
        "zero_bytes.png": b"",
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpg[: len(jpg) // 2],
        "jpeg_named.png": _enc(_marker(24, 16), "JPEG", quality=95),   # wrong extension: still loads
        "text_named.png": b"These are my notes, not a screenshot.\n",
        "html_named.jpg": b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
        "garbage.webp": _random_bytes(2048, seed=3),
        "cmyk.jpg": _enc(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95),  # red
        "grey16.png": _enc(grey16, "PNG"),                               # mid grey, not white
        "palette_transparent.png": _enc(palette, "PNG", transparency=0),  # red index transparent
        "rgba_half_transparent.png": _enc(rgba, "PNG"),
        "exif_rotated.jpg": _enc(_marker(40, 20), "JPEG", quality=95, exif=exif.tobytes()),
        "animated.gif": gif.getvalue(),
    }


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A real, complete 1-bit PNG of width x height (all black): ~50 KB that would decode to 400 Mpx."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


# ---- archives ----------------------------------------------------------------------------------
def _zip(entries: list[tuple[str, bytes]], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name, ZIP_TIME), data, zipfile.ZIP_DEFLATED)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.create_system = 3  # unix: the mode bits below are read
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def archives() -> dict[str, bytes]:
    good = _enc(_noise(32, 32, 10), "PNG")
    return {
        "zip_slip.zip": _zip([("shots/good.png", good), ("../../outside.png", _enc(_noise(32, 32, 11), "PNG")),
                              ("shots/../../../etc/evil.png", _enc(_noise(32, 32, 12), "PNG"))]),
        "absolute_paths.zip": _zip([("shots/good.png", good), ("/tmp/trinity-evil.png", _enc(_noise(32, 32, 13), "PNG")),
                                    ("C:/Windows/evil.png", _enc(_noise(32, 32, 14), "PNG"))]),
        "symlinks.zip": _zip([("shots/good.png", good)], symlinks={"shots/passwd.png": "/etc/passwd",
                                                                   "shots/up.png": "../../secret.png"}),
        "not_a_zip.zip": b"PK\x03\x04 this archive was cut off after its first header",
    }


def zip_bomb(mb: int = 300) -> bytes:
    """One image-named entry of `mb` MB of zeros (~1000:1) next to a good image: ~300 KB on disk."""
    good = _enc(_noise(32, 32, 20), "PNG")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("shots/good.png", ZIP_TIME), good, zipfile.ZIP_DEFLATED)
        info = zipfile.ZipInfo("shots/bomb.png", ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            block = b"\0" * (1024 * 1024)
            for _ in range(mb):
                f.write(block)
    return buf.getvalue()


def lying_zip_bomb(real_mb: int = 40) -> bytes:
    """An entry whose header says 1 KB but which inflates to real_mb MB (headers can lie)."""
    data = zip_bomb(real_mb)
    # Patch the local and central size fields of bomb.png to 1024 bytes; the CRC stays the real one.
    out = bytearray(data)
    name = b"shots/bomb.png"
    for sig, size_off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        i = 0
        while (i := out.find(sig, i)) >= 0:
            name_len = struct.unpack_from("<H", out, i + (26 if sig == b"PK\x03\x04" else 28))[0]
            name_at = i + (30 if sig == b"PK\x03\x04" else 46)
            if bytes(out[name_at:name_at + name_len]) == name:
                struct.pack_into("<I", out, i + size_off, 1024)
            i += 4
    return bytes(out)


# ---- label files -------------------------------------------------------------------------------
def ghost_folder() -> dict[str, bytes]:
    """Ghost Architect's dataset_vision.json: one good record, then one bad thing per record."""
    imgs = {f"images/s{i}.png": _enc(_noise(32, 32, 30 + i), "PNG") for i in range(8)}
    rows = [
        {"image_path": "images/s0.png", "instruction": "Write the schema.", "output": GOOD_SQL, "domain": "crm",
         "reviewer": "ana", "tags": ["login"]},                                        # 0 good + unknown fields
        {"image_path": "images/s1.png", "instruction": "i", "output": "CREATE TABLE (id INT,,);", "domain": "crm"},  # 1
        {"image_path": "images/s2.png", "instruction": "i", "output": 42, "domain": "crm"},          # 2 wrong type
        {"image_path": ["images/s3.png"], "instruction": "i", "output": GOOD_SQL},                 # 3 wrong type
        {"image_path": "images/missing.png", "instruction": "i", "output": GOOD_SQL},              # 4 missing image
        {"image_path": "../../etc/passwd", "instruction": "i", "output": GOOD_SQL},                # 5 escapes
        {"image_path": "/etc/hostname", "instruction": "i", "output": GOOD_SQL},                   # 6 absolute
        {"image_path": "images/s0.png", "instruction": "i", "output": GOOD_SQL},                   # 7 duplicate image
        {"image_path": "images/s4.png", "instruction": "i", "domain": "crm"},                      # 8 no output
        {"image_path": "images/s5.png", "instruction": "i",
         "output": 'CREATE TABLE "Bestellungen" ("Größe" INT PRIMARY KEY, "名前" TEXT);'},     # 9 non-ASCII ok
        {"image_path": "images/s6.png", "instruction": "i", "output": "SELECT * FROM users;"},      # 10 not a schema
        "just a string",                                                                          # 11 not an object
        {"image_path": "images/s7.png", "instruction": "i", "output": GOOD_SQL, "domain": ["x"]},   # 12 wrong type
    ]
    out = {"dataset_vision.json": json.dumps(rows, ensure_ascii=False, indent=1).encode()}
    out.update(imgs)
    return out


def keylike_folder() -> dict[str, bytes]:
    """Keylike JSONL: good lines around one broken line and each kind of bad bitting."""
    imgs = {f"img/k{i}.png": _enc(_noise(32, 32, 50 + i), "PNG") for i in range(9)}
    lines = [
        json.dumps({"image_path": "img/k0.png", "bittings": [3, 5, 2, 4, 6], "keyway": "SC1", "brand": "Schlage",
                    "photographer": "bo", "lighting": {"lux": 300}}),                        # 1 good + unknown
        '{"image_path": "img/k1.png", "bittings": [1, 2, 3, 4, 5], "keyway": "SC1"',          # 2 broken line
        json.dumps({"image_path": "img/k2.png", "bittings": [3, 0, 2, 4, 6], "keyway": "SC1"}),   # 3 depth 0
        json.dumps({"image_path": "img/k3.png", "bittings": [3, 10, 2, 4, 6], "keyway": "SC1"}),  # 4 depth 10
        json.dumps({"image_path": "img/k4.png", "bittings": ["a", "b", 2, 4, 6], "keyway": "SC1"}),  # 5 letters
        json.dumps({"image_path": "img/k5.png", "bittings": [3, 5, 2], "keyway": "SC1"}),          # 6 too short
        json.dumps({"image_path": "img/k6.png", "bittings": [3, 5, 2, 4, 6, 1, 2], "keyway": "SC1"}),  # 7 too long
        json.dumps({"image_path": "img/k7.png", "bittings": "3,5,2,4,6", "keyway": 7}),            # 8 keyway type
        json.dumps({"image_path": "img/k8.png", "bittings": [2, 4, 6, 1, 3], "keyway": "KW1", "brand": "Kwikset"}),  # 9
        json.dumps({"image_path": "../k0.png", "bittings": [3, 5, 2, 4, 6], "keyway": "SC1"}),     # 10 escapes
        "[1, 2, 3]",                                                                                # 11 not an object
    ]
    body = ("\n".join(lines) + "\n").encode()
    # 12: a line in Latin-1, not UTF-8 (an export from an old spreadsheet); 13: good again
    body += b'{"image_path": "img/k1.png", "bittings": [1, 2, 3, 4, 5], "keyway": "SC1", "brand": "Schl\xe4ge"}\n'
    body += json.dumps({"image_path": "img/k1.png", "bittings": [1, 2, 3, 4, 5], "keyway": "SC1"}).encode() + b"\n"
    out = {"labels.jsonl": body}
    out.update(imgs)
    return out


def edited_dataset() -> dict[str, bytes]:
    """A dataset folder whose records.jsonl was edited by hand: every kind of damage, plus good rows."""
    good = _enc(_noise(32, 32, 70), "PNG")
    sha = hashlib.sha256(good).hexdigest()[:16]
    rows = [
        {"id": "good", "image": f"images/{sha}.png", "fields": {"keyway": "SC1", "bitting": [3, 5, 2, 4, 6],
         "brand": "Schlage"}, "split": "train", "status": "labeled", "updated": "2026-01-01T00:00:00+00:00",
         "reviewer_note": "kept on every rewrite"},
        {"id": "dup", "image": f"images/{sha}.png", "fields": {}, "split": None, "status": "unlabeled",
         "updated": "2026-01-01T00:00:00+00:00"},
        {"id": "dup", "image": f"images/{sha}.png", "fields": {}, "split": None, "status": "unlabeled",
         "updated": "2026-01-01T00:00:00+00:00"},
        {"id": "escapes", "image": "../../outside.png", "fields": {}, "split": None, "status": "unlabeled",
         "updated": "2026-01-01T00:00:00+00:00"},
        {"id": "absolute", "image": "/etc/passwd", "fields": {}, "split": None, "status": "unlabeled",
         "updated": "2026-01-01T00:00:00+00:00"},
        {"id": "missing", "image": "images/0000000000000000.png", "fields": {}, "split": None,
         "status": "unlabeled", "updated": "2026-01-01T00:00:00+00:00"},
        {"id": "wrong_types", "image": f"images/{sha}.png", "fields": {"keyway": "SC1", "bitting": "35246x",
         "brand": 7}, "split": "holdout", "status": "done", "updated": "2026-01-01T00:00:00+00:00"},
    ]
    lines = [json.dumps(r) for r in rows]
    lines.insert(3, '{"id": "half", "image": "images/')  # a line cut off by an editor crash
    meta = {"format": 1, "name": "edited", "task": "keys", "created": "2026-01-01T00:00:00+00:00", "split": None}
    return {"dataset.json": json.dumps(meta, indent=2).encode(), "records.jsonl": ("\n".join(lines) + "\n").encode(),
            f"images/{sha}.png": good}


def files() -> dict[str, bytes]:
    """Every small corpus file, by path relative to tests/corpus/."""
    out = {f"images/{k}": v for k, v in images().items()}
    out.update({f"archives/{k}": v for k, v in archives().items()})
    out.update({f"ghost/{k}": v for k, v in ghost_folder().items()})
    out.update({f"keylike/{k}": v for k, v in keylike_folder().items()})
    out.update({f"edited_dataset/{k}": v for k, v in edited_dataset().items()})
    out["labels/invalid_json.json"] = b'[{"image_path": "a.png", "output": "CREATE TABLE t (id INT);"},\n {"image_path": }]\n'
    out["labels/not_a_list.json"] = b'{"image_path": "a.png", "output": "x"}\n'
    return out


def build_big(folder: Path) -> dict[str, Path]:
    """The large cases, written into folder (a tmp dir). Returns name -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    big = {"bomb_20000x20000.png": bomb_png(), "zip_bomb.zip": zip_bomb(), "lying_zip_bomb.zip": lying_zip_bomb()}
    out = {}
    for name, data in big.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    return out


def one_mb_sql() -> str:
    cols = ",\n".join(f"  col_{i:06d} VARCHAR(255) NOT NULL DEFAULT 'x'" for i in range(24000))
    sql = f"CREATE TABLE huge (\n  id INT PRIMARY KEY,\n{cols}\n);"
    return sql[: 1024 * 1024] if len(sql) > 1024 * 1024 else sql + " " * (1024 * 1024 - len(sql))


def write_small(root: Path = HERE) -> list[Path]:
    written = []
    for rel, data in sorted(files().items()):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        written.append(p)
    return written


if __name__ == "__main__":
    paths = write_small(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
    print(f"wrote {len(paths)} files, {sum(p.stat().st_size for p in paths):,} bytes")
