"""Model-assisted labeling (core/prelabel.py, core/suggestions.py): a finished run answers the
unlabeled records; its answers are suggestions, never labels, until a person accepts them; a pass
stops, resumes and never overwrites a human label; bad input gets one clear message."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.dataset import Dataset
from core.errors import StudioError
from core.workspace import ASSETS

TARGET_A = "KEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage"
TARGET_B = "KEYWAY: KW1\nBITTING: 3,3,1,6,2\nBRAND: Kwikset"
FIELDS_A = {"keyway": "SC1", "bitting": [1, 2, 5, 3, 7], "brand": "Schlage"}
DEMO = ASSETS / "demo" / "keys"


def keys_dataset(path: Path, labeled: int, unlabeled: int) -> Dataset:
    """A keys dataset from the shipped demo's images: the first `labeled` keep their labels, the
    next `unlabeled` come without any."""
    rows = [json.loads(x) for x in (DEMO / "records.jsonl").read_text().splitlines() if x.strip()]
    ds = Dataset.create(path, "keys")
    items = []
    for i, r in enumerate(rows[:labeled + unlabeled]):
        rel, _ = ds.store_image((DEMO / r["image"]).read_bytes())
        items.append((rel, r["fields"] if i < labeled else None, None, None))
    ds.add_stored(items)
    return ds


@pytest.fixture
def run_a(trained_run, workspace):
    return trained_run(TARGET_A, seed=1, into=workspace / "runs" / "run_a")


def test_a_pass_suggests_and_suggestions_never_enter_training_or_evaluation(run_a, workspace, trained_run):
    from core import prelabel
    from core.evaluate import evaluate_run
    from core.training.config import TrainConfig
    from core.training.data import load_splits

    ds = keys_dataset(workspace / "datasets" / "k", labeled=3, unlabeled=5)
    state = prelabel.run_pass(ds, str(run_a), batch_size=4)
    assert state["status"] == "completed" and state["total"] == state["done"] == state["written"] == 5
    suggested = ds.records(status="suggested")
    assert len(suggested) == 5
    for r in suggested:
        assert r["fields"] == {} and r["split"] is None  # the label is untouched: still empty
        s = r["suggestions"]["run_a"]
        assert s["fields"] == FIELDS_A  # the run's answer, parsed by the task
        assert set(s["confidence"]) == set(FIELDS_A) and all(0 < p <= 1 for p in s["confidence"].values())
        assert r["suggested_by"] == "run_a"
    assert ds.counts()["status"]["suggested"] == 5

    cfg = TrainConfig(dataset=str(ds.path), task="keys", eval_split="")
    train, _, _ = load_splits(cfg)
    assert {r["id"] for r in train.records} == {r["id"] for r in ds.records(status="labeled")}
    run_on_ds = trained_run(TARGET_A, seed=1, into=workspace / "runs" / "run_ds", dataset=str(ds.path))
    assert evaluate_run(run_on_ds, split="train", batch_size=8)["n"] == 3

    # accepted, it is a label like any other: it trains and is evaluated
    from core.suggestions import editor_fields
    rid = suggested[0]["id"]
    fields, shown, conf = editor_fields(ds.task, ds.get(rid))
    assert shown == "run_a" and fields == FIELDS_A and set(conf) == set(FIELDS_A)
    rec = ds.set_fields(rid, fields, expected_updated=ds.get(rid)["updated"], shown_suggestion=shown)
    assert rec["status"] == "labeled" and rec["split"] == "train" and "suggestions" not in rec
    assert rec["prelabel"]["run"] == "run_a" and rec["prelabel"]["edited"] == []
    train, _, _ = load_splits(cfg)
    assert rid in {r["id"] for r in train.records}
    assert evaluate_run(run_on_ds, split="train", batch_size=8)["n"] == 4


def test_accepting_and_correcting_is_counted_per_field(run_a, workspace):
    from core import prelabel
    from core.dataset_report import format_report, validate_dataset
    from core.suggestions import editor_fields

    ds = keys_dataset(workspace / "datasets" / "k", labeled=2, unlabeled=3)
    prelabel.run_pass(ds, str(run_a))
    a, b, c = (r["id"] for r in ds.records(status="suggested"))
    for rid, change in ((a, {}), (b, {"bitting": [2, 2, 5, 3, 7]})):
        fields, shown, _ = editor_fields(ds.task, ds.get(rid))
        ds.set_fields(rid, {**fields, **change}, shown_suggestion=shown)
    assert ds.get(a)["prelabel"]["edited"] == [] and ds.get(b)["prelabel"]["edited"] == ["bitting"]
    assert ds.get(b)["prelabel"]["accepted"] == ["keyway", "brand"]
    # a label saved without having seen the suggestion is the person's own: not counted for the run
    ds.set_fields(c, {"keyway": "KW1", "bitting": [3, 3, 1, 6, 2], "brand": "Kwikset"})
    assert "prelabel" not in ds.get(c) and "suggestions" not in ds.get(c)

    rep = validate_dataset(ds)
    st = rep["suggestions"]["by_run"]["run_a"]
    assert st["settled"] == 2 and st["unchanged"] == 1
    assert st["fields"]["keyway"] == {"suggested": 2, "accepted": 2, "rate": 1.0}
    assert st["fields"]["bitting"] == {"suggested": 2, "accepted": 1, "rate": 0.5}
    assert "run_a: 1/2 accepted unchanged (50%); per field: keyway 2/2 (100%), bitting 1/2 (50%)" in format_report(rep)
    # a later edit of a settled record keeps "edited" true to what is stored
    ds.set_fields(a, {"brand": "Other"})
    assert ds.get(a)["prelabel"]["edited"] == ["brand"]


def test_a_stopped_pass_goes_on_where_it_stopped_and_never_overwrites_a_human_label(run_a, workspace):
    from core import prelabel

    ds = keys_dataset(workspace / "datasets" / "k", labeled=2, unlabeled=6)
    pending = [r["id"] for r in ds.records(status="unlabeled")]
    human = {"keyway": "KW1", "bitting": [3, 3, 1, 6, 2], "brand": "Kwikset"}

    def after_batch(state):  # the person saves a record the model has not reached, then asks to stop
        if state["done"] == 2:
            ds.set_fields(pending[4], human)
            prelabel.request_stop(ds)

    state = prelabel.run_pass(ds, str(run_a), batch_size=2, progress=after_batch)
    assert state["status"] == "stopped" and state["done"] == 2 and state["total"] == 6
    first = {r["id"]: r["suggestions"]["run_a"]["at"] for r in ds.records(status="suggested")}
    assert len(first) == 2

    with pytest.raises(StudioError, match="no unlabeled records"):  # (a check of the message, below)
        prelabel.select(keys_dataset(workspace / "datasets" / "full", labeled=2, unlabeled=0), "x")

    state = prelabel.run_pass(ds, str(run_a), batch_size=2)
    assert state["status"] == "completed" and state["resumed_at"] == 2
    assert state["total"] == 5 and state["done"] == 5  # the record labeled meanwhile left the selection
    rec = ds.get(pending[4])
    assert rec["fields"] == human and rec["status"] == "labeled" and "suggestions" not in rec
    again = {r["id"]: r["suggestions"]["run_a"]["at"] for r in ds.records(status="suggested")}
    assert len(again) == 5 and all(again[k] == v for k, v in first.items())  # not answered twice


def test_a_record_labeled_while_its_batch_is_answered_keeps_the_label(run_a, workspace, monkeypatch):
    """The race with a user's save: the label lands after the batch was read, before it is written."""
    from core import prelabel
    from core.infer import Engine

    ds = keys_dataset(workspace / "datasets" / "k", labeled=2, unlabeled=3)
    victim = ds.records(status="unlabeled")[1]["id"]
    human = {"keyway": "KW1", "bitting": [3, 3, 1, 6, 2], "brand": "Kwikset"}
    real = Engine.generate

    def generate_then_user_saves(self, *a, **kw):
        out = real(self, *a, **kw)
        Dataset.open(ds.path).set_fields(victim, human)  # another handle, as the UI's save is
        return out

    monkeypatch.setattr(Engine, "generate", generate_then_user_saves)
    state = prelabel.run_pass(ds, str(run_a), batch_size=8)
    assert state["labeled_meanwhile"] == 1 and state["written"] == 2
    assert ds.get(victim)["fields"] == human and "suggestions" not in ds.get(victim)


