"""Inference engine on the offline demo model: one load, adapters switched, batched = one by one,
confidence from the model's own token probabilities.

The adapters here are real PEFT LoRA adapters trained in the test (a few dozen optimizer steps) to
memorise one answer each, so "base vs run" compares two genuinely different models.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from core import models
from core.errors import StudioError
from core.infer import Engine, chat_messages, generation_settings
from core.tasks import get_task

torch.set_num_threads(1)

TARGET_A = "KEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage"
TARGET_B = "KEYWAY: KW1\nBITTING: 3,3,1,6,2\nBRAND: Kwikset"


# Built models and adapters live for the whole session (removed at exit); other test modules import
# these helpers, so the caches are module globals rather than per-module fixtures.
_TMP = tempfile.TemporaryDirectory(prefix="trinity-infer-tests-")
_DEMO: list[Path] = []


@pytest.fixture(scope="session")
def demo_dir(request) -> Path:
    """The demo model folder: conftest's shared one when it exists, else built here once."""
    try:
        return Path(request.getfixturevalue("demo_model_path"))
    except pytest.FixtureLookupError:
        if not _DEMO:
            from core.demo_model import build_demo_model
            _DEMO.append(build_demo_model(Path(_TMP.name) / "demo"))
        return _DEMO[0]


def key_image(shade: int = 128) -> Image.Image:
    im = Image.new("RGB", (192, 96), (shade, shade, shade))
    for x in range(20, 170, 30):  # a few "cuts" so images differ in content, not just colour
        im.paste((255 - shade, 40, 40), (x, 30, x + 8, 30 + (x % 50)))
    return im


_TRAINED: dict[tuple, Path] = {}


def trained_adapter(model_dir: Path, target: str, task: str = "keys", steps: int = 50, seed: int = 0) -> Path:
    """make_run's adapter, trained once per session (test_api and test_evaluate reuse them)."""
    key = (str(model_dir), target, task, steps, seed)
    if key not in _TRAINED:
        root = Path(tempfile.mkdtemp(prefix="adapter-", dir=_TMP.name))
        _TRAINED[key] = make_run(model_dir, root / "run", target, task=task, steps=steps, seed=seed) / "adapter"
    return _TRAINED[key]


def run_folder(model_dir: Path, run_dir: Path, target: str, task: str = "keys", dataset: str = "",
               steps: int = 50, seed: int = 0) -> Path:
    """A run folder (config.json + adapter/) whose adapter memorised `target`."""
    import shutil
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(trained_adapter(model_dir, target, task, steps, seed), run_dir / "adapter")
    (run_dir / "config.json").write_text(json.dumps({"model_id": str(model_dir), "task": task,
                                                      "dataset": dataset}))
    return run_dir


