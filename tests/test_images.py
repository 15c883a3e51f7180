"""core/images.py: every odd image either loads upright as RGB or fails with a specific message."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.errors import StudioError
from core.images import image_sha16, load_image, normalise_to_png


def enc(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(w=60, h=40, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8))


def fails(src, *words):
    with pytest.raises(StudioError) as e:
        load_image(src)
    for w in words:
        assert w in e.value.message, e.value.message
    assert e.value.hint
    return e.value


def test_zero_bytes(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    fails(p, "empty", "0 bytes", "empty.png")


def test_text_file_named_png(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("just some notes\n")
    fails(p, "text file, not an image")


def test_garbage_is_not_an_image():
    fails(bytes(range(256)) * 4, "not an image")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated(fmt):
    data = enc(noise(200, 200), fmt)
    fails(data[: len(data) // 2], "truncated")


def test_decompression_bomb_refused_before_decoding():
    fails(enc(Image.new("1", (20000, 20000))), "limit", "decompression bomb")
    # our own limit applies below Pillow's
    with pytest.raises(StudioError, match="over the limit of 1,000"):
        load_image(enc(noise(50, 50)), max_pixels=1000)


def test_missing_file(tmp_path):
    fails(tmp_path / "nope.png", "not found")


def test_wrong_extension_still_loads(tmp_path):
    p = tmp_path / "photo.png"
    p.write_bytes(enc(noise(), "JPEG"))
    im = load_image(p)
    assert im.mode == "RGB" and im.size == (60, 40)


def test_cmyk_converted():
    im = load_image(enc(Image.new("CMYK", (8, 8), (0, 255, 0, 0)), "JPEG"))
    r, g, b = im.getpixel((0, 0))
    assert im.mode == "RGB" and r > 200 and g < 60 and b > 200  # magenta


def test_16bit_grey_scaled_not_clipped():
    arr = np.full((10, 10), 32896, dtype=np.uint16)  # mid grey in 16 bits
    src = Image.fromarray(arr)
    assert src.mode.startswith("I")
    px = load_image(enc(src)).getpixel((0, 0))
    assert px == (128, 128, 128)


def test_palette_and_alpha_flattened_on_white():
    assert load_image(enc(Image.new("RGBA", (4, 4), (255, 0, 0, 0)))).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(enc(Image.new("RGBA", (4, 4), (255, 0, 0, 255)))).getpixel((0, 0)) == (255, 0, 0)
    p = Image.new("P", (4, 4), 3)
    p.putpalette([0, 0, 0, 10, 10, 10, 20, 20, 20, 0, 0, 255] + [0] * 756)
    assert load_image(enc(p)).getpixel((0, 0)) == (0, 0, 255)
    la = Image.new("LA", (4, 4), (0, 0))
    assert load_image(enc(la)).getpixel((0, 0)) == (255, 255, 255)


def test_exif_rotation_applied():
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    out = load_image(enc(im, "JPEG", exif=exif, quality=95))
    assert out.size == (20, 40)
    r, g, b = out.getpixel((10, 3))  # the left strip is now at the top
    assert b > 200 and r < 60


def test_animated_gif_first_frame():
    frames = [Image.new("RGB", (10, 10), c) for c in [(255, 0, 0), (0, 255, 0)]]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    px = load_image(buf.getvalue()).getpixel((5, 5))
    assert px[0] > 200 and px[1] < 60


def test_normalise_to_png_is_deterministic_and_content_addressed():
    data = enc(noise(), "JPEG")
    a, sha_a, size = normalise_to_png(data)
    b, sha_b, _ = normalise_to_png(data)
    assert a == b and sha_a == sha_b == image_sha16(a) and len(sha_a) == 16 and size == (60, 40)
    assert Image.open(io.BytesIO(a)).format == "PNG"
    assert normalise_to_png(enc(noise(seed=1)))[1] != sha_a
