"""Builds the demo keys dataset, assets/demo/keys/: synthetic key images with exactly known labels.

    python3 assets/demo/build_keys.py [--out assets/demo/keys] [--count 128] [--seed 2024]
                                      [--variation 0.5]

Every catalog keyway gets the same share of the images (so brands and keyways are balanced), the
labels come from the renderer, every record is "labeled", and the split uses seed 42 (the seed's
10% validation rule). Same arguments -> same images and labels. The folder is rebuilt next to
the old one and swapped in at the end, so a failed build leaves the previous dataset in place.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import imagehash  # noqa: E402

from core import images as imgs  # noqa: E402
from core.dataset import Dataset  # noqa: E402
from core.tasks.keys.catalog import all_keyways  # noqa: E402
from core.tasks.keys.render import sample  # noqa: E402

DEFAULT_OUT = REPO / "assets" / "demo" / "keys"
SPLIT_SEED = 42
# Half the renderer's full nuisance range: still varied in pose, background, light and noise, but
# a tiny model fine-tuned in the studio can learn to read it (measured with a probe ViT on 64 px).
DEFAULT_VARIATION = 0.5
NEAR_BITS = 4          # core/dataset_report.py's default near-duplicate threshold
DEFAULT_COUNT = 256


def build(out: Path = DEFAULT_OUT, count: int = DEFAULT_COUNT, seed: int = 2024,
          variation: float = DEFAULT_VARIATION, progress=None) -> Dataset:
    """Renders the dataset into out (swapped in whole); progress(i, count) after each image."""
    out = Path(out)
    codes = list(all_keyways())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.build-", dir=out.parent))
    try:
        ds = Dataset.create(tmp / out.name, task="keys", name="keys-demo")
        items, hashes, render_seed = [], [], seed * 100_003
        for i in range(count):
            # Keys of one keyway share a silhouette; skip a render that the dataset report would
            # flag as a near duplicate (perceptual hash within 4 bits) so the demo opens clean.
            while True:
                image, fields = sample(render_seed, variation=variation,
                                       keyway=codes[i % len(codes)])
                h = imagehash.phash(image)
                render_seed += 1
                if all(h - other > NEAR_BITS for other in hashes):
                    break
            hashes.append(h)
            rel, _ = ds.store_image(imgs.png_bytes(image))
            items.append((rel, fields, "labeled", {"source": "synthetic",
                                                   "render_seed": render_seed - 1}))
            if progress:
                progress(i + 1, count)
        outcomes = [o for _, o in ds.add_stored(items)]
        if outcomes.count("added") != count:
            raise RuntimeError(f"expected {count} distinct images, got {outcomes.count('added')}")
        ds.split(seed=SPLIT_SEED)
        ds.update_meta(description="Synthetic key images rendered by core/tasks/keys/render.py "
                       f"(build seed {seed}); labels are exact.",
                       render={"renderer": "core.tasks.keys.render.sample", "seed": seed,
                               "variation": variation})
        # Swap: the old folder moves aside, the new one in, then the old one goes.
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            if old.exists():
                shutil.rmtree(old)
            out.rename(old)
        (tmp / out.name).rename(out)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Dataset.open(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--count", type=int, default=DEFAULT_COUNT)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--variation", type=float, default=DEFAULT_VARIATION)
    a = ap.parse_args(argv)
    ds = build(a.out, a.count, a.seed, a.variation)
    c = ds.counts()
    size = sum(p.stat().st_size for p in ds.path.rglob("*") if p.is_file())
    print(f"{ds.path}: {c['total']} records, split {c['split']}, {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
