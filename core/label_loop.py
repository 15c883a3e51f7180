"""Closing the labeling loop: once enough of a run's suggestions have been reviewed, the studio
offers to train again (a new run with the same settings, or a resume of the run when it stopped
early), and shows how the share of suggestions accepted unchanged moves from run to run."""
from __future__ import annotations

import os
from pathlib import Path

from core import suggestions as sug
from core.errors import StudioError

RETRAIN_AFTER = 20  # reviewed suggestions of the last run before the studio offers to train again


def _runs_on(ds) -> list[dict]:
    from core.training.runs import list_runs

    here = Path(ds.path).resolve()
    out = []
    for r in list_runs():
        try:
            if r.get("dataset") and Path(r["dataset"]).resolve() == here:
                out.append(r)
        except OSError:
            continue
    return out


def offer(ds, every: int = RETRAIN_AFTER) -> dict | None:
    """What to offer after the person reviewed `every` suggestions of the last run that pre-labeled
    ds: {"run", "run_dir", "reviewed", "resume": whether the run can go on from a checkpoint,
    "settings": a few of its settings in words}; None when there is nothing to offer (too few
    reviewed, the base model suggested, or a newer run of this dataset exists already)."""
    from core.infer import resolve_run_dir
    from core.training.config import TrainConfig
    from core.training.job import last_checkpoint
    from core.training.runs import run_status

    records = ds.records()
    runs = [r for r in sug.runs_with_suggestions(records) if not r.startswith("base:")]
    if not runs:
        return None
    last = runs[-1]
    try:
        run_dir = resolve_run_dir(last)
    except StudioError:
        return None  # the run folder is gone
    reviewed = sum(1 for r in records if r.get("status") in sug.LABELED
                   and (r.get(sug.PROVENANCE) or {}).get("run") == last)
    if reviewed < every:
        return None
    made = (run_dir / "config.json").stat().st_mtime
    if any(os.stat(Path(r["path"]) / "config.json").st_mtime > made for r in _runs_on(ds) if r["run_id"] != last):
        return None  # trained again already
    st = run_status(run_dir)
    cfg = TrainConfig.load(run_dir / "config.json")
    resumable = st["status"] in ("stopped", "interrupted", "failed") and last_checkpoint(run_dir) is not None
    settings = f"{cfg.method}, {cfg.max_steps if cfg.max_steps > 0 else cfg.num_epochs} " \
               f"{'steps' if cfg.max_steps > 0 else 'epochs'} x {cfg.batch_size}, lr {cfg.learning_rate:g}"
    return {"run": last, "run_dir": str(run_dir), "reviewed": reviewed, "resume": resumable,
            "status": st["status"], "settings": settings}


def train_again(ds, run: str, how: str = "new", workspace_dir=None) -> Path:
    """Starts training from the last run: "new" = a new run with the same settings on the dataset as
    it is now (every label, the new ones too); "resume" = the run goes on from its last checkpoint
    (only a run that stopped early). Returns the run folder that trains."""
    from core.infer import resolve_run_dir
    from core.training.config import TrainConfig
    from core.training.job import last_checkpoint
    from core.training.runs import create_run, run_status, start_run_subprocess

    run_dir = resolve_run_dir(run)
    if how == "resume":
        st = run_status(run_dir)
        if st["status"] == "running":
            raise StudioError(f"Run '{run_dir.name}' is training already.", "Follow it in the Train tab.")
        if st["status"] == "completed" or last_checkpoint(run_dir) is None:
            raise StudioError(f"Run '{run_dir.name}' has nothing left to resume ({st['status']}"
                              + (", no checkpoint" if last_checkpoint(run_dir) is None else "") + ").",
                              "Train a new run with the same settings: it learns from every label, the new ones too.")
        start_run_subprocess(run_dir, resume=True)
        return run_dir
    if how != "new":
        raise StudioError(f"Unknown way to train again: '{how}'.", "Use 'new' or 'resume'.")
    cfg = TrainConfig.load(run_dir / "config.json")
    cfg.dataset = str(Path(ds.path).resolve())
    new = create_run(cfg, workspace_dir)  # checks the config and the labeled split first
    start_run_subprocess(new, resume=False, gpus=cfg.gpus)
    return new


def rate_series(ds) -> dict:
    """How the accept-unchanged rate moved run by run (runs in the order they first suggested):
    {"runs": [...], "unchanged": [rate...], "fields": {field: [rate...]}, "reviewed": [n...]}."""
    st = sug.stats(ds.task, ds.records())
    runs = list(st["by_run"])
    return {"runs": runs, "reviewed": [st["by_run"][r]["settled"] for r in runs],
            "unchanged": [st["by_run"][r]["unchanged_rate"] for r in runs],
            "fields": {f.name: [st["by_run"][r]["fields"][f.name]["rate"] for r in runs] for f in ds.task.fields}}
