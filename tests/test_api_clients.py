"""The real `ollama` and `openai` client libraries against a running server (uvicorn on a free
loopback port) serving LoRA runs trained in the test: the seed's own `from ollama import chat` code
unchanged with OLLAMA_HOST pointed at the server, streaming and not, and OpenAI chat completions
with image_url data URIs, streaming and not. Two runs of one base answer side by side by name.
response_format (issue 27 item 6): json_object answers the task's parsed JSON, json_schema too where
the task has a schema (a receipt run of the json task), anything else is a 400 naming what is supported."""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import pytest

from core.api import ServedModels, create_api
from core.tasks import get_task
from core.workspace import REPO
from test_api import png, serve
from receipt_images import RECEIPT_SCHEMA
from test_infer import TARGET_A, TARGET_B, demo_dir, key_image  # noqa: F401  (demo_dir is a fixture)

ollama = pytest.importorskip("ollama")
openai = pytest.importorskip("openai")
PROMPT = get_task("keys").prompt({"fields": {}})  # the prompt the runs were trained on
RECEIPT = '{"items":[{"name":"Tea","price":3.5,"qty":2}],"total":7.0,"vendor":"Corner Cafe"}'


@pytest.fixture(scope="module")
def server(demo_dir, trained_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("client_runs")
    run_a = trained_run(TARGET_A, seed=1, into=root / "run_a")
    run_b = trained_run(TARGET_B, seed=2, into=root / "run_b")
    receipts = trained_run(RECEIPT, task="json", schema=RECEIPT_SCHEMA, seed=3, into=root / "receipts")
    provider = ServedModels([run_b, run_a, receipts], base_model=str(demo_dir), device="cpu")  # run_a answers "keys"
    with serve(create_api(provider, generation={"max_new_tokens": 80}), root="") as url:  # the receipt: ~45
        yield url, root


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "key.png"
    path.write_bytes(png(key_image(90)))
    return path


SEED = """
from ollama import chat
response = chat(model="{model}", messages=[{{"role": "user", "content": {prompt!r}, "images": [{path!r}]}}])
print(response["message"]["content"])
"""


def test_the_seeds_ollama_code_runs_unchanged(server, image_file):
    url, _ = server
    env = dict(os.environ, OLLAMA_HOST=url)
    env.pop("OLLAMA_API_KEY", None)
    for model, target in (("run_b", TARGET_B), ("keys", TARGET_A), ("run_a:latest", TARGET_A)):
        r = subprocess.run([sys.executable, "-c", SEED.format(model=model, prompt=PROMPT, path=str(image_file))],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == target


def test_ollama_client_list_generate_and_stream(server, image_file):
    url, _ = server
    client = ollama.Client(host=url)
    names = {m.model for m in client.list().models}
    assert {"keys:latest", "ui2sql:latest", "run_a:latest", "run_b:latest"} <= names
    res = client.chat(model="run_a", messages=[{"role": "user", "content": PROMPT, "images": [str(image_file)]}])
    assert res.message.content == TARGET_A and res.done and res.done_reason == "stop" and res.eval_count > 0
    gen = client.generate(model="run_b", prompt=PROMPT, images=[image_file.read_bytes()])
    assert gen.response == TARGET_B and gen.done
    parts = list(client.chat(model="run_b", stream=True,
                             messages=[{"role": "user", "content": PROMPT, "images": [str(image_file)]}]))
    assert len(parts) >= 3 and parts[-1].done and not any(p.done for p in parts[:-1])
    assert "".join(p.message.content for p in parts) == TARGET_B
    streamed = list(client.generate(model="keys", prompt=PROMPT, images=[str(image_file)], stream=True))
    assert "".join(p.response for p in streamed) == TARGET_A and streamed[-1].done_reason == "stop"


def test_ollama_errors_are_ollamas(server, image_file):
    url, _ = server
    client = ollama.Client(host=url)
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="nope", messages=[{"role": "user", "content": "hi", "images": [str(image_file)]}])
    assert e.value.status_code == 404 and "not served" in e.value.error and "run_a" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="keys", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 400 and "No image" in e.value.error
    with pytest.raises(ollama.ResponseError) as e:
        client.generate(model="keys", prompt="x", images=[base64.b64encode(b"not a picture at all").decode()])
    assert e.value.status_code == 400


def _message(path, text=PROMPT):
    uri = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         {"type": "image_url", "image_url": {"url": uri}}]}]


