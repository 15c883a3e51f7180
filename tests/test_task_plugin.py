"""The plug-in claim: a task is the one extension point. A throwaway task written into a temporary
module (never in core/tasks/) is picked up through TRINITY_TASKS and works through the studio's
editor and endpoints, the CLI (import, validate, train), evaluate and the REST payload; a dataset
of a task that is not installed is reported clearly; and removing core/tasks/keys/ from a copy of
the repository leaves `python app.py` serving and `dataset validate` of the ui2sql demo working."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from bench.live_server import live_server
from core.dataset import Dataset
from core.errors import StudioError

ROOT = Path(__file__).resolve().parent.parent
MODULE = '''
import re
from core.tasks import BaseTask, Field, Issue, Parsed


class BarsTask(BaseTask):
    name = "bars"
    title = "Image -> how many bars, and their colour"
    fields = [Field("count", "number", "Bars", "How many bars", minimum=0, maximum=12, integer=True),
              Field("colour", "choice", "Colour", choices=["red", "blue"]),
              Field("tall", "boolean", "Tall", required=False)]
    headline_metric = "count_acc"
    generation = {"max_new_tokens": 12}
    system_prompt = "You count bars."

    def prompt(self, record):
        return "How many bars, which colour? Answer: COUNT <n> COLOUR <c>"

    def target(self, record):
        f = record.get("fields") or {}
        return f"COUNT {f['count']} COLOUR {f['colour']}"

    def validate(self, record):
        f = record.get("fields") or {}
        out = [] if isinstance(f.get("count"), int) and 0 <= f["count"] <= 12 else [
            Issue("error", "count must be a whole number 0-12.", "count")]
        if f.get("colour") not in ("red", "blue"):
            out.append(Issue("error", "colour must be red or blue.", "colour"))
        return out

    def parse(self, text):
        m = re.search(r"COUNT\\s+(\\d+)\\s+COLOUR\\s+(\\w+)", text or "")
        if not m:
            return Parsed(False, {}, [Issue("error", "No 'COUNT <n> COLOUR <c>' in the answer.")], 0.0)
        return Parsed(True, {"count": int(m.group(1)), "colour": m.group(2)})

    def score(self, parsed, record):
        f = record.get("fields") or {}
        return {"count_acc": float(parsed.data.get("count") == f.get("count")),
                "colour_acc": float(parsed.data.get("colour") == f.get("colour"))}


TASK = BarsTask()
'''


@pytest.fixture
def bars(tmp_path, monkeypatch):
    """The throwaway task module on sys.path and in TRINITY_TASKS (this process and subprocesses)."""
    import core.tasks as tasks

    mod_dir = tmp_path / "plugins"
    mod_dir.mkdir()
    (mod_dir / "bars_task.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(mod_dir))
    monkeypatch.setenv("TRINITY_TASKS", "bars_task")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(mod_dir), str(ROOT)]))
    tasks.reload()
    yield tasks.get_task("bars")
    monkeypatch.delenv("TRINITY_TASKS")
    sys.modules.pop("bars_task", None)
    tasks.reload()


def _images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        im = Image.new("RGB", (64, 64), "white")
        for b in range(i % 4 + 1):
            ImageDraw.Draw(im).rectangle([4 + 14 * b, 10, 12 + 14 * b, 60], fill=["red", "blue"][i % 2])
        ImageDraw.Draw(im).rectangle([2 + 8 * i, 1, 6 + 8 * i, 5], fill="black")  # every image distinct
        im.save(folder / f"b{i}.png")


def _cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_a_task_from_a_temporary_module_works_everywhere(bars, tmp_path, monkeypatch):
    from core.evaluate import evaluate_run
    from core.infer import Answer, generation_settings
    from core.modelcard import system_line
    from core.tasks import api_model, api_payload, all_tasks
    from studio import annotate_logic as L
    from studio import compare_logic as K
    from studio.app import build_app
    from studio.common import make_state

    assert "bars" in all_tasks() and generation_settings("bars")["max_new_tokens"] == 12
    assert system_line("bars") == "You count bars."

    # CLI: a new dataset of the task from a folder of images, then validate
    _images(tmp_path / "imgs", 6)
    ds_dir = tmp_path / "ws" / "datasets" / "bars"
    out = _cli("dataset", "import", str(tmp_path / "imgs"), "--into", str(ds_dir), "--task", "bars", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["imported"] == 6 and json.loads(out.stdout)["task"] == "bars"
    out = _cli("dataset", "validate", str(ds_dir), "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["records"] == 6

    # studio: the editor is built from the task's fields; labelling saves through the task
    ds = Dataset.open(ds_dir)
    plan = L.editor_plan(ds.task)
    assert [(f.name, k) for f, k in plan["slots"]] == [("count", "number"), ("colour", "choice"), ("tall", "boolean")]
    for i, rec in enumerate(ds.records()):
        fields = L.fields_from_editor(ds.task, {"count": float(i % 4 + 1), "colour": ["red", "blue"][i % 2],
                                                "tall": False})
        assert fields["count"] == i % 4 + 1 and isinstance(fields["count"], int)
        saved, msg = L.save(ds, rec["id"], fields, rec["updated"])
        assert msg == "Saved as labeled."
    check = L.live_check(ds.task, {"count": 3, "colour": "green"})
    assert "1 error" in check["status"] and "colour must be red or blue" in check["status"]
    state = make_state(tmp_path / "ws")
    blocks = build_app(state)  # the whole UI builds with the task installed
    assert blocks is not None

    # compare and the REST payload: the generic view and payload of any task
    ans = Answer(text="COUNT 3 COLOUR red", token_ids=[], token_probs=[], confidence=0.5,
                 parsed=ds.task.parse("COUNT 3 COLOUR red"))
    picture, payload = K.detail(ans, ds.task)
    assert "&quot;count&quot;: 3" in picture and payload["success"] and payload["data"] == {"count": 3,
                                                                                          "colour": "red"}
    assert api_model(ds.task).model_validate(payload).task == "bars"
    bad = api_payload(ds.task, ds.task.parse("three red bars"), {"text": "three red bars", "confidence": 0.2})
    assert bad["success"] is False and "COUNT <n> COLOUR <c>" in bad["error"]

    # CLI training and evaluate
    assert _cli("dataset", "split", str(ds_dir), "--val", "0.34", "--min-records", "2").returncode == 0
    run = tmp_path / "ws" / "runs" / "bars-run"
    monkeypatch.setenv("TRINITY_WORKSPACE", str(tmp_path / "ws"))
    out = _cli("train", "--dataset", str(ds_dir), "--set", "max_steps=2", "--set", "save_steps=2", "--out", str(run),
               "--no-progress")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "FutureWarning" not in out.stderr  # the CLI's output carries no transformers deprecation noise
    summary = evaluate_run(run, split="val", max_new_tokens=8)
    assert summary["task"] == "bars" and set(summary["metrics"]) == {"count_acc", "colour_acc"}
    assert summary["headline"]["metric"] == "count_acc"


def test_a_dataset_of_a_missing_task_is_reported_clearly(tmp_path):
    from studio.common import dataset_choices, make_state

    ws = tmp_path / "ws"
    d = ws / "datasets" / "receipts"
    d.mkdir(parents=True)
    (d / "dataset.json").write_text(json.dumps({"format": 1, "name": "receipts", "task": "receipt", "split": None}))
    (d / "records.jsonl").write_text("")
    with pytest.raises(StudioError, match=r"Dataset 'receipts' needs task 'receipt', which is not installed\."):
        Dataset.open(d)
    out = _cli("dataset", "validate", str(d), "--json")
    assert out.returncode == 2 and "needs task 'receipt', which is not installed" in json.loads(out.stdout)["error"]
    labels = [label for label, _ in dataset_choices(make_state(ws))]
    assert any("receipts" in x and "needs task 'receipt'" in x for x in labels)


def test_removing_the_keys_task_leaves_the_studio_and_the_cli_working(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", "test-artifacts", "__pycache__", "workspace",
                                                              "tests", ".venv", "*.log"))
    shutil.rmtree(copy / "core" / "tasks" / "keys")
    env = {k: v for k, v in os.environ.items() if k not in ("TRINITY_TASKS", "PYTHONPATH")}
    out = subprocess.run([sys.executable, "-m", "core", "dataset", "validate", "assets/demo/ui2sql"], cwd=copy,
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Dataset" in out.stdout and "ui2sql" in out.stdout
    ws = tmp_path / "ws"
    with live_server(["app.py", "--workspace", str(ws)], {"TRINITY_TASKS": None, "PYTHONPATH": None,
                     "GRADIO_ANALYTICS_ENABLED": "False"}, log=tmp_path / "server.log", cwd=copy) as s:
        page = urllib.request.urlopen(s.url + "/", timeout=5).read().decode()
        assert "gradio" in page.lower(), (tmp_path / "server.log").read_text()[-3000:]
        assert sorted(p.name for p in (ws / "datasets").iterdir()) == ["ui2sql"]  # the keys demo is not seeded
        health = json.loads(urllib.request.urlopen(s.url + "/api/v1/health", timeout=10).read())
        assert health["success"]