def test_bad_input_gets_one_clear_message_each(run_a, workspace):
    from core import prelabel
    from core.training.config import TrainConfig
    from core.training.runs import create_run, start_run_subprocess, stop_run

    ds = keys_dataset(workspace / "datasets" / "k", labeled=3, unlabeled=2)
    other = workspace / "runs" / "sql_run"
    shutil.copytree(run_a, other)
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "task": "ui2sql"}))
    with pytest.raises(StudioError, match="answers the 'ui2sql' task, but dataset k is a 'keys' dataset"):
        prelabel.source_for(ds, str(other))

    full = keys_dataset(workspace / "datasets" / "full", labeled=3, unlabeled=0)
    with pytest.raises(StudioError, match="Dataset full has no unlabeled records to pre-label"):
        prelabel.start(full, str(run_a))

    with pytest.raises(StudioError, match="Run 'nope' was not found"):
        prelabel.source_for(ds, "nope")

    untrained = create_run(TrainConfig(dataset=str(ds.path), task="keys", max_steps=100_000, eval_split="",
                                       gradient_checkpointing=False, save_steps=100_000),
                           run_dir=workspace / "runs" / "busy")
    with pytest.raises(StudioError, match="has no trained weights yet"):
        prelabel.source_for(ds, str(untrained))
    proc = start_run_subprocess(untrained)
    try:
        with pytest.raises(StudioError, match="Run 'busy' is still training"):
            prelabel.start(ds, str(untrained))
    finally:
        stop_run(untrained)
        os.killpg(proc.pid, signal.SIGKILL)  # the job runs in its own session
        proc.wait(30)
    assert prelabel.status(ds)["status"] == "none"  # nothing was started by any of them


