"""Synthetic key images with exactly known labels, drawn with PIL.

A key lies horizontally: head (bow) on the left, blade to the right, cuts on the top edge. Each
cut is a flat-bottomed notch centred on its position; depth digit d sinks the notch by d equal
steps, on one absolute scale for every keyway, so a model can read depths against the blade's
uncut height. Brand sets the head's shape and the metal's colour, the keyway its cut count and a
groove pattern, so keyway and brand are visible too.

The geometry is laid out on a 256x128 design canvas, drawn at ~2x the output size and
downsampled (antialiasing).
It is deliberately bold: a tiny vision model sees these images squashed to 64-128 px, where
one depth step must still be a few pixels. `variation` (0 = canonical, clean) scales every random
nuisance: scale, a few degrees of rotation, shift, background colour/texture, colour jitter,
lighting, blur and noise. Everything is drawn from `seed`, so the same call gives the same image.
"""
from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from core.tasks.keys.catalog import GENERIC, all_keyways, get_keyway

DESIGN_W, DESIGN_H = 256, 128

# Blade geometry on the design canvas.
SHOULDER_X, TIP_START_X, TIP_X = 66.0, 226.0, 244.0
BLADE_TOP, BLADE_BOTTOM = 32.0, 104.0
DEPTH_STEP = 6.4                         # per depth digit: 9 -> 57.6 of the 72 px blade
FLAT_FRACTION = 0.5                      # share of a position's pitch that is flat notch bottom
MAX_SHRINK, MAX_ANGLE = 0.08, 2.0        # pose at variation 1: scale down to 0.92, +-2 degrees
MIN_WALL_SLOPE = 2.2                     # notch walls: rise per unit of x (steeper when crowded)

# Brand look: head shape and metal colour (RGB). Unknown brands fall back to "Generic".
BRAND_STYLE = {
    "Schlage": ("round_rect", (212, 172, 74)),       # brass
    "Kwikset": ("circle", (206, 208, 214)),          # nickel
    "Yale": ("diamond", (168, 104, 66)),             # bronze
    "Master Lock": ("square", (112, 116, 126)),      # dark steel
    "Generic": ("hexagon", (86, 136, 204)),          # anodised blue
}
# Keyway grooves: y offsets (design px) of dark lines milled along the blade's lower part.
GROOVES = {"SC1": (96,), "SC4": (92, 99), "KW1": (98,), "KW10": (91, 98), "Y1": (94,),
           "M1": (97,), GENERIC: ()}


def random_label(rng: random.Random, keyway: str | None = None) -> dict:
    """Task fields for a random key: {"keyway", "bitting", "brand"}, valid for the catalog."""
    kws = all_keyways()
    kw = get_keyway(keyway) if keyway else kws[rng.choice(list(kws))]
    n = kw.positions if kw.positions is not None else rng.randint(kw.min_positions,
                                                                    kw.max_positions)
    bitting = [rng.randint(kw.min_depth, kw.max_depth) for _ in range(n)]
    return {"keyway": kw.code, "bitting": bitting, "brand": kw.brand}


def sample(seed: int, size: tuple[int, int] = (DESIGN_W, DESIGN_H), variation: float = 1.0,
           keyway: str | None = None) -> tuple[Image.Image, dict]:
    """A random labelled key image: (image, fields). Deterministic per seed."""
    fields = random_label(random.Random(seed), keyway)
    # A separate stream for drawing, so the label does not correlate with the nuisances.
    img = render_key(fields["keyway"], fields["bitting"], seed=_mix(seed), size=size,
                     variation=variation, brand=fields["brand"])
    return img, fields


