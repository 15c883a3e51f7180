"""Inference engine on the offline demo model: one load, adapters switched, batched = one by one,
confidence from the model's own token probabilities.

The adapters here are LoRA runs made by the product's training job (conftest's trained_run: a few
dozen CPU steps) to memorise one answer each, so "base vs run" compares two genuinely different models.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import key_image  # noqa: F401  (test_api and test_evaluate import it from here)
from core import models
from core.errors import StudioError
from core.infer import Engine, chat_messages, generation_settings
from core.tasks import get_task

torch.set_num_threads(1)

TARGET_A = "KEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage"
TARGET_B = "KEYWAY: KW1\nBITTING: 3,3,1,6,2\nBRAND: Kwikset"


@pytest.fixture(scope="session")
def demo_dir(demo_model_path) -> Path:
    """The demo model folder (test_api and test_evaluate import this fixture)."""
    return Path(demo_model_path)


@pytest.fixture(scope="module")
def runs(trained_run, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {"runA": trained_run(TARGET_A, seed=1, into=root / "runA"),
            "runB": trained_run(TARGET_B, seed=2, into=root / "runB")}


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
    # as the engine encodes: the chat template already holds <bos>
    enc = engine.processor(text=[text], images=[[image]], add_special_tokens=False, return_tensors="pt")
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


def test_base_answer_fails_the_parse_and_its_confidence_is_zero(demo_dir):
    """The base describes keys in prose (it never saw the task's format): the parse fails, so the
    model is not sure of any valid answer: confidence 0, no field confidences (issue 27 item 11); the
    mean of its own token probabilities stays readable as token_confidence."""
    engine = Engine(str(demo_dir), device="cpu")
    a = engine.generate([key_image()], [get_task("keys").prompt({})], task="keys", max_new_tokens=10)[0]
    assert not a.parsed.ok and a.valid is False and a.field_confidence == {} and "KEYWAY:" not in a.text
    content = [p for t, p in zip(a.token_ids, a.token_probs) if t not in engine._special]
    assert a.confidence == 0.0 and a.to_dict()["confidence"] == 0.0
    assert 0.0 < a.token_confidence < 1.0 and a.token_confidence == pytest.approx(sum(content) / len(content), abs=1e-6)
    from studio.compare_logic import payload, verdict_html
    assert "confidence 0 · no valid answer" in verdict_html(a, get_task("keys"), None)  # what Compare shows
    assert payload(a, get_task("keys"))["confidence"] == 0.0


def test_field_confidence_comes_from_the_tasks_field_spans(demo_dir, runs):
    """The engine asks the task where each field is written (Task.field_spans), no task names: a task
    that locates only the brand gets only the brand's confidence, from exactly those tokens."""
    keys = get_task("keys")

    class BrandOnly(type(keys)):
        def field_spans(self, text, parsed):
            at = text.index("Schlage")
            return {"brand": [(at, at + len("Schlage"))]}

    engine = Engine(str(demo_dir), device="cpu")
    engine.add_adapter(runs["runA"])
    a = engine.generate([key_image(100)], [keys.prompt({})], adapter="runA", task=BrandOnly(), max_new_tokens=30)[0]
    assert a.valid and list(a.field_confidence) == ["brand"]
    assert a.confidence == a.field_confidence["brand"] and a.confidence != a.token_confidence
    from studio.compare_logic import verdict_html
    assert f"brand {a.field_confidence['brand']:.2f}" in verdict_html(a, keys, None)


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


def test_adapters_with_and_without_answer_tokens_share_one_base_in_either_order(demo_dir, trained_run,
                                                                                tmp_path):
    """A run of the demo recipe trains its answers' embedding rows too (train_answer_tokens); Compare and
    the API then hold it beside older runs without them on one base. PEFT 0.21 loads those only in one
    order (core.infer.Engine._reload_with); in both, each run answers as when loaded alone."""
    from core.infer import trains_tokens

    tok = trained_run(TARGET_B, seed=2, answer_tokens=True, into=tmp_path / "runTok")
    plain = trained_run(TARGET_A, seed=1, answer_tokens=False, into=tmp_path / "runA")
    cfg = json.loads((tok / "adapter" / "adapter_config.json").read_text())
    assert trains_tokens(tok / "adapter") and not trains_tokens(plain / "adapter")
    task = get_task("keys")
    assert set(cfg["trainable_token_indices"]) >= set(
        Engine(str(demo_dir)).processor.tokenizer(TARGET_B, add_special_tokens=False)["input_ids"])
    img = key_image(128)

    def answers(engine, name):
        return engine.generate([img], [task.prompt({})], adapter=name, task=task)[0].text

    alone = {}
    for run in (plain, tok):
        e = Engine(str(demo_dir))
        alone[run.name] = answers(e, e.add_adapter(run))
    base = answers(e, None)
    # (a plain LoRA on the shipped base memorises "BRAND:" only now and then: its own answer is the reference)
    assert alone["runTok"] == TARGET_B and alone["runA"].startswith("KEYWAY: SC1") and base not in (TARGET_A, TARGET_B)
    for order in ((tok, plain), (plain, tok)):
        e = Engine(str(demo_dir))
        names = {run.name: e.add_adapter(run) for run in order}
        assert {run: answers(e, name) for run, name in names.items()} == alone, [r.name for r in order]
        assert answers(e, None) == base
