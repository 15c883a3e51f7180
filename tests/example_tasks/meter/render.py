"""Synthetic meter pictures: a coloured face (the kind), an odometer of digit wheels (the reading, leading
zeros and all) and the unit printed under it. Deterministic per seed."""
from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFont

FACES = {"electricity": (238, 226, 160), "gas": (200, 220, 240), "water": (196, 232, 205)}
UNITS = {"electricity": "kWh", "gas": "m3", "water": "m3"}


def draw(kind: str, reading: str, unit: str, seed: int = 0) -> Image.Image:
    rng = random.Random(seed)
    im = Image.new("RGB", (256, 160), (90 + rng.randint(0, 30),) * 3)
    d = ImageDraw.Draw(im)
    d.rounded_rectangle([8, 8, 248, 152], radius=18, fill=FACES.get(kind, (230, 230, 230)), outline=(40, 40, 40), width=3)
    font = ImageFont.load_default(size=34)
    small = ImageFont.load_default(size=18)
    d.text((20, 16), kind.upper(), fill=(40, 40, 40), font=small)
    width = 232 // max(len(reading), 1)
    for i, ch in enumerate(reading):
        x = 12 + i * width
        d.rectangle([x, 52, x + width - 4, 108], fill=(25, 25, 25))
        d.text((x + width // 2 - 2, 80), ch, fill=(245, 245, 245), font=font, anchor="mm")
    d.text((128, 130), unit, fill=(30, 30, 30), font=small, anchor="mm")
    return im


def sample(seed: int) -> tuple[Image.Image, dict]:
    """A picture and its label; readings keep their leading zeros ("004217")."""
    rng = random.Random(seed)
    kind = ["electricity", "gas", "water"][seed % 3]
    reading = f"{rng.randint(0, 99999):06d}"
    return draw(kind, reading, UNITS[kind], seed), {"kind": kind, "reading": reading, "unit": UNITS[kind]}
