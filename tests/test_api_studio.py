"""Serving a chosen run from the running studio (`python app.py`): gradio_client calls the Export
tab's serve control (/serve_runs, /stop_serving); the OpenAI client then gets the run's answers by
name, and loses them when serving stops, without a restart. /compare's base side is the run's
own base model. `app.py --serve RUN` serves a run from the start."""
from __future__ import annotations

import base64
import json
import shutil

import pytest

from core.tasks import get_task
from test_api import png
from test_infer import TARGET_A, demo_dir, key_image  # noqa: F401  (demo_dir is a fixture)

gradio_client = pytest.importorskip("gradio_client")
openai = pytest.importorskip("openai")
requests = pytest.importorskip("requests")


def _ask(url, model):
    uri = "data:image/png;base64," + base64.b64encode(png(key_image(90))).decode()
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    out = client.chat.completions.create(model=model, max_tokens=40, messages=[{"role": "user", "content": [
        {"type": "text", "text": get_task("keys").prompt({"fields": {}})},
        {"type": "image_url", "image_url": {"url": uri}}]}])
    return out.choices[0].message.content


def test_the_studio_serves_a_chosen_run_without_restart(demo_dir, trained_run, tmp_path, start_studio):
    ws = tmp_path / "workspace"
    trained_run(TARGET_A, seed=1, into=ws / "runs" / "run_a")
    with start_studio(ws, {"OMP_NUM_THREADS": "1"}) as s:
        health = requests.get(s.url + "/api/v1/health", timeout=10).json()
        assert health["tasks"]["keys"]["run"] is None and "run_a" not in {x["name"] for x in health["served"]}
        client = gradio_client.Client(s.url + "/", verbose=False)
        table = client.predict(["run_a"], api_name="/serve_runs")
        assert "`run_a`" in table
        health = requests.get(s.url + "/api/v1/health", timeout=10).json()
        assert health["tasks"]["keys"]["run"] == "run_a"
        assert _ask(s.url, "run_a") == TARGET_A and _ask(s.url, "keys") == TARGET_A
        # /compare: the base side is the model the run was trained on.
        rec = json.loads((ws / "datasets" / "keys" / "records.jsonl").read_text().splitlines()[0])
        out = client.predict("keys", rec["id"], "run_a", 24, api_name="/compare")
        assert out["sides"][0]["title"] == f"base · {demo_dir}" and out["sides"][1]["title"] == "run · run_a"
        client.predict(["run_a"], api_name="/stop_serving")
        with pytest.raises(openai.NotFoundError):
            _ask(s.url, "run_a")
        assert requests.get(s.url + "/api/v1/health", timeout=10).json()["tasks"]["keys"]["run"] is None
        # Only runs of this studio's workspace can be served.
        outside = tmp_path / "elsewhere" / "run_x"
        shutil.copytree(ws / "runs" / "run_a", outside)
        with pytest.raises(Exception, match="not a run of this studio"):
            client.predict([str(outside)], api_name="/serve_runs")


def test_app_serve_flag(demo_dir, trained_run, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    import app as studio_app

    ws = tmp_path / "ws"
    monkeypatch.setenv("TRINITY_WORKSPACE", str(ws))  # create_server points core at the workspace
    trained_run(TARGET_A, seed=1, into=ws / "runs" / "run_a")
    cfg = studio_app.settings(studio_app.parse_args(["--workspace", str(ws), "--serve", "run_a"]), env={})
    server, _blocks, _state = studio_app.create_server(cfg)
    with TestClient(server) as c:
        health = c.get("/api/v1/health").json()
    assert health["tasks"]["keys"]["run"] == "run_a"
    with pytest.raises(SystemExit, match="--serve: Run 'nope' was not found"):
        studio_app.create_server(studio_app.settings(studio_app.parse_args(["--workspace", str(ws), "--serve", "nope"]),
                                                     env={}))
