"""How far apart the dataset report's perceptual hash puts two different pictures of one layout (meters one
digit apart: tests/example_tasks/meter's renderer) and a re-saved copy (50-100 % size, JPEG quality 70-95)
of the demo images (ui2sql pages, key renders, meters), per hash side. Picks BaseTask.near_duplicate's
default (bench/RESULTS.md, "Near-duplicate default"). `python bench/near_duplicate.py`, ~6 s on 2 cores."""
from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

import imagehash
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "example_tasks")]

from core.tasks.keys.render import sample as key_sample  # noqa: E402
from meter.render import draw  # noqa: E402


def main() -> None:
    rng = random.Random(2)

    def copy(im):
        w, h = im.size
        s = rng.uniform(0.5, 1.0)
        buf = io.BytesIO()
        im.convert("RGB").resize((max(32, int(w * s)), max(32, int(h * s)))).save(buf, "JPEG",
                                                                                    quality=rng.randint(70, 95))
        return Image.open(buf)

    demo = ROOT / "assets" / "demo" / "ui2sql"
    recs = [json.loads(x) for x in (demo / "records.jsonl").read_text().splitlines() if x.strip()]
    pages = [Image.open(demo / r["image"]).convert("RGB") for r in recs[::5]]
    keys = [key_sample(s)[0] for s in range(40)]
    meters = []
    for _ in range(80):
        r = f"{rng.randint(0, 999999):06d}"
        i = rng.randrange(6)
        r2 = r[:i] + str((int(r[i]) + rng.randint(1, 9)) % 10) + r[i + 1:]
        kind, seed = rng.choice(["gas", "water", "electricity"]), rng.randint(0, 50)
        meters.append((draw(kind, r, "m3", seed), draw(kind, r2, "m3", seed)))
    originals = [*pages, *keys, *(a for a, _ in meters)]
    copies = [copy(a) for a in originals]
    for side in (8, 16, 24, 32):
        apart = sorted(imagehash.phash(a, hash_size=side) - imagehash.phash(b, hash_size=side) for a, b in meters)
        same = sorted(imagehash.phash(a, hash_size=side) - imagehash.phash(c, hash_size=side)
                      for a, c in zip(originals, copies))
        print(f"{side}x{side}: meters one digit apart >= {apart[0]} bits (5 lowest {[int(x) for x in apart[:5]]}); "
              f"re-saved copies <= {same[-1]} bits (5 highest {[int(x) for x in same[-5:]]})")


if __name__ == "__main__":
    main()
