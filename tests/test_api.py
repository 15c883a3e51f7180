"""The REST API answering a real HTTP client: uvicorn started by the test on 127.0.0.1 (a free
port), requests from `requests`. Key analysis comes from a LoRA run trained in the test to
memorise one answer; the error cases come back as documented JSON."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import requests
import torch
import uvicorn
from PIL import Image

from core.api import EngineProvider, create_api
from core.tasks.keys.catalog import get_keyway
from core.workspace import REPO
from test_infer import TARGET_A, demo_dir, key_image, run_folder  # noqa: F401  (demo_dir is a fixture)

torch.set_num_threads(1)
SQL = "CREATE TABLE users (\n  id INT PRIMARY KEY,\n  email TEXT NOT NULL\n);"
GEN = {"max_new_tokens": 40}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app):
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}/api/v1"
    finally:
        server.should_exit = True
        thread.join(10)


def png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def runs(demo_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("api_runs")
    return {"keys": run_folder(demo_dir, root / "keys_run", TARGET_A, seed=1),
            "ui2sql": run_folder(demo_dir, root / "sql_run", SQL, task="ui2sql", seed=3, steps=60)}


@pytest.fixture(scope="module")
def api(demo_dir, runs):
    provider = EngineProvider(runs=runs, base_model=str(demo_dir), device="cpu")
    with serve(create_api(provider, max_upload_bytes=200_000, generation=GEN)) as url:
        yield url, provider


def test_health_and_openapi(api):
    url, _ = api
    h = requests.get(f"{url}/health", timeout=10).json()
    assert h["success"] and h["status"] == "ok" and h["max_upload_bytes"] == 200_000
    assert h["tasks"]["keys"]["run"] == "keys_run" and h["tasks"]["ui2sql"]["run"] == "sql_run"
    schema = requests.get(f"{url}/openapi.json", timeout=10).json()
    assert {"/api/v1/keys/analyze", "/api/v1/ui2sql", "/api/v1/health"} <= set(schema["paths"])
    props = schema["components"]["schemas"]["KeysAnalysis"]["properties"]
    assert "Catalog figure" in props["estimatedAnnualProduction"]["description"]


def test_keys_analyze_returns_the_phone_app_json(api):
    url, _ = api
    r = requests.post(f"{url}/keys/analyze", files={"image": ("k.jpg", png(key_image(70)), "image/png")}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"success", "keyway", "bitting", "brand", "confidence", "estimatedAnnualProduction",
                         "manufacturingComplexity", "marketPenetration", "timeInMarket"}
    assert body["success"] is True and body["error"] is None
    assert (body["keyway"], body["bitting"], body["brand"]) == ("SC1", "1,2,5,3,7", "Schlage")
    assert 0.0 < body["confidence"] <= 1.0
    figures = get_keyway("SC1").api_figures()
    assert {k: body[k] for k in figures} == figures and figures["estimatedAnnualProduction"] == 45_000_000


def test_ui2sql_checks_and_transpiles(api):
    url, _ = api
    r = requests.post(f"{url}/ui2sql", files={"image": ("s.png", png(key_image(200)), "image/png")},
                      data={"dialect": "mysql"}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["sql"] == SQL and body["valid"] is True and body["errors"] == []
    assert [t["name"] for t in body["tables"]] == ["users"]
    assert [c["name"] for c in body["tables"][0]["columns"]] == ["id", "email"]
    assert body["tables"][0]["primary_key"] == ["id"]
    assert body["dialect"] == "mysql" and "CREATE TABLE" in body["transpiled"]
    no_dialect = requests.post(f"{url}/ui2sql", files={"image": ("s.png", png(key_image(200)))}, timeout=60).json()
    assert no_dialect["transpiled"] is None and no_dialect["dialect"] is None
    bad = requests.post(f"{url}/ui2sql", files={"image": ("s.png", png(key_image(200)))},
                        data={"dialect": "oracle9"}, timeout=60)
    assert bad.status_code == 400 and "Unknown SQL dialect" in bad.json()["error"]


def _assert_error(r, status: int, text: str):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["success"] is False and text in body["error"] and isinstance(body["hint"], str) and body["hint"]


def test_error_cases(api):
    url, _ = api
    # No file at all, and a form with the wrong field name.
    _assert_error(requests.post(f"{url}/keys/analyze", timeout=10), 400, "No image")
    _assert_error(requests.post(f"{url}/keys/analyze", files={"photo": ("k.png", png(key_image()))}, timeout=10),
                  400, "No image")
    # A text file named .png: the image loader's own message.
    _assert_error(requests.post(f"{url}/keys/analyze", files={"image": ("k.png", b"hello, not a picture\n")},
                                timeout=10), 400, "is a text file, not an image")
    _assert_error(requests.post(f"{url}/ui2sql", files={"image": ("k.png", b"")}, timeout=10), 400, "empty")
    # Over the limit: by the declared length (never read) and by the bytes actually sent.
    noise = Image.frombytes("RGB", (260, 260), os.urandom(260 * 260 * 3))
    big = png(noise)
    assert 200_000 < len(big) < 200_000 + 64 * 1024  # passes the Content-Length pre-check
    _assert_error(requests.post(f"{url}/keys/analyze", files={"image": ("k.png", big)}, timeout=10), 413, "limit")
    _assert_error(requests.post(f"{url}/keys/analyze", files={"image": ("k.png", os.urandom(2_000_000))},
                                timeout=10), 413, "limit")
    # Still serving after all of that.
    assert requests.get(f"{url}/health", timeout=10).status_code == 200


def test_unparsed_answer_is_success_false(demo_dir):
    """The untrained base model's answer does not parse: success false with the reason."""
    provider = EngineProvider(base_model=str(demo_dir), device="cpu")
    with serve(create_api(provider, generation={"max_new_tokens": 12})) as url:
        body = requests.post(f"{url}/keys/analyze", files={"image": ("k.png", png(key_image()))}, timeout=60).json()
    assert body["success"] is False and "did not parse" in body["error"]
    assert body["keyway"] is None and body["estimatedAnnualProduction"] is None
    assert 0.0 < body["confidence"] < 1.0