def render_key(keyway: str, bitting: list[int], seed: int, size: tuple[int, int] = (256, 128),
               variation: float = 1.0, brand: str | None = None) -> Image.Image:
    """Draws one key (RGB, `size`). The cuts follow `bitting` exactly at the keyway's positions;
    brand defaults to the keyway's catalog brand."""
    kw = get_keyway(keyway)
    if not bitting or any(not isinstance(d, int) or not 1 <= d <= 9 for d in bitting):
        raise ValueError(f"bitting must be digits 1-9, got {bitting!r}")
    rng = random.Random(seed)
    v = max(0.0, float(variation))
    shape, metal = BRAND_STYLE.get(brand or kw.brand, BRAND_STYLE["Generic"])
    metal = tuple(int(np.clip(c + v * rng.uniform(-14, 14), 0, 255)) for c in metal)

    out_w, out_h = size
    # Drawn at about twice the output size (at least the design size), then downsampled.
    k = max(1, math.ceil(2 * max(out_w / DESIGN_W, out_h / DESIGN_H)))
    W, H = DESIGN_W * k, DESIGN_H * k
    mask = _key_mask(shape, bitting, k)
    grooves = _groove_mask(GROOVES.get(kw.code, ()), k)
    key_rgb = _shade_metal(metal, mask, grooves, k)

    # Pose: scale about the centre, a few degrees of rotation, a shift that stays in frame.
    scale = 1.0 - v * rng.uniform(0.0, MAX_SHRINK)
    angle = v * rng.uniform(-MAX_ANGLE, MAX_ANGLE)
    max_dx, max_dy = shift_limits(scale)
    dx, dy = v * rng.uniform(-max_dx, max_dx) * k, v * rng.uniform(-max_dy, max_dy) * k
    mask = _pose(mask, scale, angle, dx, dy, Image.BILINEAR)
    key_rgb = _pose(key_rgb, scale, angle, dx, dy, Image.BILINEAR)

    bg = _background(rng, v, metal, (W, H), k)
    # A dark rim around the key keeps its outline sharp on any background (blur + threshold is a
    # cheap dilation).
    rim = mask.filter(ImageFilter.BoxBlur(1.5 * k)).point(lambda p: 255 if p > 12 else p * 20)
    img = Image.composite(Image.new("RGB", (W, H), (24, 24, 28)), bg, rim)
    img = Image.composite(key_rgb, img, mask)

    if v > 0:
        img = _lighting(img, rng, v)
    img = _fit(img, out_w, out_h)
    if v > 0 and rng.random() < 0.35 * min(v, 1.0):
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.7) * min(out_w / 256, 2)))
    # Sensor noise on half of the images (the other half: clean shots); it also costs the most
    # PNG bytes, which keeps the demo dataset small.
    if v > 0 and rng.random() < 0.5:
        arr = np.asarray(img, dtype=np.float32)
        noise = np.random.default_rng(rng.getrandbits(32)).normal(0, v * rng.uniform(0.5, 5.0),
                                                                   arr.shape)
        img = Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8), "RGB")
    return img


def shift_limits(scale: float) -> tuple[float, float]:
    """Largest shift (design px) that keeps a key drawn at `scale` inside the frame: the key
    fills the canvas's width at scale 1, so most of the room comes from shrinking."""
    return 2.0 + (1.0 - scale) * 100, 3.0 + (1.0 - scale) * 40


def cut_centers(n: int) -> list[float]:
    """Design-canvas x of each cut position's centre, bow to tip."""
    pitch = (TIP_START_X - SHOULDER_X - 6.0) / n
    return [SHOULDER_X + 6.0 + pitch * (i + 0.5) for i in range(n)]


def blade_profile(bitting: list[int], xs: np.ndarray) -> np.ndarray:
    """Top-edge y of the blade at design x positions: the union of the trapezoid notches."""
    n = len(bitting)
    pitch = (TIP_START_X - SHOULDER_X - 6.0) / n
    half_flat = pitch * FLAT_FRACTION / 2
    # Walls steep enough that a 9 next to a 1 never eats into the 1's flat: every cut keeps a
    # visible flat bottom at its own depth (what real keys' adjacent-cut rules ensure).
    slope = max(MIN_WALL_SLOPE, 8 * DEPTH_STEP / (pitch - 2 * half_flat))
    sink = np.zeros_like(xs, dtype=np.float64)
    for c, d in zip(cut_centers(n), bitting):
        depth = d * DEPTH_STEP
        sink = np.maximum(sink, depth - slope * np.maximum(0.0, np.abs(xs - c) - half_flat))
    return BLADE_TOP + np.clip(sink, 0.0, None)


def _key_mask(shape: str, bitting: list[int], k: int) -> Image.Image:
    W, H = DESIGN_W * k, DESIGN_H * k
    m = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(m)
    s = k
    # Blade: shoulder stop, cut top edge, tapered tip, flat bottom.
    xs = np.linspace(SHOULDER_X, TIP_START_X, int((TIP_START_X - SHOULDER_X) * s) + 1)
    top = blade_profile(bitting, xs)
    pts = [(SHOULDER_X - 8, BLADE_TOP - 8), (SHOULDER_X, BLADE_TOP - 8), (SHOULDER_X, BLADE_TOP)]
    pts += list(zip(xs.tolist(), top.tolist()))
    pts += [(TIP_X, (BLADE_TOP + BLADE_BOTTOM) / 2 + 14), (TIP_START_X + 4, BLADE_BOTTOM),
            (SHOULDER_X - 8, BLADE_BOTTOM)]
    d.polygon([(x * s, y * s) for x, y in pts], fill=255)
    # Head (bow) centred left of the shoulder, with a hole for the key ring.
    cx, cy, r = 38 * s, 64 * s, 30 * s
    if shape == "round_rect":
        d.rounded_rectangle((8 * s, 14 * s, 68 * s, 114 * s), radius=18 * s, fill=255)
    elif shape == "circle":
        d.ellipse((cx - r, cy - r - 14 * s, cx + r, cy + r + 14 * s), fill=255)
    elif shape == "diamond":
        d.polygon([(cx, 14 * s), (68 * s, cy), (cx, 114 * s), (8 * s, cy)], fill=255)
    elif shape == "square":
        d.rectangle((10 * s, 20 * s, 68 * s, 108 * s), fill=255)
    else:                                           # hexagon
        d.regular_polygon((cx, cy, 32 * s), 6, rotation=30, fill=255)
    hole_r = 8 * s
    d.ellipse((24 * s - hole_r, cy - hole_r, 24 * s + hole_r, cy + hole_r), fill=0)
    return m


