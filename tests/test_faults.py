"""Faults: a full disk while saving, a training job killed with SIGKILL, a training job that runs
out of memory. Each must end in a clear message, an intact file and a run that can go on.
(Kill -9 of a process saving annotations in a loop is in test_dataset.py.)"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.dataset import Dataset
from core.errors import StudioError
from core.fsutil import append_jsonl

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "assets" / "demo" / "keys"
CORPUS = ROOT / "tests" / "corpus"
SQL = "CREATE TABLE users (\n  id INT PRIMARY KEY,\n  email TEXT NOT NULL\n);"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


def _labeled(path: Path) -> tuple[Dataset, dict]:
    ds = Dataset.create(path, "ui2sql")
    rec, _ = ds.add_image(CORPUS / "images" / "cmyk.jpg")
    return ds, ds.set_fields(rec["id"], {"sql": SQL})


# ---- disk full -------------------------------------------------------------------------------
def test_disk_full_while_saving_injected(tmp_path, monkeypatch):
    ds, rec = _labeled(tmp_path / "ds")
    before = (ds.path / "records.jsonl").read_bytes()
    real_fsync = os.fsync

    def full(fd):
        if os.path.isdir(f"/proc/self/fd/{fd}"):  # directories: as before
            return real_fsync(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StudioError) as e:
        ds.set_fields(rec["id"], {"sql": SQL.replace("users", "people")})
    assert e.value.message == "Could not save records.jsonl: the disk is full."
    assert "previous records.jsonl is intact" in e.value.hint and "Free some disk space" in e.value.hint
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC  # old `except OSError` still works
    with pytest.raises(StudioError, match="Could not save .*: the disk is full"):
        ds.add_image(CORPUS / "images" / "grey16.png")
    with pytest.raises(StudioError, match="Could not save events.jsonl: the disk is full"):
        append_jsonl(tmp_path / "events.jsonl", {"type": "log", "step": 1})
    monkeypatch.undo()
    assert (ds.path / "records.jsonl").read_bytes() == before
    assert _leftovers(tmp_path) == [] and (tmp_path / "events.jsonl").read_bytes() == b""
    assert len(list((ds.path / "images").iterdir())) == 1
    assert ds.set_fields(rec["id"], {"sql": SQL.replace("users", "people")})["fields"]["sql"].count("people") == 1


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 512 KB tmpfs (needs root and CAP_SYS_ADMIN; skipped where mounting is not allowed)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def _fill(folder: Path) -> Path:
    """Writes zeros until the disk refuses; returns the filler so the test can free it again."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as e:
            assert e.errno == errno.ENOSPC
    return filler


def test_disk_full_on_a_real_tiny_filesystem(tiny_disk):
    ds, rec = _labeled(tiny_disk / "ds")
    before = (ds.path / "records.jsonl").read_bytes()
    append_jsonl(tiny_disk / "events.jsonl", {"type": "log", "step": 1})
    filler = _fill(tiny_disk)
    with pytest.raises(StudioError) as e:
        ds.set_fields(rec["id"], {"sql": SQL + "\n-- " + "x" * 20_000})
    assert e.value.message == "Could not save records.jsonl: the disk is full."
    with pytest.raises(StudioError, match="Could not save .*png: the disk is full"):
        ds.add_image(CORPUS / "images" / "exif_rotated.jpg")
    with pytest.raises(StudioError, match="Could not save events.jsonl: the disk is full"):
        append_jsonl(tiny_disk / "events.jsonl", {"type": "log", "step": 2, "pad": "y" * 8192})
    # nothing half-written: the old records, one image, one complete event line, no temp files
    assert (ds.path / "records.jsonl").read_bytes() == before
    assert ds.get(rec["id"])["fields"]["sql"] == SQL
    assert len(list((ds.path / "images").iterdir())) == 1
    assert [json.loads(x)["step"] for x in (tiny_disk / "events.jsonl").read_text().splitlines()] == [1]
    assert _leftovers(tiny_disk) == []
    filler.unlink()  # space again: the same save now works
    assert ds.set_fields(rec["id"], {"domain": "crm"})["fields"]["domain"] == "crm"


