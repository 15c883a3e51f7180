"""POST /api/v1/datasets/{name}/prelabel on the real studio process (`python app.py --auth --api-key`):
behind the same auth as every API route; the pass runs in the background and GET follows it; bad
input gets one message each; kill -9 of the studio mid-pass loses no human label, leaves
records.jsonl valid, and the pass started again goes on where it stopped."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest

from core.dataset import Dataset
from test_prelabel import TARGET_A, keys_dataset

requests = pytest.importorskip("requests")
USER, PASSWORD, KEY = "ada", "pw-Kq83-secret", "tsk-APIKEY-9f8e7d6c5b4a"
BEARER = {"Authorization": f"Bearer {KEY}"}


def _poll(url, name, until, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st = requests.get(f"{url}/api/v1/datasets/{name}/prelabel", headers=BEARER, timeout=10).json()
        if until(st["prelabel"]):
            return st
        time.sleep(0.1)
    raise AssertionError(f"the pass did not get there in {timeout} s: {st}")


def test_prelabel_over_the_api_and_kill9_mid_pass(trained_run, tmp_path, start_studio):
    ws = tmp_path / "workspace"
    trained_run(TARGET_A, seed=1, into=ws / "runs" / "run_a")
    ds = keys_dataset(ws / "datasets" / "k", labeled=3, unlabeled=30)
    keys_dataset(ws / "datasets" / "full", labeled=2, unlabeled=0)
    url_of = lambda s, name="k": f"{s.url}/api/v1/datasets/{name}/prelabel"  # noqa: E731
    env = {"OMP_NUM_THREADS": "1"}
    args = ["app.py", "--workspace", str(ws), "--auth", f"{USER}:{PASSWORD}", "--api-key", KEY]
    from bench.live_server import live_server

    acked: dict[str, dict] = {}
    with live_server(args, {"TRINITY_WORKSPACE": str(ws), **env}, log=tmp_path / "studio.log",
                     auth=(USER, PASSWORD)) as s:
        r = requests.post(url_of(s), json={"run": "run_a"}, timeout=10)
        assert r.status_code == 401 and "Authentication required" in r.json()["error"]
        assert requests.get(url_of(s), auth=(USER, "wrong"), timeout=10).status_code == 401
        # one clear message per bad input, nothing started
        for body, name, status, text in (
                ({"run": "nope"}, "k", 404, "No run named 'nope' in the workspace"),
                ({"run": "run_a"}, "full", 400, "Dataset full has no unlabeled records to pre-label"),
                ({"run": "run_a"}, "ghost", 404, "No dataset named 'ghost'"),
                ({"run": "../run_a"}, "k", 400, "is not a run name"),
                ({"run": "run_a", "split": "all"}, "k", 422, "Invalid request: split")):
            r = requests.post(url_of(s, name), json=body, headers=BEARER, timeout=10)
            assert r.status_code == status and text in r.json()["error"], (body, r.text)
        assert requests.get(url_of(s), headers=BEARER, timeout=10).json()["prelabel"]["status"] == "none"

        r = requests.post(url_of(s), json={"run": "run_a", "batch_size": 2}, auth=(USER, PASSWORD), timeout=10)
        assert r.status_code == 202, r.text
        assert r.json()["prelabel"]["status"] in ("loading", "running")
        again = requests.post(url_of(s), json={"run": "run_a"}, headers=BEARER, timeout=10)
        assert again.status_code == 409 and "already running" in again.json()["error"]
        # a person labels records while the model works (another process, as a second studio user
        # or the CLI would); every save that returned is acknowledged
        pending = [r["id"] for r in ds.records(status="unlabeled")][::-1][:6]
        human = {"keyway": "KW1", "bitting": [3, 3, 1, 6, 2], "brand": "Kwikset"}

        def label():
            for rid in pending:
                acked[rid] = Dataset.open(ds.path).set_fields(rid, human)["fields"]
                time.sleep(0.2)
        saver = threading.Thread(target=label)
        saver.start()
        st = _poll(s.url, "k", lambda p: p.get("done", 0) >= 8)
        os.kill(s.proc.pid, signal.SIGKILL)  # mid-pass, while the person's saves go on
        s.proc.wait(10)
        saver.join()
    assert st["prelabel"]["status"] == "running"
    lines = (ds.path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 33 and all(isinstance(json.loads(x), dict) for x in lines)
    done_before = {r["id"] for r in ds.records() if "run_a" in (r.get("suggestions") or {})}
    assert 8 <= len(done_before) < 30 - len(acked), st  # it had not finished
    assert all(ds.get(rid)["fields"] == f and ds.get(rid)["status"] == "labeled" for rid, f in acked.items())

    with live_server(args, {"TRINITY_WORKSPACE": str(ws), **env}, log=tmp_path / "studio2.log",
                     auth=(USER, PASSWORD)) as s:
        assert requests.get(url_of(s), headers=BEARER, timeout=10).json()["prelabel"]["status"] == "interrupted"
        assert requests.post(url_of(s), json={"run": "run_a"}, headers=BEARER, timeout=10).status_code == 202
        final = _poll(s.url, "k", lambda p: p["status"] not in ("loading", "running"))
    p = final["prelabel"]
    assert p["status"] == "completed" and p["resumed_at"] == len(done_before), p
    assert p["total"] == p["done"] == 30 - len(acked)
    assert final["suggestions"]["pending"] == 30 - len(acked)
    assert all(ds.get(rid)["fields"] == f and "suggestions" not in ds.get(rid) for rid, f in acked.items())
    for line in (tmp_path / "studio.log", tmp_path / "studio2.log"):
        assert KEY not in line.read_text() and PASSWORD not in line.read_text()
