"""Model-assisted labeling on the shipped keys demo (issue 26): label 40 records, train the demo
recipe, pre-label the rest, and see how many suggestions a person accepts unchanged, per field.

Everything goes through the product: the 40 labels and the unlabeled rest are a Dataset
(core/dataset.py) split by its own rule; the run is TrainConfig's demo recipe trained by
core.training.job.run_job; core/prelabel.py answers every unlabeled record; then a simulated person
opens each suggested record as the Annotate editor does (core.suggestions.editor_fields), keeps
each field that matches the demo's true label, corrects the others, and saves with the suggestion
it was shown (Dataset.set_fields). The accept-unchanged rates are read from the dataset report
(core/dataset_report.py), as the studio shows them.

The run's held-out exact match (every field right) is core/evaluate.py on records it never trained
on: its own val split (4 records with 40 labels), and the demo's 26 val records (none of the 40;
the run folder is copied with its config pointed at a copy of the demo holding every label).

    python3 bench/prelabel_keys.py                      # 40 labels, the demo recipe's 300 steps
    python3 bench/prelabel_keys.py --steps 100 --unlabeled 60

The last printed line is `<field>_rate=... unchanged_rate=... heldout_exact=... ok=<bool>`: ok when
every field's rate is at least the held-out exact match minus 0.1.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
DEMO = REPO / "assets" / "demo" / "keys"
MARGIN = 0.1


def _rows() -> list[dict]:
    return [json.loads(x) for x in (DEMO / "records.jsonl").read_text().splitlines() if x.strip()]


def build(path: Path, labeled: int, unlabeled: int | None) -> tuple[object, dict]:
    """The dataset a user has after labeling `labeled` records of the demo (the first of its train
    split), the rest imported without labels. Returns (dataset, the demo's true fields by image)."""
    from core.dataset import Dataset

    rows = _rows()
    chosen = [r for r in rows if r.get("split") == "train"][:labeled]
    rest = [r for r in rows if r not in chosen][:unlabeled]
    ds = Dataset.create(path, "keys", name="keys-prelabel")
    truth, items = {}, []
    for r, keep in [(r, True) for r in chosen] + [(r, False) for r in rest]:
        rel, _ = ds.store_image((DEMO / r["image"]).read_bytes())
        truth[rel] = r["fields"]
        items.append((rel, r["fields"] if keep else None, None, None))
    ds.add_stored(items)
    ds.split(seed=42)  # the dataset's own rule: with 40 labels, 10% (4) go to val
    return ds, truth


def heldout_exact(run_dir: Path, dataset: Path, split: str, task) -> tuple[float, int, dict]:
    """(share of records with every field right, n, the summary's metrics) of core/evaluate.py."""
    from core.dataset import Dataset
    from core.evaluate import evaluate_run, load_results
    from core.suggestions import same_value

    summary = evaluate_run(run_dir, split=split, batch_size=16)
    rows, _ = load_results(run_dir, split)
    labels = {r["id"]: r["fields"] for r in Dataset.open(dataset).records(split=split)}
    exact = [all(same_value(row["fields"].get(f.name), labels[row["id"]].get(f.name)) for f in task.fields)
             for row in rows if "error" not in row]
    return (sum(exact) / len(exact) if exact else 0.0), len(exact), summary["metrics"]


def review(ds, truth: dict) -> dict:
    """The simulated person: every suggested record opened as the editor opens it, each field kept
    when it is right and corrected when it is not, then saved with the suggestion shown. Returns
    the confidence the model gave the kept and the corrected fields."""
    from core.suggestions import LOW_CONFIDENCE, editor_fields, order, same_value

    calib = {"kept": [], "corrected": []}
    needed = []  # in the queue's "lowest confidence first" order: did the record need a correction?
    for rec in order(ds.records(status="suggested"), "confidence"):
        fields, shown, conf = editor_fields(ds.task, rec)
        right = truth[rec["image"]]
        needed.append(not all(same_value(fields.get(f.name), right.get(f.name)) for f in ds.task.fields))
        for name, value in list(fields.items()):
            if name in conf:
                calib["kept" if same_value(value, right.get(name)) else "corrected"].append(conf[name])
        fixed = {f.name: right[f.name] for f in ds.task.fields if f.name in right}
        ds.set_fields(rec["id"], fixed, expected_updated=rec["updated"], shown_suggestion=shown)
    for rec in ds.records(status="unlabeled"):  # answers that parsed into no field: labeled by hand
        ds.set_fields(rec["id"], truth[rec["image"]], expected_updated=rec["updated"])
    low = lambda xs: sum(1 for c in xs if c < LOW_CONFIDENCE)  # noqa: E731
    quarter = needed[:max(1, len(needed) // 4)]
    return {"needing_correction": round(sum(needed) / max(1, len(needed)), 4),
            "needing_correction_first_quarter": round(sum(quarter) / len(quarter), 4),"kept": len(calib["kept"]), "corrected": len(calib["corrected"]),
            "corrected_marked_low": low(calib["corrected"]), "kept_marked_low": low(calib["kept"]),
            "mean_conf_kept": round(sum(calib["kept"]) / max(1, len(calib["kept"])), 4),
            "mean_conf_corrected": round(sum(calib["corrected"]) / max(1, len(calib["corrected"])), 4),
            "low_threshold": LOW_CONFIDENCE}


def run(workdir: Path, labeled: int = 40, steps: int | None = None, unlabeled: int | None = None,
        batch_size: int = 16, threads: int = 2, seed: int = 3407, log=print) -> dict:
    """The whole loop once in workdir (empty or absent), in its own workspace."""
    before = os.environ.get("TRINITY_WORKSPACE")
    os.environ["TRINITY_WORKSPACE"] = str(workdir / "workspace")
    try:
        return _run(workdir, labeled, steps, unlabeled, batch_size, threads, seed, log)
    finally:
        if before is None:
            os.environ.pop("TRINITY_WORKSPACE", None)
        else:
            os.environ["TRINITY_WORKSPACE"] = before


def _run(workdir, labeled, steps, unlabeled, batch_size, threads, seed, log) -> dict:
    import torch

    torch.set_num_threads(threads)
    from core import prelabel
    from core.dataset import Dataset
    from core.dataset_report import validate_dataset
    from core.training.config import default_config
    from core.training.job import run_job
    from core.training.runs import create_run

    t0 = time.perf_counter()
    ds, truth = build(workdir / "dataset", labeled, unlabeled)
    counts = ds.counts()
    log(f"dataset: {counts['status']} split {counts['split']}")
    overrides = {"eval_split": "", "seed": seed, **({"max_steps": steps} if steps else {})}
    cfg = default_config("demo", task="keys", dataset=str(ds.path), **overrides)  # the demo recipe
    run_dir = create_run(cfg, run_dir=workdir / "workspace" / "runs" / "run1")
    t1 = time.perf_counter()
    if run_job(run_dir, progress=False) != 0:
        raise SystemExit(f"training failed: see {run_dir / 'events.jsonl'}")
    t_train = time.perf_counter() - t1
    log(f"trained {cfg.max_steps} steps x {cfg.batch_size} in {t_train:.1f}s")

    own_exact, own_n, _ = heldout_exact(run_dir, ds.path, "val", ds.task)
    twin = workdir / "demo-all-labels"
    shutil.copytree(DEMO, twin, ignore=shutil.ignore_patterns(".lock"))
    twin_run = workdir / "workspace" / "runs" / "run1-on-demo"
    shutil.copytree(run_dir, twin_run, ignore=shutil.ignore_patterns("eval"))
    cfg_file = twin_run / "config.json"
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), "dataset": str(twin)}, indent=2))
    demo_exact, demo_n, demo_metrics = heldout_exact(twin_run, twin, "val", Dataset.open(twin).task)
    log(f"held-out exact match: {own_exact:.3f} on its own val ({own_n}), {demo_exact:.3f} on the demo's val "
        f"({demo_n}; {json.dumps(demo_metrics)})")

    t2 = time.perf_counter()
    state = prelabel.run_pass(ds, str(run_dir), batch_size=batch_size)
    t_pre = time.perf_counter() - t2
    log(f"pre-labeled {state['done']} records in {t_pre:.1f}s ({state['done'] / max(t_pre, 1e-9):.1f}/s): "
        f"{state['written']} suggestions, {state['no_fields']} parsed into no field")
    calib = review(ds, truth)
    st = validate_dataset(ds)["suggestions"]["by_run"][run_dir.name]
    rates = {n: f["rate"] for n, f in st["fields"].items()}
    ok = all(r is not None and r >= demo_exact - MARGIN for r in rates.values())
    return {"labeled": labeled, "prelabeled": state["done"], "suggested": state["written"],
            "no_fields": state["no_fields"], "rates": rates, "fields": st["fields"],
            "unchanged_rate": st["unchanged_rate"], "heldout_exact": round(demo_exact, 4), "heldout_n": demo_n,
            "own_val_exact": round(own_exact, 4), "own_val_n": own_n, "demo_val_metrics": demo_metrics,
            "calibration": calib, "ok": ok, "steps": cfg.max_steps, "batch_size": cfg.batch_size,
            "seconds": {"train": round(t_train, 1), "prelabel": round(t_pre, 1),
                        "total": round(time.perf_counter() - t0, 1)}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--labeled", type=int, default=40, help="records labeled by hand before training")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the demo recipe's)")
    p.add_argument("--unlabeled", type=int, default=None, help="pre-label only this many (default: the rest)")
    p.add_argument("--batch", type=int, default=16, help="pre-label batch size")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--workdir", help="empty folder to work in (default: a temporary one, deleted after)")
    p.add_argument("--json", help="also write the result here")
    a = p.parse_args(argv)
    kw = dict(labeled=a.labeled, steps=a.steps, unlabeled=a.unlabeled, batch_size=a.batch, threads=a.threads,
              seed=a.seed)
    if a.workdir:
        result = run(Path(a.workdir), **kw)
    else:
        with tempfile.TemporaryDirectory(prefix="prelabel-keys-") as tmp:
            result = run(Path(tmp), **kw)
    print(json.dumps(result))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    for name, f in result["fields"].items():
        print(f"{name}: {f['accepted']}/{f['suggested']} accepted unchanged ({f['rate']})")
    print(" ".join(f"{k}_rate={v:.4f}" for k, v in result["rates"].items() if v is not None)
          + f" unchanged_rate={result['unchanged_rate']:.4f} heldout_exact={result['heldout_exact']:.4f}"
          f" ok={result['ok']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