def test_background_pass_and_two_runs_order_the_queue(run_a, trained_run, workspace):
    from core import prelabel
    from core.suggestions import order, record_confidence, runs_with_suggestions

    ds = keys_dataset(workspace / "datasets" / "k", labeled=2, unlabeled=4)
    run_b = trained_run(TARGET_B, seed=2, into=workspace / "runs" / "run_b")
    assert prelabel.start(ds, str(run_a))["status"] in ("loading", "running", "completed")
    with pytest.raises(StudioError, match="already running"):
        prelabel.start(ds, str(run_b))
    assert prelabel.wait(ds, 300)["status"] == "completed"
    with pytest.raises(StudioError, match="no suggested records|No pre-label pass is running"):
        prelabel.request_stop(ds)
    # a second opinion on the suggested records only
    state = prelabel.run_pass(ds, str(run_b), which="suggested")
    assert state["total"] == 4 and state["written"] == 4
    recs = ds.records()
    assert runs_with_suggestions(recs) == ["run_a", "run_b"]
    # run_b answered last, so its suggestion is shown; every field differs between the two runs
    assert all(r["suggested_by"] == "run_b" for r in recs if r["status"] == "suggested")
    by_dis = order(recs, "disagreement", ("run_a", "run_b"))
    assert [r["status"] for r in by_dis[:4]] == ["suggested"] * 4
    by_conf = order(recs, "confidence")
    confs = [record_confidence(r) for r in by_conf[:4]]
    assert confs == sorted(confs) and all(c is not None for c in confs)
    assert [r["status"] for r in by_conf[4:]] == ["labeled", "labeled"]