# ---- training jobs ---------------------------------------------------------------------------
@pytest.fixture
def one_thread():
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _small_run(run_id: str, **overrides):
    from core.training.config import default_config
    from core.training.hardware import CPU_ONLY
    from core.training.runs import create_run

    settings = dict(dataset=str(KEYS), task="keys", method="lora", learning_rate=5e-3, batch_size=2,
                    logging_steps=1, eval_split="", warmup_ratio=0)
    settings.update(overrides)
    cfg = default_config("demo", CPU_ONLY, **settings)
    return cfg, create_run(cfg, run_id=run_id)


def _job_env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


def test_kill_9_mid_training_then_resume_continues_from_the_checkpoint(workspace, one_thread, monkeypatch,
                                                                       wait_for_event):
    from core.training.events import last_of, read_events
    from core.training.job import last_checkpoint, run_job
    from core.training.runs import list_runs, run_status, start_run_subprocess

    for k, v in _job_env().items():
        monkeypatch.setenv(k, v)
    _cfg, run = _small_run("killed", max_steps=40, save_steps=3, save_total_limit=20)
    proc = start_run_subprocess(run)
    try:
        wait_for_event(run, proc, lambda e: e["type"] == "checkpoint" and e["step"] >= 6, 300)
        assert proc.poll() is None, (run / "log.txt").read_text()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    before = read_events(run)
    assert last_of(before, "end") is None  # no chance to say goodbye
    killed_at = max(e["step"] for e in before if e["type"] == "log")
    assert killed_at < 40  # enough steps that a quiet machine cannot finish before the kill
    st = run_status(run)
    assert st["status"] == "interrupted" and st["step"] == killed_at
    assert [r["status"] for r in list_runs()] == ["interrupted"]
    ckpt = last_checkpoint(run)
    ckpt_step = int(ckpt.name.split("-")[-1])
    assert 6 <= ckpt_step <= killed_at

    assert run_job(run, resume=True, progress=False) == 0
    events = read_events(run)
    start = last_of(events, "start")
    assert start["resumed_from_step"] == ckpt_step
    resumed = [e for e in events[events.index(start):] if e["type"] == "log"]
    assert [e["step"] for e in resumed] == list(range(ckpt_step + 1, 41))  # not from step 1
    # the schedule continues too: a step logged before the kill and again after has the same lr
    lr_before = {e["step"]: e["lr"] for e in before if e["type"] == "log"}
    for e in resumed:
        if e["step"] in lr_before:
            assert e["lr"] == pytest.approx(lr_before[e["step"]])
    assert resumed[0]["lr"] < lr_before[1]
    end = last_of(events, "end")
    assert end["status"] == "completed" and end["step"] == 40
    assert run_status(run)["status"] == "completed" and run_status(run)["has_adapter"]


OOM_SCRIPT = r"""
import sys, torch, trl
real = trl.SFTTrainer.training_step
calls = []
def out_of_memory(self, *args, **kwargs):
    calls.append(1)
    if len(calls) > 2:  # what a too-large config does on a real GPU, two steps in
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.11 GiB total capacity)")
    return real(self, *args, **kwargs)
trl.SFTTrainer.training_step = out_of_memory
from core.__main__ import main
sys.exit(main(["train", "--run", sys.argv[1], "--no-progress"]))
"""


def test_out_of_memory_in_training_fails_with_the_planners_advice(workspace):
    from core.training.events import last_of, oom_hint, read_events
    from core.training.runs import run_status

    cfg, run = _small_run("oom", max_steps=6, save_steps=100, batch_size=4)
    proc = subprocess.run([sys.executable, "-c", OOM_SCRIPT, str(run)], cwd=ROOT, env=_job_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stderr[-3000:]
    end = last_of(read_events(run), "end")
    assert end["status"] == "failed" and end["error"].startswith("OutOfMemoryError: CUDA out of memory")
    assert end["hint"] == oom_hint(cfg) and "batch_size 4 -> 1" in end["hint"]
    st = run_status(run)
    assert st["status"] == "failed" and st["hint"] == end["hint"] and st["step"] == 2
