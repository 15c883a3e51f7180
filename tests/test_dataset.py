"""core/dataset.py: records on disk, duplicates, conflicting edits, concurrent writers, split, report."""
from __future__ import annotations

import io
import json
import multiprocessing as mp

import numpy as np
import pytest
from PIL import Image

from core.dataset import Dataset, format_report
from core.errors import StudioError

SQL = "CREATE TABLE users (id INT PRIMARY KEY, name TEXT NOT NULL);"


def png(seed: int, w=48, h=32) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def ds(tmp_path):
    return Dataset.create(tmp_path / "shop", "ui2sql")


def test_create_open_and_refusals(tmp_path, ds):
    again = Dataset.open(ds.path)
    assert again.task.name == "ui2sql" and again.meta["task"] == "ui2sql" and again.name == "shop"
    with pytest.raises(StudioError, match="not a dataset"):
        Dataset.open(tmp_path)
    with pytest.raises(StudioError, match="already a dataset"):
        Dataset.create(ds.path, "ui2sql")
    with pytest.raises(StudioError, match="Unknown task"):
        Dataset.create(tmp_path / "x", "receipts")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("user file")
    with pytest.raises(StudioError, match="not an empty folder"):
        Dataset.create(tmp_path / "busy", "keys")
    assert (tmp_path / "busy" / "mine.txt").read_text() == "user file"


def test_add_image_content_addressed_and_duplicates_collapse(ds):
    rec, dup = ds.add_image(png(1))
    assert not dup and rec["status"] == "unlabeled" and rec["split"] is None
    assert rec["image"] == f"images/{rec['id']}.png" and ds.image_path(rec).is_file()
    again, dup = ds.add_image(png(1), fields={"sql": SQL})
    assert dup and again["id"] == rec["id"] and len(ds.records()) == 1
    assert ds.get(rec["id"])["status"] == "labeled"  # an unlabeled duplicate takes the labels
    third, dup = ds.add_image(png(1), fields={"sql": "CREATE TABLE other (id INT PRIMARY KEY);"})
    assert dup and ds.get(rec["id"])["fields"]["sql"] == SQL  # labeled: existing labels win
    assert ds.load_image(rec).size == (48, 32)


def test_unknown_keys_and_bad_lines_are_preserved(ds):
    rec, _ = ds.add_image(png(2), fields={"sql": SQL}, extra={"camera": "pixel", "id": "ignored"})
    assert rec["camera"] == "pixel" and rec["id"] != "ignored"
    with open(ds.path / "records.jsonl", "a") as f:
        f.write("{not json\n")
    ds.set_fields(rec["id"], {"domain": "crm"})
    text = (ds.path / "records.jsonl").read_text()
    assert "{not json" in text and '"camera": "pixel"' in text
    assert ds.get(rec["id"])["fields"] == {"sql": SQL, "domain": "crm"}
    report = ds.validate()
    assert any(i["code"] == "bad_line" for i in report["issues"])


def test_statuses_follow_labels(ds):
    rec, _ = ds.add_image(png(3))
    r = ds.set_fields(rec["id"], {"sql": SQL})
    assert r["status"] == "labeled"
    r = ds.set_fields(rec["id"], {}, status="reviewed")
    assert r["status"] == "reviewed"
    r = ds.set_fields(rec["id"], {"sql": SQL.replace("users", "people")})
    assert r["status"] == "labeled"  # an edit undoes the review
    r = ds.set_fields(rec["id"], {"sql": ""})
    assert r["status"] == "unlabeled"
    with pytest.raises(StudioError, match="Unknown status"):
        ds.set_fields(rec["id"], {}, status="done")


def test_conflicting_edit_is_refused(ds):
    rec, _ = ds.add_image(png(4))
    alice = ds.get(rec["id"])
    bob = ds.get(rec["id"])
    saved = ds.set_fields(rec["id"], {"sql": SQL}, expected_updated=alice["updated"])
    assert saved["updated"] > alice["updated"]
    with pytest.raises(StudioError, match="changed by someone else"):
        ds.set_fields(rec["id"], {"sql": "CREATE TABLE b (id INT PRIMARY KEY);"}, expected_updated=bob["updated"])
    bob["fields"] = {"sql": "x"}
    with pytest.raises(StudioError, match="changed by someone else"):
        ds.save_record(bob, expected_updated=bob["updated"])
    assert ds.get(rec["id"])["fields"]["sql"] == SQL  # Alice's edit survived
    ds.delete(rec["id"])
    with pytest.raises(StudioError, match="deleted"):
        ds.save_record(saved, expected_updated=saved["updated"])


def test_save_record_keeps_keys_and_stays_inside(ds):
    rec, _ = ds.add_image(png(5), extra={"note": "keep me"})
    slim = {k: v for k, v in rec.items() if k != "note"}
    slim["fields"] = {"sql": SQL}
    out = ds.save_record(slim)
    assert out["note"] == "keep me" and out["status"] == "labeled"
    for bad in ("../../etc/passwd", "/etc/passwd"):
        with pytest.raises(StudioError):
            ds.save_record({**rec, "image": bad})
    with pytest.raises(StudioError, match="outside the dataset"):
        ds.image_path({"id": "x", "image": "images/../../x.png"})


def test_delete_removes_unreferenced_image(ds):
    rec, _ = ds.add_image(png(6))
    path = ds.image_path(rec)
    ds.delete(rec["id"])
    assert not path.exists() and ds.records() == []
    with pytest.raises(StudioError):
        ds.get(rec["id"])


