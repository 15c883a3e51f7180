"""The shipped demo base (assets/demo/base): honest data, the real loading path, a runnable recipe."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import models
from core.demo_model import BASE_DIR, build_demo_model
from core.tasks import get_task

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"t_{name}", DEMO / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(DEMO))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(DEMO))
    return mod


@pytest.fixture(scope="module")
def pdata():
    return _load("pretrain_data")


@pytest.fixture(scope="module")
def manifest() -> set[int]:
    return set(np.load(DEMO / "pretrain_hashes.npy").tolist())


def _demo_images():
    for name in ("keys", "ui2sql"):
        for p in sorted((DEMO / name / "images").glob("*.png")):
            yield name, p


def test_no_demo_image_is_a_pretraining_image(pdata, manifest):
    meta = json.loads((BASE_DIR / "pretrain.json").read_text())
    assert len(manifest) == meta["unique_images"] > 100_000  # the whole pretraining set, not a sample
    seen = {"keys": 0, "ui2sql": 0}
    for name, path in _demo_images():
        with Image.open(path) as im:
            h = int(pdata.pixel_hash(im), 16)
        assert h not in manifest, f"{path} was a pretraining image"
        seen[name] += 1
    assert seen["keys"] >= 128 and seen["ui2sql"] >= 20


def test_the_manifest_holds_the_recipes_images(pdata, manifest):
    """The hashes are the recipe's own images: regenerated here from their seeds, they are in it."""
    for i in (0, 1, 2, 3, 1000, 54_321):
        ex = pdata.example(pdata.SEED0 + i)
        assert int(pdata.pixel_hash(ex["image"]), 16) in manifest, (i, ex["kind"])


def test_captions_never_use_a_tasks_answer_format(pdata):
    keys, ui2sql = get_task("keys"), get_task("ui2sql")
    for i in range(300):
        ex = pdata.example(pdata.SEED0 + 7_000_000 + i)
        text = ex["caption"]
        assert keys.score(keys.parse(text), {"fields": {"keyway": "SC1", "bitting": [1, 2, 3, 4, 5],
                                                        "brand": "Schlage"}})["format_compliance"] == 0.0, text
        assert "CREATE TABLE" not in text.upper() and "{" not in text, text
        assert not ui2sql.parse(text).data.get("tables"), text


def test_base_is_a_normal_model_folder_with_the_demo_tokenizer(tmp_path):
    """Same tokenizer, processor and chat template as the random-init build; its own weights."""
    init = build_demo_model(tmp_path / "init", seed=0)
    for name in ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "processor_config.json",
                 "chat_template.jinja"):
        assert (BASE_DIR / name).read_bytes() == (init / name).read_bytes(), name
    assert (BASE_DIR / "model.safetensors").read_bytes() != (init / "model.safetensors").read_bytes()
    assert models.resolve("demo") == str(BASE_DIR)
    assert (BASE_DIR / "model.safetensors").stat().st_size < 40 * 2**20
    card = (BASE_DIR / "README.md").read_text()
    for word in ("steps", "loss", "seed", "device", "Data"):
        assert word in card


def test_recipe_smoke_run_writes_a_loadable_base(tmp_path):
    """A few steps of the real recipe on CPU: a whole folder that loads with from_pretrained."""
    recipe = _load("pretrain_base")
    out = tmp_path / "base"
    meta = recipe.train(out, steps=8, batch=4, lr=2e-3, warmup=2, weight_decay=0.0, seed=0, eval_n=4,
                        workers=0, init=None, max_seconds=None, log=lambda *a: None)
    assert meta["steps_done"] == 8 and meta["images"] == 32
    assert meta["loss_last"] < meta["loss_first"]
    assert len(np.load(tmp_path / "pretrain_hashes.npy")) == 32
    model = models.load_model(str(out), device="cpu")
    proc = models.load_processor(str(out))
    assert model.config.model_type == "gemma3" and proc.tokenizer.convert_tokens_to_ids("<end_of_turn>") > 0
    assert "steps" in (out / "README.md").read_text()


def test_recipe_resumes_a_base_it_stopped_early(tmp_path):
    """--resume goes on with the next examples and the same schedule: stage 1 + stage 2 = one run's data."""
    recipe = _load("pretrain_base")
    out = tmp_path / "base"
    args = dict(steps=4, batch=2, lr=2e-3, warmup=1, weight_decay=0.0, seed=0, eval_n=2, workers=0, init=None,
                log=lambda *a: None)
    first = recipe.train(out, max_seconds=1e-6, **args)  # the time limit stops it after its first step
    assert first["steps_done"] == 1
    meta = recipe.train(out, max_seconds=None, resume=out, **args)
    assert meta["steps_done"] == 4 and meta["images"] == 8 and len(np.load(tmp_path / "pretrain_hashes.npy")) == 8
    assert [st["steps"] for st in meta["stages"]] == [[0, 1], [1, 4]]
    with pytest.raises(SystemExit, match="all 4 steps are done"):
        recipe.train(out, max_seconds=None, resume=out, **args)
    with pytest.raises(SystemExit, match="no pretrain.json"):
        recipe.train(tmp_path / "other", max_seconds=None, resume=tmp_path / "nowhere", **args)


def test_recipe_extends_a_base_with_a_stage_of_its_own(tmp_path):
    """--extend: a new stage with its own schedule on the next examples; its base refuses --resume."""
    recipe = _load("pretrain_base")
    out = tmp_path / "base"
    args = dict(batch=2, lr=2e-3, warmup=1, weight_decay=0.0, seed=0, eval_n=2, workers=0, init=None,
                max_seconds=None, log=lambda *a: None)
    recipe.train(out, steps=2, **args)
    meta = recipe.train(out, steps=3, extend=out, **{**args, "lr": 1e-3})
    assert meta["steps_done"] == 5 and meta["images"] == 10 and len(np.load(tmp_path / "pretrain_hashes.npy")) == 10
    assert [st["steps"] for st in meta["stages"]] == [[0, 2], [2, 5]]
    assert meta["stages"][1]["extends"] and meta["stages"][1]["lr"] == 1e-3 and meta["lr"] == 2e-3
    assert "own: peak lr 0.001" in (out / "README.md").read_text()
    with pytest.raises(SystemExit, match="--extend it again instead"):
        recipe.train(out, steps=5, resume=out, **args)
    with pytest.raises(SystemExit, match="batch 2"):
        recipe.train(out, steps=3, extend=out, **{**args, "batch": 4})
    with pytest.raises(SystemExit, match="no pretrain.json"):
        recipe.train(tmp_path / "other", steps=3, extend=tmp_path / "nowhere", **args)