def test_cli_prelabel(run_a, workspace, capsys):
    from core.__main__ import main

    keys_dataset(workspace / "datasets" / "k", labeled=2, unlabeled=3)
    assert main(["dataset", "prelabel", "k", "--run", str(run_a), "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    assert state["status"] == "completed" and state["written"] == 3
    assert main(["dataset", "prelabel", "k", "--run", str(run_a)]) == 0  # nothing left: says so, exit 0
    out = capsys.readouterr().out
    assert "answered 0 records (going on after 3 answered before); 3 of 3 unlabeled records have its answer" in out
    assert main(["dataset", "prelabel", "k", "--run", "base", "--json"]) == 0  # the base model answers too
    state = json.loads(capsys.readouterr().out)
    assert state["run"] == "base:demo" and state["done"] == 3
    assert main(["dataset", "prelabel", "k", "--run", "missing-run"]) == 2
    assert "Run 'missing-run' was not found" in capsys.readouterr().err


def test_kill9_of_a_pass_leaves_valid_records_and_the_rerun_goes_on(run_a, workspace, tmp_path):
    """The CLI pass killed with SIGKILL between batches: records.jsonl stays valid JSON lines, every
    human label is kept, the state reads "interrupted", and the rerun answers only the rest."""
    import time

    ds = keys_dataset(workspace / "datasets" / "k", labeled=3, unlabeled=12)
    labels = {r["id"]: r["fields"] for r in ds.records(status="labeled")}
    env = {**os.environ, "TRINITY_WORKSPACE": str(workspace), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "core", "dataset", "prelabel", str(ds.path), "--run", str(run_a),
                             "--batch-size", "2", "--json"], env=env, cwd=str(Path(__file__).resolve().parents[1]),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    from core import prelabel
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and prelabel.status(ds).get("done", 0) < 4:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    lines = (ds.path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 15 and all(isinstance(json.loads(x), dict) for x in lines)
    st = prelabel.status(ds)
    assert st["status"] == "interrupted" and 4 <= st["done"] < 12, st
    answered = {r["id"]: r["suggestions"]["run_a"]["at"] for r in ds.records(status="suggested")}
    assert len(answered) >= 4
    state = prelabel.run_pass(ds, str(run_a), batch_size=4)
    assert state["status"] == "completed" and state["resumed_at"] == len(answered) and state["done"] == 12
    assert all(ds.get(k)["suggestions"]["run_a"]["at"] == v for k, v in answered.items())
    assert {r["id"]: r["fields"] for r in ds.records(status="labeled")} == labels


def test_after_enough_reviews_the_studio_offers_to_train_again(run_a, workspace):

    from core import label_loop, prelabel
    from core.suggestions import editor_fields

    ds = keys_dataset(workspace / "datasets" / "k", labeled=3, unlabeled=3)
    prelabel.run_pass(ds, str(run_a))
    assert label_loop.offer(ds, every=2) is None  # nothing reviewed yet
    a, b, _ = (r["id"] for r in ds.records(status="suggested"))
    for rid, change in ((a, {}), (b, {"brand": "Other"})):
        fields, shown, _ = editor_fields(ds.task, ds.get(rid))
        ds.set_fields(rid, {**fields, **change}, shown_suggestion=shown)
    got = label_loop.offer(ds, every=2)
    assert got["run"] == "run_a" and got["reviewed"] == 2 and got["resume"] is False
    assert label_loop.rate_series(ds) == {"runs": ["run_a"], "reviewed": [2], "unchanged": [0.5],
                                          "fields": {"keyway": [1.0], "bitting": [1.0], "brand": [0.5]}}
    with pytest.raises(StudioError, match="Run 'run_a' has nothing left to resume"):
        label_loop.train_again(ds, str(run_a), "resume")
    new = label_loop.train_again(ds, str(run_a), "new")
    try:
        old_cfg, new_cfg = (json.loads((p / "config.json").read_text()) for p in (run_a, new))
        assert new != run_a and new_cfg["dataset"] == str(ds.path)
        assert {k: v for k, v in new_cfg.items() if k != "dataset"} == {k: v for k, v in old_cfg.items() if k != "dataset"}
        assert label_loop.offer(ds, every=2) is None  # trained again already
    finally:
        os.killpg(int((new / "pid").read_text()), signal.SIGKILL)


SQL = "CREATE TABLE users (\n  id INT PRIMARY KEY,\n  email TEXT NOT NULL\n);"  # test_api's run: one training


def _images_only(path: Path, task: str, n: int, config: dict | None = None) -> Dataset:
    rows = [json.loads(x) for x in (DEMO / "records.jsonl").read_text().splitlines() if x.strip()][:n]
    ds = Dataset.create(path, task, config=config)
    ds.add_stored([(ds.store_image((DEMO / r["image"]).read_bytes())[0], None, None, None) for r in rows])
    return ds


def test_every_task_goes_through_the_protocol(trained_run, workspace):
    """The same pass on a ui2sql dataset (its run writes the SQL field) and on a json-schema dataset
    answered by the base model (which writes no JSON: every answer parses into no field, said so)."""
    from core import prelabel
    from core.suggestions import editor_fields

    run = trained_run(SQL, task="ui2sql", seed=3, steps=120, into=workspace / "runs" / "sql_run")
    ds = _images_only(workspace / "datasets" / "pages", "ui2sql", 2)
    state = prelabel.run_pass(ds, str(run))
    assert state["written"] == 2 and state["no_fields"] == 0
    rec = ds.records(status="suggested")[0]
    fields, shown, conf = editor_fields(ds.task, rec)
    assert shown == "sql_run" and fields["sql"] == ds.task.fields_from_parsed(ds.task.parse(SQL))["sql"]
    assert ds.set_fields(rec["id"], fields, shown_suggestion=shown)["prelabel"]["edited"] == []
    with pytest.raises(StudioError, match="answers the 'ui2sql' task, but dataset k is a 'keys' dataset"):
        prelabel.source_for(keys_dataset(workspace / "datasets" / "k", 1, 1), str(run))

    schema = {"type": "object", "properties": {"count": {"type": "integer", "minimum": 0}}, "required": ["count"]}
    js = _images_only(workspace / "datasets" / "meters", "json", 2, {"schema": schema})
    state = prelabel.run_pass(js, "base")
    assert state["run"] == "base:demo" and state["done"] == 2 and state["no_fields"] == 2
    assert js.counts()["status"]["unlabeled"] == 2  # an answer with no field is no suggestion
    assert all(r["suggestions"]["base:demo"]["text"] for r in js.records())  # what it said is kept
