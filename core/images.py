"""Safe image loading: every image the studio touches goes through load_image.

Whatever arrives (a phone JPEG lying on its side, a CMYK print file, a 16-bit PNG, a palette GIF,
a text file named .png, a 20000x20000 decompression bomb), the caller gets either an upright RGB
PIL image or a StudioError that says what is wrong with that file.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import StudioError

# 64 Mpx holds any phone photo (200 Mpx sensors bin to 12-50 Mpx) while a decoded RGB copy stays
# under 200 MB. TRINITY_MAX_PIXELS raises or lowers it.
DEFAULT_MAX_PIXELS = int(os.environ.get("TRINITY_MAX_PIXELS", 64 * 1024 * 1024))
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}

# We enforce our own limit before decoding; Pillow's global guard stays as a second line.
Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, DEFAULT_MAX_PIXELS)


def _cap(label: str) -> str:
    return label[:1].upper() + label[1:]


def image_sha16(data: bytes) -> str:
    """First 16 hex digits of sha256: the content address of an image file."""
    return hashlib.sha256(data).hexdigest()[:16]


def _read_source(src) -> tuple[bytes, str]:
    """Returns (bytes, name for messages)."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "the image"
    path = Path(src)
    name = path.name
    if not path.exists():
        raise StudioError(f"Image '{name}' was not found.", f"Looked for {path}.")
    if not path.is_file():
        raise StudioError(f"'{name}' is not a file.", "Pick an image file (PNG, JPEG, WebP, GIF, ...).")
    try:
        return path.read_bytes(), f"image '{name}'"
    except OSError as e:
        raise StudioError(f"Image '{name}' could not be read: {e.strerror or e}.",
                          "Check that the file is readable.") from e


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _open(data: bytes, label: str, max_pixels: int) -> Image.Image:
    if len(data) == 0:
        raise StudioError(f"{_cap(label)} is empty (0 bytes).",
                          "The file was probably cut off while copying; add it again from the original.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise _bomb_error(label, e, max_pixels) from e
    except UnidentifiedImageError as e:
        what = "a text file, not an image" if _looks_like_text(data) else "not an image Pillow can read"
        raise StudioError(f"{_cap(label)} is {what}.",
                          "Use PNG, JPEG, WebP, GIF, BMP or TIFF files; the file extension alone does not "
                          "make a file an image.") from e
    except Exception as e:  # Pillow raises assorted errors on broken headers
        raise StudioError(f"{_cap(label)} is corrupt (broken header: {e}).",
                          "Re-export or re-download the image.") from e
    w, h = im.size
    if w <= 0 or h <= 0:
        raise StudioError(f"{_cap(label)} has no pixels ({w}x{h}).", "Re-export the image.")
    if w * h > max_pixels:
        raise StudioError(
            f"{_cap(label)} is {w}x{h} = {w * h:,} pixels, over the limit of {max_pixels:,} "
            "(a possible decompression bomb).", _bomb_hint(max_pixels))
    return im


def _bomb_hint(max_pixels: int) -> str:
    return (f"Downscale the image below {max_pixels:,} pixels, or raise TRINITY_MAX_PIXELS if you "
            "trust the file.")


def _bomb_error(label: str, e: Exception, max_pixels: int) -> StudioError:
    m = re.search(r"\((\d+) pixels\)", str(e))  # Pillow refused it before we saw the size
    size = f" ({int(m.group(1)):,} pixels)" if m else ""
    return StudioError(f"{_cap(label)} is over the limit of {max_pixels:,} pixels{size} "
                       "(a possible decompression bomb).", _bomb_hint(max_pixels))


def _to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB. Transparency is flattened onto white (what a viewer shows)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16/32-bit greyscale: Pillow's convert() clips at 255 (a white image); scale instead.
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or (mode == "I" and arr.max(initial=0) > 255) else 255.0
        if mode == "F":
            lo, hi = float(arr.min(initial=0)), float(arr.max(initial=1))
            arr, top = arr - lo, max(hi - lo, 1e-12)
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def load_image(src, max_pixels: int | None = None) -> Image.Image:
    """src: a path or the file's bytes (or a PIL image). Returns a fully loaded, upright RGB image.

    Raises StudioError for: empty files, files that are not images, truncated/corrupt data, and
    images over max_pixels (checked from the header, before any pixel is decoded).
    """
    max_pixels = int(max_pixels or DEFAULT_MAX_PIXELS)
    if isinstance(src, Image.Image):
        im, label = src, "the image"
        if im.width * im.height > max_pixels:
            raise StudioError(f"The image is {im.width}x{im.height}, over the limit of {max_pixels:,} pixels.",
                              _bomb_hint(max_pixels))
    else:
        data, label = _read_source(src)
        im = _open(data, label, max_pixels)
    try:
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)  # animations: the first frame is the picture
        im.load()
        im = ImageOps.exif_transpose(im)
        im = _to_rgb(im)
        im.load()
    except StudioError:
        raise
    except Image.DecompressionBombError as e:
        raise _bomb_error(label, e, max_pixels) from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as e:
        msg = str(e)
        kind = "truncated (the file ends early)" if "truncat" in msg.lower() else f"corrupt ({msg or type(e).__name__})"
        raise StudioError(f"{_cap(label)} is {kind}.",
                          "Re-export or re-download the image; the file on disk is damaged.") from e
    if im.mode != "RGB":  # exif_transpose can hand back a copy; make sure of the contract
        im = im.convert("RGB")
    return im


def png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")  # no metadata: the same pixels give the same bytes
    return buf.getvalue()


def normalise_to_png(src, max_pixels: int | None = None) -> tuple[bytes, str, tuple[int, int]]:
    """Loads src safely and re-encodes it as RGB PNG. Returns (png_bytes, sha16 of them, (w, h))."""
    im = load_image(src, max_pixels=max_pixels)
    data = png_bytes(im)
    return data, image_sha16(data), im.size


def is_image_name(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS
