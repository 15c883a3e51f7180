"""Scores a run (and, for comparison, its base model) on a dataset split with the task's metrics.

Writes RUN/eval/<split>.jsonl (one row per record) and RUN/eval/<split>.summary.json (one figure per
metric), both atomically: a crash mid-evaluation leaves the previous results, never half of them.

How Task.score's per-record values combine: per metric, over the records whose score() has that key
(a record without it is skipped, as is a record whose image failed), by the metric's declared
aggregate (Task.metrics: mean unless it says median, min, max or sum). Each metric's direction
(higher or lower is better) goes into the summary ("metric_info") and decides how its bands read:
floors for a higher-better metric (value >= floor), ceilings for a lower-better one (value <= ceiling).
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

from core import workspace
from core.errors import StudioError
from core.fsutil import atomic_write_json, atomic_write_text
from core.infer import Engine, generation_settings, read_run_config, resolve_run_dir, run_weights, same_model
from core.tasks.base import metric_spec

# Default bands of a summarised metric (best first); a task declares its own in Task.bands.
BANDS = (("excellent", 0.90), ("good", 0.75))


def compliance_band(value: float | None, bands=BANDS, higher_is_better: bool = True) -> str | None:
    """The first band (best first) the value reaches: at or above its floor, or, for a metric where
    lower is better, at or below its ceiling; "needs work" past them all."""
    if value is None:
        return None
    for name, bound in bands:
        if (value >= bound) if higher_is_better else (value <= bound):
            return name
    return "needs work"


def _banded(task, metrics: dict, rows: list[dict], key: str | None, with_bands: bool) -> dict:
    """Each metric the task bands (Task.bands), e.g. keys' format_compliance -> {"value", "band"}."""
    out = {}
    for metric, bands in (getattr(task, "bands", None) or {}).items():
        value = _compliance(metrics, rows, key) if metric == "format_compliance" else metrics.get(metric)
        out[metric] = {"value": value, "band": compliance_band(value, bands, metric_spec(task, metric).higher_is_better)}
        if with_bands:
            out[metric]["bands"] = {n: f for n, f in bands}
    return out


def metric_info(task, names) -> dict:
    """{metric: {"better": "higher" | "lower", "aggregate": "mean" | ...}} for the summary."""
    return {n: {"better": metric_spec(task, n).better, "aggregate": metric_spec(task, n).aggregate} for n in names}


def _aggregate(values: list[float], how: str) -> float:
    import statistics

    if how == "median":
        return statistics.median(values)
    if how in ("min", "max", "sum"):
        return {"min": min, "max": max, "sum": sum}[how](values)
    return sum(values) / len(values)


def resolve_dataset_dir(ref: str) -> Path:
    """A run's dataset reference: a path (absolute, or relative to the cwd / workspace) or a name
    under workspace/datasets."""
    if not ref:
        raise StudioError("The run's config.json names no dataset.", "Pass a dataset or re-create the run.")
    for cand in (Path(ref), workspace.datasets_dir() / ref, workspace.root() / ref):
        if (cand / "dataset.json").is_file():
            return cand.resolve()
    raise StudioError(f"The run's dataset '{ref}' was not found.",
                      f"Looked for it as a folder and under {workspace.datasets_dir()}.")


def eval_paths(run, split: str) -> tuple[Path, Path]:
    d = resolve_run_dir(run) / "eval"
    return d / f"{split}.jsonl", d / f"{split}.summary.json"


def load_results(run, split: str = "val") -> tuple[list[dict], dict] | None:
    """(rows, summary) of an earlier evaluation, or None when the split was not evaluated."""
    rows_path, summary_path = eval_paths(run, split)
    if not summary_path.is_file():
        return None
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in rows_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows, summary


def _side(answer, task, record) -> dict:
    parsed = answer.parsed if answer.parsed is not None else task.parse(answer.text)
    return {"prediction": answer.text, "parsed": parsed.to_dict(),
            "fields": task.fields_from_parsed(parsed),
            "scores": task.score(parsed, record), "confidence": answer.confidence,
            "field_confidence": answer.field_confidence}