def _groove_mask(grooves, k: int) -> Image.Image:
    m = Image.new("L", (DESIGN_W * k, DESIGN_H * k), 0)
    d = ImageDraw.Draw(m)
    for y in grooves:
        d.line(((SHOULDER_X - 4) * k, y * k, (TIP_START_X - 2) * k, y * k), fill=255, width=2 * k)
    return m


def _shade_metal(metal, mask: Image.Image, grooves: Image.Image, k: int) -> Image.Image:
    """Flat metal with a soft vertical sheen, darker grooves, and a dark inner edge."""
    W, H = mask.size
    y = np.linspace(0.0, 1.0, H)[:, None, None]
    sheen = 0.86 + 0.22 * np.exp(-((y - 0.38) ** 2) / 0.02)
    arr = np.broadcast_to(np.array(metal, np.float32), (H, W, 3)) * sheen
    g = np.asarray(grooves, np.float32)[..., None] / 255.0
    arr = arr * (1.0 - 0.45 * g)
    # Inner edge: where the blurred mask falls below the mask itself.
    edge = np.asarray(ImageChops.subtract(mask, mask.filter(ImageFilter.BoxBlur(k))),
                      np.float32)[..., None] / 255.0 * 2.0
    arr = arr * (1.0 - 0.35 * edge)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _pose(img: Image.Image, scale: float, angle: float, dx: float, dy: float, resample):
    if scale == 1.0 and angle == 0.0 and dx == 0.0 and dy == 0.0:
        return img
    W, H = img.size
    cx, cy = W / 2, H / 2
    # Inverse affine map (output -> input) for rotation by `angle` and scaling about the centre.
    a = math.radians(angle)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    ox, oy = cx + dx, cy + dy
    coeffs = (cos, sin, cx - cos * ox - sin * oy, -sin, cos, cy + sin * ox - cos * oy)
    return img.transform((W, H), Image.AFFINE, coeffs, resample=resample, fillcolor=0)


def _luma(c) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _background(rng: random.Random, v: float, metal, size, k: int) -> Image.Image:
    W, H = size
    if v <= 0:
        return Image.new("RGB", size, (236, 236, 232))
    # Mostly the side of the brightness range that contrasts with the metal, sometimes the other.
    dark_first = _luma(metal) > 150
    dark = dark_first if rng.random() < 0.8 else not dark_first
    base_l = rng.uniform(18, 70) if dark else rng.uniform(200, 245)
    tint = [rng.uniform(-1, 1) * 22 * min(v, 1.0) for _ in range(3)]
    base = np.array([base_l + t for t in tint], np.float32)
    kind = rng.choice(["plain", "gradient", "wood", "speckle"]) if rng.random() < min(v, 1) \
        else "plain"
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    if kind == "gradient":
        ang = rng.uniform(0, 2 * math.pi)
        t = (xx / W * math.cos(ang) + yy / H * math.sin(ang))
        field = (t - t.mean()) * rng.uniform(20, 45)
    elif kind == "wood":
        freq, phase = rng.uniform(0.02, 0.05) / k, rng.uniform(0, 6.3)
        field = 14 * np.sin(yy * freq + 3 * np.sin(xx * freq * 0.3) + phase)
    elif kind == "speckle":
        small = np.random.default_rng(rng.getrandbits(32)).normal(0, 12, (H // (4 * k) + 1,
                                                                         W // (4 * k) + 1))
        field = np.asarray(Image.fromarray(small.astype(np.float32), "F").resize((W, H),
                                                                                 Image.BILINEAR))
    else:
        field = np.zeros((H, W), np.float32)
    arr = base[None, None, :] + field[..., None]
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _lighting(img: Image.Image, rng: random.Random, v: float) -> Image.Image:
    """A broad brightness ramp, as from a lamp to one side."""
    W, H = img.size
    strength = min(v, 1.0) * rng.uniform(0.0, 0.18)
    ramp = np.linspace(1 - strength, 1 + strength, W, dtype=np.float32)
    if rng.random() < 0.5:
        ramp = ramp[::-1]
    arr = np.asarray(img, np.float32) * ramp[None, :, None] * rng.uniform(1 - 0.1 * v, 1 + 0.08 * v)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _fit(img: Image.Image, w: int, h: int) -> Image.Image:
    """Resize the design canvas to (w, h) keeping its aspect; pad with edge colour if needed."""
    W, H = img.size
    k = min(w / W, h / H)
    nw, nh = max(1, round(W * k)), max(1, round(H * k))
    small = img.resize((nw, nh), Image.LANCZOS)
    if (nw, nh) == (w, h):
        return small
    canvas = Image.new("RGB", (w, h), small.getpixel((0, 0)))
    canvas.paste(small, ((w - nw) // 2, (h - nh) // 2))
    return canvas


def _mix(seed: int) -> int:
    """A second, independent seed from `seed` (splitmix64 finaliser)."""
    z = (int(seed) + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)
