"""Real clients against `python app.py` (free port, temp workspace): gradio_client calls the
studio's named endpoints (check_sql, compare) and requests posts to the REST API on the same server."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
gradio_client = pytest.importorskip("gradio_client")
requests = pytest.importorskip("requests")


@pytest.fixture(scope="module")
def studio(tmp_path_factory, start_studio):
    with start_studio(tmp_path_factory.mktemp("client") / "workspace", {"OMP_NUM_THREADS": "1"}) as s:
        yield {"url": s.url, "ws": s.ws}


@pytest.fixture(scope="module")
def client(studio):
    return gradio_client.Client(studio["url"] + "/", verbose=False)


def test_named_endpoints_are_listed(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/check_sql", "/compare"} <= set(named)
    assert not [n for n in named if n.startswith(("/lambda", "/on_", "/tick"))], named  # the UI's own events


def test_check_sql_reports_line_and_tables(client):
    bad = client.predict("CREATE TABLE a (id INT PRIMARY KEY);\nCREATE TABLE b (id INT,, a_id INT);",
                         api_name="/check_sql")
    assert bad["ok"] is False and any(e.get("line") == 2 for e in bad["errors"])
    good = client.predict("CREATE TABLE a (id INT PRIMARY KEY);\n"
                          "CREATE TABLE b (id INT PRIMARY KEY, a_id INT REFERENCES a(id));", api_name="/check_sql")
    assert good["ok"] is True and [t["name"] for t in good["data"]["tables"]] == ["a", "b"]


def test_compare_answers_with_the_phone_app_json(client, studio):
    from core.api import KeysAnalysis

    rec = json.loads((studio["ws"] / "datasets" / "keys" / "records.jsonl").read_text().splitlines()[0])
    out = client.predict("keys", rec["id"], "", 24, api_name="/compare")
    assert out["record"] == rec["id"] and out["task"] == "keys" and out["label"].startswith("KEYWAY:")
    side = out["sides"][0]
    # the untrained base's answer does not parse: not sure of any valid answer (issue 27 item 11)
    assert side["title"] == "base · demo" and side["confidence"] == 0.0
    assert set(side["app_json"]) == set(KeysAnalysis.model_fields) and side["app_json"]["raw"] == side["text"]
    with pytest.raises(Exception, match="not a dataset name"):
        client.predict("../etc", rec["id"], "", 24, api_name="/compare")


def test_rest_api_on_the_same_server_answers_as_compare_does(studio, client):
    """The server has no run: both the REST API and Compare answer with the untrained demo base, whose
    greedy text is not a key reading. The API says so, and its JSON is Compare's to the letter."""
    from core.tasks import get_task

    ds = studio["ws"] / "datasets" / "keys"
    rec = json.loads((ds / "records.jsonl").read_text().splitlines()[0])
    img = ds / rec["image"]
    r = requests.post(studio["url"] + "/api/v1/keys/analyze", files={"image": ("key.png", img.read_bytes(),
                                                                               "image/png")}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {"success", "keyway", "bitting", "brand", "confidence", "estimatedAnnualProduction",
            "manufacturingComplexity", "marketPenetration", "timeInMarket"} <= set(body)
    assert body["success"] is False and body["error"].startswith("The model's answer did not parse")
    assert body["keyway"] is None and body["raw"] and body["confidence"] == 0.0
    side = client.predict("keys", rec["id"], "", get_task("keys").generation["max_new_tokens"], api_name="/compare")["sides"][0]
    assert side["title"] == "base · demo" and side["app_json"] == body
    assert requests.post(studio["url"] + "/api/v1/keys/analyze", timeout=30).status_code in (400, 422)
    bad = requests.post(studio["url"] + "/api/v1/keys/analyze", files={"image": ("x.png", b"not an image")}, timeout=30)
    assert bad.status_code == 400 and bad.json()["success"] is False
