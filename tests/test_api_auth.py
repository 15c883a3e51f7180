"""Auth on every API family of the real processes: `python app.py --auth USER:PASS --api-key KEY`
and `python -m core serve` with $TRINITY_API_KEY. Unauthenticated or wrong credentials get 401;
HTTP Basic and bearer tokens get through (requests, the ollama and openai clients, gradio_client);
neither the key nor the password appears in the server's output."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from bench.live_server import free_port, live_server
from core.workspace import REPO

USER, PASSWORD = "ada", "pw-Kq83-secret"
KEY = "tsk-APIKEY-9f8e7d6c5b4a"


def process(args: list[str], log, env_extra: dict, auth):
    """The real process, its output in LOG, up once the health check (with AUTH) answers."""
    return live_server(args, {"OMP_NUM_THREADS": "1", **env_extra}, log=log, auth=auth)


def _refused(r, shape: str):
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    body = r.json()
    if shape == "openai":
        assert "Authentication required" in body["error"]["message"]
    elif shape == "ollama":
        assert "Authentication required" in body["error"]
    else:
        assert body["success"] is False and "Authentication required" in body["error"]


GUARDED = [("get", "/api/v1/health", "task"), ("post", "/api/v1/keys/analyze", "task"),
           ("post", "/api/v1/tasks/ui2sql/analyze", "task"), ("get", "/api/v1/openapi.json", "task"),
           ("post", "/api/v1/datasets/keys/prelabel", "task"), ("get", "/api/v1/datasets/keys/prelabel", "task"),
           ("get", "/api/tags", "ollama"), ("post", "/api/chat", "ollama"),
           ("get", "/v1/models", "openai"), ("post", "/v1/chat/completions", "openai")]


def test_studio_api_needs_the_login_or_the_key(tmp_path):
    import gradio_client
    import ollama
    import openai

    log = tmp_path / "studio.log"
    args = ["app.py", "--workspace", str(tmp_path / "ws"), "--auth", f"{USER}:{PASSWORD}", "--api-key", KEY]
    with process(args, log, {}, (USER, PASSWORD)) as s:
        url = s.url
        for method, path, shape in GUARDED:
            _refused(getattr(requests, method)(url + path, timeout=10), shape)
            _refused(getattr(requests, method)(url + path, auth=(USER, "wrong"), timeout=10), shape)
            _refused(getattr(requests, method)(url + path, headers={"Authorization": "Bearer nope-nope-nope"},
                                               timeout=10), shape)
        basic = requests.get(url + "/api/v1/health", auth=(USER, PASSWORD), timeout=10)
        bearer = requests.get(url + "/api/v1/health", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        assert basic.status_code == bearer.status_code == 200 and bearer.json()["auth"] is True
        assert requests.get(url + "/api/tags", auth=(USER, PASSWORD), timeout=10).status_code == 200
        # The client libraries, with the key as their users pass it.
        assert {m.id for m in openai.OpenAI(base_url=url + "/v1", api_key=KEY).models.list()} >= {"keys", "ui2sql"}
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="wrong-key-123", max_retries=0).models.list()
        assert ollama.Client(host=url, headers={"Authorization": f"Bearer {KEY}"}).list().models
        with pytest.raises(ollama.ResponseError) as e:
            ollama.Client(host=url).list()
        assert e.value.status_code == 401
        # The studio's own endpoints behind the same login (Gradio's).
        client = gradio_client.Client(url + "/", auth=(USER, PASSWORD), verbose=False)
        assert client.predict("CREATE TABLE a (id INT PRIMARY KEY);", api_name="/check_sql")["ok"] is True
        with pytest.raises(Exception):
            gradio_client.Client(url + "/", verbose=False)
    text = log.read_text()
    assert KEY not in text and PASSWORD not in text


def test_core_serve_takes_the_key_from_the_environment(tmp_path):
    env = {"TRINITY_WORKSPACE": str(tmp_path / "ws"), "TRINITY_API_KEY": KEY}
    log = tmp_path / "serve.log"
    with process(["-m", "core", "serve"], log, env, _Bearer(KEY)) as s:
        url = s.url
        _refused(requests.get(url + "/v1/models", timeout=10), "openai")
        ok = requests.get(url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
        assert ok.status_code == 200
    text = log.read_text()
    assert "GET /v1/models" in text  # the access log is on, and still holds no credential
    assert KEY not in text
    r = subprocess.run([sys.executable, "-m", "core", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                       cwd=REPO, env={**os.environ, **env, "TRINITY_API_KEY": ""}, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "Refusing to expose the API (0.0.0.0)" in r.stderr


class _Bearer(requests.auth.AuthBase):
    def __init__(self, key):
        self.key = key

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self.key}"
        return r


def test_bind_rules_and_credential_parsing():
    import base64

    import app as studio_app
    from core.api.auth import ApiAuth, api_key_from

    with pytest.raises(SystemExit, match="--api-key guards the API, not the UI"):
        studio_app.settings(studio_app.parse_args(["--host", "0.0.0.0", "--api-key", KEY]), env={})
    s = studio_app.settings(studio_app.parse_args(["--host", "0.0.0.0", "--auth", f"{USER}:{PASSWORD}"]),
                            env={"TRINITY_API_KEY": KEY})
    assert s["auth"] == (USER, PASSWORD) and s["api_key"] == KEY
    with pytest.raises(SystemExit, match="at least 8"):
        api_key_from("short", {})
    assert api_key_from(None, {}) is None and api_key_from(None, {"TRINITY_API_KEY": KEY}) == KEY
    gate = ApiAuth((USER, PASSWORD), KEY)
    basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert gate.allows(basic) and gate.allows(f"Bearer {KEY}") and gate.allows(f"bearer {KEY}")
    for bad in (None, "", "Basic", "Basic !!!not-base64", "Basic " + base64.b64encode(b"nocolon").decode(),
                f"Bearer {PASSWORD}", f"Bearer {KEY}x", "Token " + KEY,
                "Basic " + base64.b64encode(f"{USER}:{PASSWORD}x".encode()).decode()):
        assert not gate.allows(bad), bad
    assert ApiAuth().allows(None)  # no login, no key: open (loopback only, see settings)