def test_model_not_loaded_is_503_and_no_token_leaks(demo_dir, tmp_path, monkeypatch):
    secret = "hf_TESTSECRET0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    broken = tmp_path / "runs" / "no_adapter"
    broken.mkdir(parents=True)
    (broken / "config.json").write_text(json.dumps({"model_id": str(demo_dir), "task": "keys"}))
    provider = EngineProvider(runs={"keys": broken}, base_model="google/gemma-3-4b-it", device="cpu")
    with serve(create_api(provider, generation=GEN)) as url:
        r1 = requests.post(f"{url}/keys/analyze", files={"image": ("k.png", png(key_image()))}, timeout=60)
        r2 = requests.post(f"{url}/ui2sql", files={"image": ("k.png", png(key_image()))}, timeout=60)
        h = requests.get(f"{url}/health", timeout=10)
    _assert_error(r1, 503, "not loaded: Run 'no_adapter' has no trained weights")
    _assert_error(r2, 503, "not loaded")
    for r in (r1, r2, h):
        assert secret not in r.text


def test_concurrent_requests_load_once_and_all_answer(demo_dir, runs, monkeypatch):
    from core import models
    loads = []
    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda *a, **k: loads.append(a) or real(*a, **k))
    provider = EngineProvider(runs={"keys": runs["keys"]}, base_model=str(demo_dir), device="cpu")
    with serve(create_api(provider, generation=GEN)) as url:
        def call(i):
            return requests.post(f"{url}/keys/analyze", files={"image": ("k.png", png(key_image(20 * i)))},
                                 timeout=120).json()
        with ThreadPoolExecutor(6) as pool:
            bodies = list(pool.map(call, range(6)))
    assert all(b["success"] and b["bitting"] == "1,2,5,3,7" for b in bodies)
    assert len(loads) == 1


def test_cli_serve_starts_and_answers(runs, tmp_path):
    port = free_port()
    env = dict(os.environ, TRINITY_WORKSPACE=str(tmp_path / "ws"), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "core", "serve", "--run", str(runs["keys"]),
                             "--port", str(port), "--max-new-tokens", "40"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.time() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.time() < deadline, "python -m core serve did not come up"
            time.sleep(0.2)
        body = requests.post(f"{url}/keys/analyze", files={"image": ("k.png", png(key_image(90)))}, timeout=60).json()
        assert body["success"] and body["keyway"] == "SC1"
    finally:
        proc.terminate()
        proc.wait(15)