def _writer(path: str, start: int, n: int) -> None:
    d = Dataset.open(path)
    for i in range(start, start + n):
        d.save_record({"id": f"r{i}", "image": "images/shared.png", "fields": {"sql": SQL}})


def test_concurrent_writers_lose_nothing(ds):
    (ds.path / "images" / "shared.png").write_bytes(png(7))
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(ds.path), k * 100, 25)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    ids = {r["id"] for r in ds.records()}
    assert ids == {f"r{k * 100 + i}" for k in range(3) for i in range(25)}
    for line in (ds.path / "records.jsonl").read_text().splitlines():
        json.loads(line)


def _labeled(ds, n):
    for i in range(n):
        ds.add_image(png(100 + i, 16, 16), fields={"sql": SQL})


def test_split_seed_rule(ds):
    _labeled(ds, 20)
    assert ds.split() == {"train": 20, "val": 0, "test": 0, "none": 0}  # 20 is not "more than 20"
    _labeled_more = [ds.add_image(png(500 + i, 16, 16), fields={"sql": SQL}) for i in range(10)]
    ds.add_image(png(999, 16, 16))  # unlabeled: not split
    counts = ds.split()
    assert counts == {"train": 27, "val": 3, "test": 0, "none": 1}
    first = {r["id"]: r["split"] for r in ds.records()}
    ds.split()
    assert {r["id"]: r["split"] for r in ds.records()} == first  # deterministic
    ds.split(seed=7)
    assert {r["id"]: r["split"] for r in ds.records()} != first
    assert ds.split(val_fraction=0.2, test_fraction=0.1) == {"train": 21, "val": 6, "test": 3, "none": 1}
    assert ds.meta["split"]["seed"] == 42 and len(ds.records(split="test")) == 3
    assert ds.counts()["status"] == {"unlabeled": 1, "suggested": 0, "labeled": 30, "reviewed": 0}
    with pytest.raises(StudioError):
        ds.split(val_fraction=1.5)
    assert len(_labeled_more) == 10


def test_validation_report(ds):
    good, _ = ds.add_image(png(10), fields={"sql": SQL})
    nolabel, _ = ds.add_image(png(11))
    badsql, _ = ds.add_image(png(12), fields={"sql": "CREATE TABLE t (id INT,, x TEXT)"})
    near = Image.open(io.BytesIO(png(10))).resize((47, 31))  # same picture, resampled
    buf = io.BytesIO()
    near.save(buf, "JPEG", quality=95)
    neardup, _ = ds.add_image(buf.getvalue(), fields={"sql": SQL})
    corrupt, _ = ds.add_image(png(13), fields={"sql": SQL})
    ds.image_path(corrupt).write_bytes(png(13)[:100])
    missing, _ = ds.add_image(png(14), fields={"sql": SQL})
    ds.image_path(missing).unlink()
    ds.save_record({"id": "copy", "image": good["image"], "fields": {"sql": SQL}})
    (ds.path / "images" / "big.png").write_bytes(_bomb())
    ds.save_record({"id": "bomb", "image": "images/big.png", "fields": {"sql": SQL}})

    report = ds.validate()
    by = {(i["record"], i["code"]) for i in report["issues"]}
    assert (nolabel["id"], "missing_labels") in by
    assert (badsql["id"], "label") in by
    assert (neardup["id"], "near_duplicate") in by
    assert (corrupt["id"], "corrupt_image") in by
    assert (missing["id"], "missing_image") in by
    assert ("copy", "exact_duplicate") in by
    assert ("bomb", "too_large") in by
    assert (good["id"], "near_duplicate") not in by
    assert report["records"] == 8 and report["errors"] >= 4
    assert len(ds.records()) == 8  # the report removes nothing
    text = format_report(report)
    assert "8 records" in text and "decompression bomb" in text and corrupt["id"] in text


def _bomb() -> bytes:
    buf = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buf, "PNG")  # 81 Mpx: over the default 64 Mpx limit
    return buf.getvalue()


def test_duplicate_ids_reported_not_dropped(ds):
    rec, _ = ds.add_image(png(20), fields={"sql": SQL})
    with open(ds.path / "records.jsonl", "a") as f:
        f.write(json.dumps({**rec, "fields": {"sql": 42}}) + "\n")
    report = ds.validate()
    assert sum(1 for i in report["issues"] if i["code"] == "duplicate_id") == 2
    ds.set_fields(rec["id"], {"domain": "x"})  # edits the first; the second line stays
    assert len(ds.records()) == 2


KILL_LOOP = """
import sys
from core.dataset import Dataset
ds = Dataset.open(sys.argv[1])
rid = ds.records()[0]["id"]
i = 0
while True:
    ds.set_fields(rid, {"sql": f"CREATE TABLE t{i} (id INT PRIMARY KEY);"})
    print(i, flush=True)
    i += 1
"""


def test_kill_9_while_saving_keeps_every_returned_save(ds):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    ds.add_image(png(21))
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, str(ds.path)], stdout=subprocess.PIPE,
                            text=True, cwd=root, env={**os.environ, "PYTHONPATH": str(root)})
    last, deadline = -1, time.time() + 60
    while last < 30 and time.time() < deadline:
        last = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert last >= 30
    rest = proc.stdout.read().split()
    returned = int(rest[-1]) if rest else last
    sql = Dataset.open(ds.path).records()[0]["fields"]["sql"]  # the file parses
    saved = int(sql.split()[2][1:])
    assert saved >= returned  # every save that returned is on disk (maybe one more)