def _means(rows: list[dict], key: str | None, task=None) -> tuple[dict, float | None]:
    """Each metric over the records that have it, by its aggregate (see the module doc), and the mean confidence."""
    sides = [(r[key] if key else r) for r in rows if "error" not in r]
    metrics: dict[str, float] = {}
    for name in dict.fromkeys(n for s in sides for n in s["scores"]):
        vals = [s["scores"][name] for s in sides if name in s["scores"]]
        metrics[name] = round(_aggregate(vals, metric_spec(task, name).aggregate), 4)
    confs = [s["confidence"] for s in sides]
    return metrics, (round(sum(confs) / len(confs), 4) if confs else None)


def _compliance(metrics: dict, rows: list[dict], key: str | None) -> float | None:
    if "format_compliance" in metrics:
        return metrics["format_compliance"]
    sides = [(r[key] if key else r) for r in rows if "error" not in r]
    vals = [s["parsed"]["compliance"] for s in sides]
    return round(sum(vals) / len(vals), 4) if vals else None


def evaluate_run(run, split: str = "val", base: bool = False, batch_size: int = 8,
                 limit: int | None = None, engine: Engine | None = None,
                 max_new_tokens: int | None = None, progress=None, device: str | None = None,
                 stage=None) -> dict:
    """Evaluates a run on a split; returns the summary (also written next to the rows).

    engine: reuse a loaded Engine on the run's base model (its adapter is added if missing).
    progress: optional callable(done, total) after each batch.
    stage: optional callable(text) before each model load, e.g. "loading the run's model 1/2".
    A full fine-tune (RUN/model/) has no adapter to switch off: with base=True the base model is
    loaded as a second model.
    """
    from core.dataset import Dataset

    run_dir = resolve_run_dir(run)
    cfg = read_run_config(run_dir)
    ds = Dataset.open(resolve_dataset_dir(cfg.get("dataset") or ""))
    task = ds.task  # configured from dataset.json (e.g. the json task's schema)
    if cfg.get("task") and cfg["task"] != task.name:
        raise StudioError(f"Run '{run_dir.name}' was trained for '{cfg['task']}', but its dataset {ds.name} is "
                          f"a {task.name} dataset.", "Evaluate the run on the dataset it was trained on.")
    if ds.task.name != task.name:
        raise StudioError(f"The run trains '{task.name}' but dataset {ds.name} is a '{ds.task.name}' dataset.",
                          "Point the run at a dataset of its task.")
    # a model's suggestion (status "suggested", core/suggestions.py) is not a label until accepted
    records = [r for r in ds.records(split=split) if r.get("status") != "suggested" and task.is_labeled(r)]
    if limit is not None:
        records = records[:max(0, int(limit))]
    if not records:
        raise StudioError(f"Dataset {ds.name} has no labeled records in split '{split}'.",
                          "Split the dataset (Datasets tab or `python -m core dataset split`) or pick "
                          "another split.")
    model, has_adapter = run_weights(run_dir)
    loads = 1 + int(bool(base) and not has_adapter)  # a full fine-tune's base is a second model
    say = stage or (lambda _text: None)
    if engine is None:
        say(f"loading the run's model 1/{loads}")
        engine = Engine(model, device=device)
    elif not same_model(engine.base_model_id, model):
        raise StudioError(f"The loaded model is '{engine.base_model_id}', the run needs '{model}'.",
                          "Load the run's base model.")
    name = engine.add_adapter(run_dir) if has_adapter else None
    if loads == 2:
        say("loading the base model 2/2")
    base_engine = engine if has_adapter else (Engine(cfg["model"], device=engine.device) if base else None)
    gen = {"max_new_tokens": max_new_tokens} if max_new_tokens else {}
    started = time.perf_counter()
    rows: list[dict] = []
    step = max(1, int(batch_size))
    for start in range(0, len(records), step):
        batch = records[start:start + step]
        images, good = [], []
        for r in batch:  # a broken image fails its own row, not the evaluation
            try:
                images.append(ds.load_image(r))
                good.append(r)
            except StudioError as e:
                rows.append({"id": r["id"], "error": e.message, "hint": e.hint})
        if good:
            prompts = [task.prompt(r) for r in good]
            answers = engine.generate(images, prompts, adapter=name, task=task, batch_size=step, **gen)
            base_answers = (base_engine.generate(images, prompts, adapter=None, task=task, batch_size=step, **gen)
                            if base else [None] * len(good))
            for r, a, b in zip(good, answers, base_answers):
                row = {"id": r["id"], **_side(a, task, r)}
                if b is not None:
                    row["base"] = _side(b, task, r)
                rows.append(row)
        if progress:
            progress(min(start + step, len(records)), len(records))
    order = {r["id"]: i for i, r in enumerate(records)}
    rows.sort(key=lambda row: order[row["id"]])

    metrics, conf = _means(rows, None, task)
    summary = {
        "run": run_dir.name, "model": cfg["model"], "task": task.name, "dataset": ds.name,
        "split": split, "n": sum(1 for r in rows if "error" not in r),
        "n_errors": sum(1 for r in rows if "error" in r), "metrics": metrics, "confidence": conf,
        "generation": generation_settings(task, **gen), "batch_size": step,
        "seconds": round(time.perf_counter() - started, 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    headline = getattr(task, "headline_metric", None)
    # every metric it has, bands or is headlined by, whether or not a record gave it this time
    summary["metric_info"] = metric_info(task, dict.fromkeys([*metrics, *(getattr(task, "bands", None) or {}),
                                                              *([headline] if headline else [])]))
    summary["headline"] = {"metric": headline, "value": metrics.get(headline),
                           "better": metric_spec(task, headline).better if headline else "higher"}
    summary.update(_banded(task, metrics, rows, None, with_bands=True))
    if base:
        b_metrics, b_conf = _means(rows, "base", task)
        summary["base"] = {"model": cfg["model"], "metrics": b_metrics, "confidence": b_conf,
                           **_banded(task, b_metrics, rows, "base", with_bands=False)}
    rows_path, summary_path = eval_paths(run_dir, split)
    atomic_write_text(rows_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write_json(summary_path, summary)
    return summary


def format_summary(summary: dict) -> str:
    """A plain-text table: metric, run, (base), and which way is better where lower is; the bands with
    their floors (>=) or, for a lower-better metric, ceilings (<=)."""
    has_base = "base" in summary
    info = summary.get("metric_info") or {}
    lower = lambda name: (info.get(name) or {}).get("better") == "lower"  # noqa: E731
    lines = [f"run {summary['run']} on {summary['dataset']}/{summary['split']}: n={summary['n']}"
             + (f", {summary['n_errors']} records failed" if summary.get("n_errors") else "")]
    head = f"{'metric':<24}{'run':>10}" + (f"{'base':>10}" if has_base else "")
    lines += [head, "-" * len(head)]
    names = list(summary["metrics"]) + ["confidence"]
    for name in names:
        val = summary["metrics"].get(name, summary.get("confidence") if name == "confidence" else None)
        row = f"{name:<24}{_fmt(val):>10}"
        if has_base:
            b = summary["base"]
            bval = b["metrics"].get(name, b.get("confidence") if name == "confidence" else None)
            row += f"{_fmt(bval):>10}"
        aggregate = (info.get(name) or {}).get("aggregate", "mean")
        notes = (["lower is better"] if lower(name) else []) + ([aggregate] if aggregate != "mean" else [])
        lines.append(row + (f"  ({', '.join(notes)})" if notes else ""))
    for metric, fc in summary.items():
        if isinstance(fc, dict) and "band" in fc and "bands" in fc:
            sign = "<=" if lower(metric) else ">="
            floors = ", ".join(f"{n} {sign} {_bound(f, metric, lower(metric))}" for n, f in fc["bands"].items())
            lines.append(f"{metric.replace('_', ' ')}: {_fmt(fc['value'])} ({fc['band']}; {floors})")
    return "\n".join(lines)


def _bound(value: float, metric: str, lower: bool) -> str:
    """A band's bound as people read it: a share as a percentage, an error as the number it is."""
    return f"{value:g}" if lower or value > 1 else f"{value:.0%}"


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"
