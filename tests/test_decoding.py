"""Issue 27 item 5: one source of truth for decoding. The task's generation preset drives inference
(Engine.generate), the API's settings, the exported Ollama Modelfile and the model card, so an
exported model decodes the way the studio scored it (greedy for the bundled tasks, not Ollama's
temperature 0.7 / top_p 0.9)."""
from __future__ import annotations

import pytest

from core.api.runner import client_gen
from core.decoding import generation_settings, ollama_parameters
from core.modelcard import model_card, modelfile
from core.tasks import all_tasks
from core.tasks.base import BaseTask, Field, Parsed
from core.tasks.json_schema import JsonTask

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}, "vendor": {"type": "string"},
                                           "paid": {"type": "boolean"}}, "required": ["total"]}


class SamplingTask(BaseTask):
    """A task whose preset samples: everything downstream must follow it, not a default."""
    name, title = "sampler", "Sampling test task"
    fields = [Field("text", "text", "Text")]

    @property
    def generation(self):
        return {"max_new_tokens": 20, "do_sample": True, "temperature": 0.5, "top_p": 0.8}

    def prompt(self, record):
        return "Say something."

    def target(self, record):
        return record["fields"]["text"]

    def parse(self, text):
        return Parsed(bool(text.strip()), {"text": text})

    def score(self, parsed, record):
        return {"exact": float(parsed.data.get("text") == record["fields"]["text"])}


def _params(text: str) -> dict:
    return {ln.split()[1]: ln.split(None, 2)[2] for ln in text.splitlines()
            if ln.startswith("PARAMETER ") and ln.split()[1] != "stop"}


def test_bundled_tasks_decode_greedily_everywhere():
    for name, task in all_tasks().items():
        s = generation_settings(task)
        assert s["do_sample"] is False and "temperature" not in s, name
        assert _params(modelfile("m.gguf", "p.gguf", task)) == {
            "temperature": "0", "top_k": "1", "repeat_penalty": "1", "num_predict": str(s["max_new_tokens"])}, name
    text = modelfile("m.gguf", "p.gguf", "keys")
    assert "0.7" not in text and "top_p" not in text


def test_a_configured_json_task_exports_its_own_answer_cap():
    task = JsonTask().configure({"name": "receipts", "schema": SCHEMA})
    cap = generation_settings(task)["max_new_tokens"]
    assert cap == task.max_new_tokens == 64 + 32 * 3
    assert _params(modelfile("m.gguf", "p.gguf", task))["num_predict"] == str(cap)
    card = model_card("gguf", "r1", {"model": "demo", "task": "json"}, "demo", None, [],
                      {"gguf": "m.gguf", "mmproj": "p.gguf"}, task=task)
    decoding = card.split("## Decoding", 1)[1].split("##", 1)[0]
    assert "greedy" in decoding and f"at most {cap} new tokens" in decoding
    assert f"max_new_tokens={cap}, do_sample=False" in decoding and "`temperature 0`" in decoding


def test_a_sampling_preset_is_followed_by_infer_api_modelfile_and_card():
    task = SamplingTask()
    assert generation_settings(task) == {"max_new_tokens": 20, "do_sample": True, "temperature": 0.5, "top_p": 0.8}
    assert ollama_parameters(task) == {"temperature": 0.5, "top_p": 0.8, "repeat_penalty": 1, "num_predict": 20}
    assert _params(modelfile("m.gguf", "p.gguf", task))["temperature"] == "0.5"
    card = model_card("adapter", "r1", {"model": "demo", "task": "sampler"}, "demo", None, [], task=task)
    assert "sampling (temperature 0.5, top_p 0.8)" in card and "Modelfile" not in card.split("## Decoding")[1][:300]
    # an API client's temperature 0 is greedy whatever the preset; above 0 samples with the client's value
    assert generation_settings(task, **client_gen(temperature=0))["do_sample"] is False
    assert generation_settings(task, **client_gen(temperature=1.2)) == {
        "max_new_tokens": 20, "do_sample": True, "temperature": 1.2, "top_p": 0.8}
    assert generation_settings(task, **client_gen()) == generation_settings(task)


def test_the_engine_generates_with_the_preset(demo_model_path, monkeypatch):
    """Engine.generate hands transformers exactly the preset's settings (spied, the real generate runs)."""
    import torch

    from core.infer import Engine
    from tests.conftest import key_image

    torch.set_num_threads(1)
    engine = Engine(str(demo_model_path), device="cpu")
    seen = []
    real = engine.model.generate

    def spy(**kw):
        seen.append({k: kw[k] for k in ("max_new_tokens", "do_sample", "temperature", "top_p") if k in kw})
        return real(**kw)

    monkeypatch.setattr(engine.model, "generate", spy)
    keys = all_tasks()["keys"]
    engine.generate([key_image()], [keys.prompt({})], task=keys)
    assert seen[-1] == generation_settings(keys) == {"max_new_tokens": keys.max_new_tokens, "do_sample": False}
    torch.manual_seed(0)
    engine.generate([key_image()], ["x"], task=SamplingTask(), max_new_tokens=4)
    assert seen[-1] == {"max_new_tokens": 4, "do_sample": True, "temperature": 0.5, "top_p": 0.8}


@pytest.mark.parametrize("name", ["keys", "ui2sql"])
def test_the_api_settings_fill_from_the_preset(name):
    """The server's --max-new-tokens caps the client's ask; the preset decides the rest."""
    from types import SimpleNamespace

    from core.api.runner import Runner

    runner = Runner(provider=None, batcher=None, generation={"max_new_tokens": 40})
    target = SimpleNamespace(task=all_tasks()[name])
    gen = runner.settings(target, client_gen(max_tokens=500))
    assert gen == {"max_new_tokens": 40}
    assert generation_settings(target.task, **gen) == {"max_new_tokens": 40, "do_sample": False}
    assert runner.max_new_tokens(target, {}) == all_tasks()[name].max_new_tokens
