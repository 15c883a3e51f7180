"""The synthetic key renderer and the demo keys dataset it builds.

The geometry tests measure the rendered pixels: the blade's top edge above each cut position must
sit at the depth the bitting asks for, also after the image is shrunk to what a tiny model sees.
"""
from __future__ import annotations

import random
import sys

import numpy as np
import pytest

from core import images as imgs
from core.errors import StudioError
from core.tasks.keys.catalog import all_keyways
from core.tasks.keys import render as synth
from core.tasks.keys.render import random_label, render_key, sample
from core.tasks.keys import TASK
from core.workspace import ASSETS


def top_edges(img, keyway, n, bg_tol=40):
    """y (in design units) of the first key/rim pixel from the top, above each cut centre."""
    arr = np.asarray(img.convert("RGB"), np.int16)
    h, w = arr.shape[:2]
    sx, sy = w / synth.DESIGN_W, h / synth.DESIGN_H
    bg = arr[2, w // 2]
    ys = []
    for cx in synth.cut_centers(n):
        col = arr[:, int(round(cx * sx - 0.5))]
        hit = np.nonzero(np.abs(col - bg).max(axis=1) > bg_tol)[0]
        ys.append(hit[0] / sy)
    return np.array(ys)


@pytest.mark.parametrize("size", [(256, 128), (128, 64)])
def test_cut_depths_follow_the_bitting(size):
    bitting = [1, 9, 5, 3, 7]
    img = render_key("SC1", bitting, seed=0, size=size, variation=0.0)
    assert img.mode == "RGB" and img.size == size
    measured = top_edges(img, "SC1", 5)
    expected = synth.BLADE_TOP + np.array(bitting) * synth.DEPTH_STEP
    # The dark rim sits ~1.5 design px above the metal (plus antialiasing when shrunk): a
    # common offset, well under one 6.4 px depth step, with each cut at its own depth.
    offset = measured - expected
    assert -4.5 < offset.mean() < 0.5, (measured, expected)
    assert offset.max() - offset.min() < 0.5 * synth.DEPTH_STEP, (measured, expected)
    assert list(np.argsort(measured)) == list(np.argsort(expected))


def test_every_depth_step_is_visible_at_128x64():
    """Depth d and d+1 at the same position move the edge by about one step, even shrunk."""
    prev = None
    for d in range(1, 10):
        img = render_key("Y1", [d, 5, 5, 5, d], seed=0, size=(128, 64), variation=0.0)
        y = top_edges(img, "Y1", 5)[0]
        if prev is not None:
            assert 0.6 * synth.DEPTH_STEP < y - prev < 1.4 * synth.DEPTH_STEP, (d, y, prev)
        prev = y


def test_keyways_differ_in_cut_count_and_brands_in_look():
    canon = {code: render_key(code, [5] * (kw.positions or 5), seed=0, variation=0.0)
             for code, kw in all_keyways().items()}
    heads = {all_keyways()[c].brand: np.asarray(im)[:, :60].astype(float) for c, im in canon.items()}
    brands = list(heads)
    for i, a in enumerate(brands):
        for b in brands[i + 1:]:
            assert np.abs(heads[a] - heads[b]).mean() > 10, (a, b)   # head shape/colour differ
    sc1, sc4 = (np.asarray(canon[c]).astype(float) for c in ("SC1", "SC4"))
    assert np.abs(sc1 - sc4).mean() > 3                             # 5 vs 6 cuts


def test_deterministic_per_seed_and_variation_changes_the_picture():
    a = imgs.png_bytes(render_key("KW1", [1, 2, 3, 4, 5], seed=7))
    b = imgs.png_bytes(render_key("KW1", [1, 2, 3, 4, 5], seed=7))
    c = imgs.png_bytes(render_key("KW1", [1, 2, 3, 4, 5], seed=8))
    assert a == b and a != c
    # Variation 0 is the canonical, clean drawing: no seed dependence at all.
    c0 = imgs.png_bytes(render_key("KW1", [1, 2, 3, 4, 5], seed=1, variation=0.0))
    c1 = imgs.png_bytes(render_key("KW1", [1, 2, 3, 4, 5], seed=2, variation=0.0))
    assert c0 == c1 and c0 != a
    img1, f1 = sample(3)
    img2, f2 = sample(3)
    assert f1 == f2 and imgs.png_bytes(img1) == imgs.png_bytes(img2)


def test_random_labels_are_valid_and_cover_the_catalog():
    rng = random.Random(0)
    seen = set()
    for _ in range(300):
        fields = random_label(rng)
        assert TASK.validate({"fields": fields}) == [], fields
        seen.add(fields["keyway"])
    assert seen == set(all_keyways())
    assert random_label(random.Random(1), keyway="m1")["keyway"] == "M1"
    assert len(random_label(random.Random(1), keyway="M1")["bitting"]) == 4


def test_worst_case_pose_keeps_the_key_in_frame():
    """The largest shrink, shift and rotation `variation=1` can draw leave a background border."""
    k = 1
    for shape in ("round_rect", "circle", "diamond", "square", "hexagon"):
        mask = synth._key_mask(shape, [1, 1, 1, 1, 1, 1, 1], k)
        for scale in (1.0, 1.0 - synth.MAX_SHRINK):
            mx, my = synth.shift_limits(scale)
            for angle in (-synth.MAX_ANGLE, synth.MAX_ANGLE):
                for dx, dy in ((-mx, -my), (mx, my), (-mx, my), (mx, -my)):
                    m = np.asarray(synth._pose(mask, scale, angle, dx * k, dy * k, 0))
                    edge = np.concatenate([m[:2].ravel(), m[-2:].ravel(), m[:, :2].ravel(),
                                           m[:, -2:].ravel()])
                    assert edge.max() == 0, (shape, scale, angle, dx, dy)


def test_render_rejects_bad_input():
    with pytest.raises(ValueError):
        render_key("SC1", [1, 0, 5, 3, 7], seed=0)
    with pytest.raises(ValueError):
        render_key("SC1", [], seed=0)
    with pytest.raises(StudioError):
        render_key("ZZ9", [1, 2, 3], seed=0)


# ---- the demo dataset ----------------------------------------------------------------------------
def _build_module():
    sys.path.insert(0, str(ASSETS / "demo"))
    try:
        import build_keys
    finally:
        sys.path.pop(0)
    return build_keys


def test_demo_keys_dataset_is_ready_and_its_labels_are_exact():
    from core.dataset import Dataset
    ds = Dataset.open(ASSETS / "demo" / "keys")
    recs = ds.records()
    assert ds.meta["task"] == "keys" and len(recs) >= 120
    assert {r["status"] for r in recs} == {"labeled"}
    assert {r["split"] for r in recs} == {"train", "val"}
    assert ds.meta["split"]["seed"] == 42
    assert len({r["fields"]["keyway"] for r in recs}) == len(all_keyways())
    assert all(TASK.validate(r) == [] for r in recs)
    size = sum(p.stat().st_size for p in ds.path.rglob("*") if p.is_file())
    assert size < 8e6
    # Re-rendering a record from its seed gives the same bytes and the same label.
    for r in recs[:: len(recs) // 5]:
        img, fields = sample(r["render_seed"], keyway=r["fields"]["keyway"],
                             variation=ds.meta["render"]["variation"])
        assert fields == r["fields"]
        assert f"images/{imgs.image_sha16(imgs.png_bytes(img))}.png" == r["image"]
        assert ds.load_image(r).size == (256, 128)


def test_build_is_reproducible_and_replaces_the_folder(tmp_path):
    build_keys = _build_module()
    out = tmp_path / "keys"
    first = build_keys.build(out, count=9, seed=5)
    ids1 = [(r["id"], r["fields"], r["split"]) for r in first.records()]
    second = build_keys.build(out, count=9, seed=5)
    ids2 = [(r["id"], r["fields"], r["split"]) for r in second.records()]
    assert ids1 == ids2 and len(ids1) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys"]   # no temp or old folder left
    assert len(list((out / "images").iterdir())) == 9