def make_run(model_dir: Path, run_dir: Path, target: str, task: str = "keys", dataset: str = "",
             steps: int = 50, seed: int = 0) -> Path:
    """Trains a LoRA adapter that memorises `target` for the task prompt (training's chat format:
    user turn = image + prompt, loss on the answer and <end_of_turn> only) and writes a run folder."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = models.load_model(str(model_dir), device="cpu", for_training=True)
    proc = models.load_processor(str(model_dir))
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                          "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(model, lora)
    prompt_text = get_task(task).prompt({"fields": {}})
    prompt = proc.apply_chat_template(chat_messages(prompt_text), add_generation_prompt=True, tokenize=False)
    images = [[key_image(s)] for s in (60, 128, 200)]
    enc = proc(text=[prompt + target + "<end_of_turn>\n"] * 3, images=images, return_tensors="pt")
    n_prompt = proc(text=[prompt], images=images[:1], return_tensors="pt")["input_ids"].shape[1]
    labels = enc["input_ids"].clone()
    labels[:, :n_prompt] = -100
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        peft_model(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    run_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(run_dir / "adapter")
    (run_dir / "config.json").write_text(json.dumps({"model_id": str(model_dir), "task": task,
                                                      "dataset": dataset}))
    return run_dir


@pytest.fixture(scope="module")
def runs(demo_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {"runA": run_folder(demo_dir, root / "runA", TARGET_A, seed=1),
            "runB": run_folder(demo_dir, root / "runB", TARGET_B, seed=2)}


@pytest.fixture
def count_loads(monkeypatch):
    calls = []
    real = models.load_model

    def counting(*a, **kw):
        calls.append(a)
        return real(*a, **kw)

    monkeypatch.setattr(models, "load_model", counting)
    return calls


def test_side_by_side_base_vs_adapters_from_one_load(demo_dir, runs, count_loads):
    engine = Engine(str(demo_dir), device="cpu")
    prompt = get_task("keys").prompt({})
    plain = engine.generate([key_image(90)], [prompt], max_new_tokens=30)[0]  # before any adapter
    assert engine.add_adapter(runs["runA"]) == "runA"
    assert engine.add_adapter(runs["runB"], name="runB") == "runB"
    assert engine.add_adapter(runs["runA"]) == "runA"  # already loaded: no second copy
    out = engine.side_by_side(key_image(90), prompt, adapters=[None, "runA"], task="keys", max_new_tokens=30)
    assert list(out) == ["base", "runA"]
    assert out["runA"].text == TARGET_A
    assert out["base"].text != TARGET_A and out["base"].adapter is None
    assert out["base"].token_ids == plain.token_ids  # adapters disabled = the model as loaded
    three = engine.side_by_side(key_image(90), prompt, adapters=[None, "runA", "runB"], max_new_tokens=30)
    assert three["runB"].text == TARGET_B
    assert three["base"].token_ids == out["base"].token_ids  # disabling adapters really gives the base
    assert len(count_loads) == 1  # base + two adapters, three answers: the model was loaded once


def test_batched_generation_matches_one_by_one(demo_dir, runs):
    engine = Engine(str(demo_dir), device="cpu")
    engine.add_adapter(runs["runA"])
    images = [key_image(40), key_image(140), key_image(230)]
    # Prompts of different lengths force left padding inside the batch.
    prompts = ["Read this key.", get_task("keys").prompt({}), "Key?"]
    for adapter in (None, "runA"):
        batched = engine.generate(images, prompts, adapter=adapter, max_new_tokens=12, batch_size=3)
        single = [engine.generate([im], [p], adapter=adapter, max_new_tokens=12)[0]
                  for im, p in zip(images, prompts)]
        for b, s in zip(batched, single):
            assert b.token_ids == s.token_ids
            assert b.confidence == pytest.approx(s.confidence, abs=1e-3)


def test_confidence_is_the_models_own_token_probability(demo_dir, runs):
    """Re-score the generated tokens with a teacher-forced forward pass: the probabilities must match."""
    engine = Engine(str(demo_dir), device="cpu")
    engine.add_adapter(runs["runA"])
    prompt = get_task("keys").prompt({})
    image = key_image(100)
    answer = engine.generate([image], [prompt], adapter="runA", max_new_tokens=30)[0]
    assert answer.text == TARGET_A and len(answer.token_probs) == len(answer.token_ids) > 5
    text = engine.processor.apply_chat_template(chat_messages(prompt), add_generation_prompt=True, tokenize=False)
    enc = engine.processor(text=[text], images=[[image]], return_tensors="pt")
    ids = torch.cat([enc["input_ids"], torch.tensor([answer.token_ids])], dim=1)
    mask = torch.ones_like(ids)
    tti = torch.cat([enc["token_type_ids"], torch.zeros(1, len(answer.token_ids), dtype=torch.long)], dim=1)
    engine.model.set_adapter(engine.adapters["runA"])
    with torch.no_grad():
        logits = engine.model(input_ids=ids, attention_mask=mask, token_type_ids=tti,
                              pixel_values=enc["pixel_values"]).logits
    n = enc["input_ids"].shape[1]
    probs = torch.softmax(logits[0, n - 1:-1].float(), -1)
    expected = probs[torch.arange(len(answer.token_ids)), torch.tensor(answer.token_ids)]
    assert answer.token_probs == pytest.approx(expected.tolist(), abs=1e-4)
    # Without a task: mean over the content tokens (newlines count, special tokens do not).
    assert answer.confidence == pytest.approx(sum(answer.token_probs) / len(answer.token_probs), abs=1e-4)


def test_confidence_covers_the_parsed_fields(demo_dir, runs):
    engine = Engine(str(demo_dir), device="cpu")
    engine.add_adapter(runs["runA"])
    a = engine.generate([key_image(100)], [get_task("keys").prompt({})], adapter="runA", task="keys",
                        max_new_tokens=30)[0]
    assert a.parsed.ok and a.parsed.data["bitting"] == [1, 2, 5, 3, 7]
    assert set(a.field_confidence) == {"keyway", "bitting", "brand"}
    # Hand check of the bitting field: the tokens spelling "1,2,5,3,7" (prefix-decoded spans).
    tok = engine.processor.tokenizer
    ends = [len(tok.decode(a.token_ids[:i + 1], skip_special_tokens=True)) for i in range(len(a.token_ids))]
    at = a.text.index("1,2,5,3,7")
    inside = [p for i, p in enumerate(a.token_probs)
              if (ends[i - 1] if i else 0) < at + 9 and ends[i] > at]
    assert len(inside) >= 5
    assert a.field_confidence["bitting"] == pytest.approx(sum(inside) / len(inside), abs=1e-4)
    # The labels ("KEYWAY: ") are not field tokens: the answer's confidence is not the all-token mean.
    assert 0.0 < a.confidence <= 1.0
    assert a.confidence != pytest.approx(sum(a.token_probs) / len(a.token_probs), abs=1e-6)


def test_base_answer_gets_low_confidence_and_a_failed_parse(demo_dir):
    engine = Engine(str(demo_dir), device="cpu")
    a = engine.generate([key_image()], [get_task("keys").prompt({})], task="keys", max_new_tokens=10)[0]
    assert not a.parsed.ok and a.field_confidence == {}
    assert 0.0 < a.confidence < 0.5  # an untrained model is unsure; the value is measured, not set


def test_generation_presets():
    assert generation_settings("keys") == {"max_new_tokens": 150, "do_sample": False}
    s = generation_settings("keys", sample=True)
    assert (s["temperature"], s["top_p"], s["max_new_tokens"], s["do_sample"]) == (0.3, 0.9, 150, True)
    assert generation_settings("ui2sql")["max_new_tokens"] >= 512
    assert generation_settings("keys", max_new_tokens=7)["max_new_tokens"] == 7


def test_sampling_runs_with_the_preset(demo_dir):
    engine = Engine(str(demo_dir), device="cpu")
    torch.manual_seed(0)
    out = engine.generate([key_image(), key_image(30)], ["a", "b"], task="keys", sample=True, max_new_tokens=8)
    assert len(out) == 2 and all(0 < len(a.token_ids) <= 8 for a in out)


def test_adapter_errors(demo_dir, runs, tmp_path):
    engine = Engine(str(demo_dir), device="cpu")
    with pytest.raises(StudioError, match="No adapter named 'nope'"):
        engine.generate([key_image()], ["x"], adapter="nope", max_new_tokens=2)
    with pytest.raises(StudioError, match="No trained adapter"):
        engine.add_adapter(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "adapter").symlink_to(runs["runA"] / "adapter")
    (other / "config.json").write_text(json.dumps({"model_id": "google/gemma-3-4b-it", "task": "keys"}))
    with pytest.raises(StudioError, match="was trained on 'google/gemma-3-4b-it'"):
        engine.add_adapter(other)
    with pytest.raises(StudioError, match="different number"):
        engine.generate([key_image()], ["a", "b"])
