"""Evaluation of a tiny run: both files written, scores checked by hand against the predictions."""
from __future__ import annotations

import io
import json
import re

import pytest
import torch

from core.__main__ import main
from core.dataset import Dataset
from core.evaluate import compliance_band, evaluate_run, load_results
from core.infer import Engine
from test_infer import TARGET_A, demo_dir, key_image  # noqa: F401  (demo_dir is a fixture)

torch.set_num_threads(1)

LABELS = {  # record id -> label; the run memorised TARGET_A (SC1 / 1,2,5,3,7 / Schlage)
    "same": {"keyway": "SC1", "bitting": [1, 2, 5, 3, 7], "brand": "Schlage"},
    "two_cuts_off": {"keyway": "SC1", "bitting": [1, 2, 4, 3, 9], "brand": "Schlage"},
    "other_key": {"keyway": "KW1", "bitting": [3, 3, 1, 6, 2], "brand": "Kwikset"},
}


def png(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def make_dataset(path, task="keys", labels=LABELS, extra_train=True):
    ds = Dataset.create(path, task)
    for i, fields in enumerate(labels.values()):
        rec, _ = ds.add_image(png(key_image(30 + 40 * i)), fields=fields)
        ds.save_record({**rec, "split": "val"})
    if extra_train:  # records outside the split, and unlabeled ones, are not scored
        rec, _ = ds.add_image(png(key_image(250)), fields=LABELS["same"])
        ds.save_record({**rec, "split": "train"})
        rec, _ = ds.add_image(png(key_image(240)))
        ds.save_record({**rec, "split": "val"})
    return ds


@pytest.fixture
def keys_run(trained_run, workspace):
    ds = make_dataset(workspace / "datasets" / "keys_ds")
    run = trained_run(TARGET_A, seed=1, into=workspace / "runs" / "run1", dataset=str(ds.path))
    return run, ds


def hand_scores(prediction: str, label: dict) -> dict:
    """The keys metrics computed by hand from the answer text (independent of the task's parser)."""
    lines = dict(re.findall(r"^(KEYWAY|BITTING|BRAND):\s*(.+)$", prediction, re.M))
    bits = [int(x) for x in lines.get("BITTING", "").split(",") if x.strip().isdigit()]
    truth = label["bitting"]
    n = max(len(bits), len(truth))
    return {"keyway_acc": float(lines.get("KEYWAY") == label["keyway"]),
            "brand_acc": float(lines.get("BRAND") == label["brand"]),
            "bitting_exact": float(bits == truth),
            "bitting_position_acc": sum(a == b for a, b in zip(bits, truth)) / n,
            "format_compliance": len(lines) / 3}


def test_eval_writes_rows_and_summary_matching_a_hand_check(keys_run):
    run, ds = keys_run
    by_image = {r["image"]: r for r in ds.records(split="val")}
    summary = evaluate_run(run, split="val", base=True, batch_size=2, max_new_tokens=30)
    rows_path, summary_path = run / "eval" / "val.jsonl", run / "eval" / "val.summary.json"
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    assert json.loads(summary_path.read_text()) == summary
    assert len(rows) == 3 and summary["n"] == 3  # the unlabeled val record and the train record are skipped
    labels = {r["id"]: r["fields"] for r in by_image.values() if r.get("status") != "unlabeled"}
    for row in rows:
        assert set(row) >= {"id", "prediction", "parsed", "fields", "scores", "confidence", "base"}
        assert 0.0 < row["confidence"] <= 1.0
    # Hand check of two records: the memorised answer against a label that matches and one with two
    # cuts wrong (3 of 5 positions right).
    checked = 0
    for row in rows:
        label = labels[row["id"]]
        if label["bitting"] in ([1, 2, 5, 3, 7], [1, 2, 4, 3, 9]):
            assert row["prediction"] == TARGET_A
            assert row["scores"] == pytest.approx(hand_scores(row["prediction"], label))
            checked += 1
        if label["bitting"] == [1, 2, 4, 3, 9]:
            assert row["scores"]["bitting_position_acc"] == pytest.approx(0.6)
            assert row["scores"]["bitting_exact"] == 0.0
    assert checked == 2
    # Means over the three records; the "other_key" label shares nothing with the answer.
    assert summary["metrics"]["keyway_acc"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["metrics"]["bitting_position_acc"] == pytest.approx((1 + 0.6 + 0) / 3, abs=1e-4)
    assert summary["format_compliance"] == {"value": 1.0, "band": "excellent",
                                            "bands": {"excellent": 0.9, "good": 0.75}}
    # The untrained base model, side by side: its answers do not follow the format.
    assert summary["base"]["metrics"]["format_compliance"] < 0.75
    assert summary["base"]["format_compliance"]["band"] == "needs work"
    assert summary["base"]["confidence"] < summary["confidence"]
    assert load_results(run, "val") == (rows, summary)


def test_compliance_bands():
    assert [compliance_band(v) for v in (1.0, 0.9, 0.89, 0.75, 0.74, None)] == \
        ["excellent", "excellent", "good", "good", "needs work", None]


def test_cli_eval_json_limit_and_reused_engine(keys_run, capsys, demo_dir):
    run, _ = keys_run
    assert main(["eval", "--run", str(run), "--json", "--limit", "2", "--batch-size", "2",
                 "--max-new-tokens", "30"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 2 and "base" not in summary and summary["batch_size"] == 2
    assert len((run / "eval" / "val.jsonl").read_text().splitlines()) == 2
    # By run id under the workspace, on an engine the caller already loaded.
    engine = Engine(str(demo_dir), device="cpu")
    again = evaluate_run("run1", engine=engine, max_new_tokens=30)
    assert again["n"] == 3 and "run1" in engine.adapters


def test_cli_eval_errors(keys_run, capsys):
    run, _ = keys_run
    assert main(["eval", "--run", str(run), "--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "no labeled records in split 'test'" in err and "hint:" in err
    assert main(["eval", "--run", "no-such-run"]) == 2
    assert "Run 'no-such-run' was not found" in capsys.readouterr().err
    assert not (run / "eval" / "test.jsonl").exists()


def test_broken_image_fails_its_row_only(keys_run):
    run, ds = keys_run
    victim = next(r for r in ds.records(split="val") if r["fields"].get("bitting") == [3, 3, 1, 6, 2])
    ds.image_path(victim).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    summary = evaluate_run(run, batch_size=8, max_new_tokens=30)
    rows = [json.loads(line) for line in (run / "eval" / "val.jsonl").read_text().splitlines()]
    assert summary["n"] == 2 and summary["n_errors"] == 1
    bad = [r for r in rows if "error" in r]
    assert [r["id"] for r in bad] == [victim["id"]] and bad[0]["hint"]
    assert summary["metrics"]["keyway_acc"] == 1.0  # the two readable records both match SC1


def test_ui2sql_run_scores_with_the_sql_metrics(trained_run, workspace):
    sql = "CREATE TABLE users (\n  id INT PRIMARY KEY,\n  email TEXT NOT NULL\n);"
    ds = make_dataset(workspace / "datasets" / "sql_ds", task="ui2sql",
                      labels={"a": {"sql": sql}}, extra_train=False)
    run = trained_run(sql, task="ui2sql", seed=3, steps=120, into=workspace / "runs" / "sqlrun",
                      dataset=str(ds.path))
    summary = evaluate_run(run, max_new_tokens=40)
    assert summary["n"] == 1 and "format_compliance" not in summary  # the bands are the keys seed's
    assert all(v == pytest.approx(1.0) for v in summary["metrics"].values()), summary["metrics"]


def test_full_finetune_run_evaluates_without_an_adapter(demo_dir, keys_run):
    """A full fine-tune (RUN/model/) loads on its own; --base then loads the base as a second model."""
    import shutil

    _, ds = keys_run
    run = ds.path.parent.parent / "runs" / "full1"
    shutil.copytree(demo_dir, run / "model")
    (run / "config.json").write_text(json.dumps({"model_id": str(demo_dir), "task": "keys",
                                                 "method": "full", "dataset": str(ds.path)}))
    stages = []
    summary = evaluate_run(run, base=True, max_new_tokens=8, stage=stages.append)
    rows = load_results(run)[0]
    assert summary["n"] == 3 and "base" in summary
    # two models to load, each counted (the Evaluate tab's progress bar shows these)
    assert stages == ["loading the run's model 1/2", "loading the base model 2/2"]
    # The copied weights are the base weights: both sides must answer identically.
    assert all(r["prediction"] == r["base"]["prediction"] for r in rows)