def test_openai_client_models_and_completions(server, image_file):
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    ids = {m.id for m in client.models.list()}
    assert {"keys", "ui2sql", "run_a", "run_b"} <= ids
    out = client.chat.completions.create(model="run_b", messages=_message(image_file))
    choice = out.choices[0]
    assert choice.message.content == TARGET_B and choice.finish_reason == "stop" and out.model == "run_b"
    assert out.usage.completion_tokens > 0 and out.usage.prompt_tokens > out.usage.completion_tokens
    chunks = list(client.chat.completions.create(model="keys", messages=_message(image_file), stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TARGET_A and len(chunks) >= 4
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_openai_errors_are_openais(server, image_file):
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="not served"):
        client.chat.completions.create(model="nope", messages=_message(image_file))
    with pytest.raises(openai.BadRequestError, match="Only data: URIs"):
        client.chat.completions.create(model="keys", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://example.com/key.png"}}]}])
    with pytest.raises(openai.BadRequestError, match="No image"):
        client.chat.completions.create(model="keys", messages=[{"role": "user", "content": "hello"}])


def test_openai_response_format_answers_the_parsed_json(server, image_file):
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    out = client.chat.completions.create(model="run_a", messages=_message(image_file),
                                         response_format={"type": "json_object"})
    assert json.loads(out.choices[0].message.content) == get_task("keys").parse(TARGET_A).data
    assert out.choices[0].finish_reason == "stop"
    chunks = list(client.chat.completions.create(model="run_a", messages=_message(image_file), stream=True,
                                                 response_format={"type": "json_object"}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(streamed) == get_task("keys").parse(TARGET_A).data
    # the json task's run: json_schema with its own schema (the empty text asks the task's prompt)
    ask = _message(image_file, text="")
    schema = {"type": "json_schema", "json_schema": {"name": "receipt", "schema": RECEIPT_SCHEMA}}
    out = client.chat.completions.create(model="receipts", messages=ask, response_format=schema)
    assert json.loads(out.choices[0].message.content) == json.loads(RECEIPT)
    assert json.loads(client.chat.completions.create(model="receipts", messages=ask, response_format={
        "type": "json_object"}).choices[0].message.content) == json.loads(RECEIPT)
    text = client.chat.completions.create(model="receipts", messages=ask, response_format={"type": "text"})
    assert text.choices[0].message.content == RECEIPT


def test_openai_response_format_refusals(server, image_file):
    url, _ = server
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    schema = {"type": "json_schema", "json_schema": {"name": "receipt", "schema": RECEIPT_SCHEMA}}
    with pytest.raises(openai.BadRequestError, match="Supported response_format types here: text, json_object\\.") as e:
        client.chat.completions.create(model="run_a", messages=_message(image_file), response_format=schema)
    assert "no JSON Schema of its own" in str(e.value)
    with pytest.raises(openai.BadRequestError, match="not supported.*text, json_object, json_schema"):
        client.chat.completions.create(model="receipts", messages=_message(image_file, text=""),
                                       response_format={"type": "xml"})
    # the untrained base does not answer in the task's structure: no text posing as JSON
    with pytest.raises(openai.UnprocessableEntityError, match="did not parse"):
        client.chat.completions.create(model="ui2sql", messages=_message(image_file), max_tokens=8,
                                       response_format={"type": "json_object"})
    # an answer that parses but not into the client's own schema
    tip = {**RECEIPT_SCHEMA, "required": [*RECEIPT_SCHEMA["required"], "tip"],
           "properties": {**RECEIPT_SCHEMA["properties"], "tip": {"type": "number"}}}
    with pytest.raises(openai.UnprocessableEntityError, match="'tip' is a required property"):
        client.chat.completions.create(model="receipts", messages=_message(image_file, text=""), response_format={
            "type": "json_schema", "json_schema": {"name": "receipt", "schema": tip}})
