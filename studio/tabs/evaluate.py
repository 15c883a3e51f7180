"""Evaluate tab: score a finished run (and optionally its base model) on a split with the task's
metrics through core.evaluate; earlier results load when a run is picked."""
from __future__ import annotations

import gradio as gr

from core.errors import StudioError
from studio.common import esc, run_buttons, ui_guard

ROW_HEADERS = ["id", "valid", "label", "prediction", "metrics"]
# the widths keep every header on one line and the metrics in view at 1400 px (the label beside the
# prediction, so a wrong answer reads against what it should have been)
ROW_WIDTHS = ["19%", "9%", "24%", "24%", "24%"]


def summary_md(summary: dict) -> str:
    from core.evaluate import format_summary

    return f"```text\n{format_summary(summary)}\n```"


def result_rows(rows: list[dict], labels: dict | None = None) -> list[list]:
    """One row per scored record; labels: record id -> its label as the training target."""
    out, labels = [], labels or {}
    for r in rows:
        if "error" in r:
            out.append([r["id"], "error", labels.get(r["id"], ""), r["error"], ""])
            continue
        parsed = r.get("parsed") or {}
        metrics = r.get("metrics") or r.get("scores") or {}
        out.append([r["id"], "yes" if parsed.get("ok") else "no", labels.get(r["id"], "")[:300],
                    (r.get("prediction") or "")[:300],
                    ", ".join(f"{k} {v:.2f}" for k, v in metrics.items() if isinstance(v, (int, float)))])
    return out


def labels_of(run: str, ids) -> dict:
    """The scored records' labels (their training targets), from the run's dataset; {} when it is
    gone (the results still show)."""
    from core.dataset import Dataset
    from core.infer import resolve_run_dir
    from core.training.config import TrainConfig

    try:
        ds = Dataset.open(TrainConfig.load(resolve_run_dir(run) / "config.json").dataset)
        wanted, out = set(ids), {}
        for rec in ds.records():
            if rec["id"] in wanted and ds.task.is_labeled(rec):
                out[rec["id"]] = ds.task.target(rec)
        return out
    except (StudioError, OSError, ValueError):
        return {}


def view(run: str | None, split: str) -> tuple[str, list[list]]:
    """(summary Markdown, per-record rows) of the run's saved evaluation on split, if any."""
    from core.evaluate import load_results

    if not run:
        return "Pick a run and press Evaluate.", []
    try:
        found = load_results(run, split)
    except (StudioError, ValueError, OSError) as e:
        return f"Earlier results could not be read: {esc(e)}", []
    if found is None:
        return f"No evaluation of this run on '{esc(split)}' yet.", []
    return summary_md(found[1]), result_rows(found[0], labels_of(run, [r.get("id") for r in found[0]]))


def run_eval(run: str | None, split: str, base: bool, limit, progress=None, stage=None) -> tuple[str, list[list]]:
    """Scores a LoRA or full fine-tune run through core.evaluate (base too when asked), then shows it."""
    from core.evaluate import evaluate_run

    if not run:
        raise StudioError("No run picked.", "Pick a finished run.")
    if limit is not None and limit < 0:
        raise StudioError(f"N must be 0 (all records) or more, got {limit}.", "Leave it at 0 to score every record.")
    evaluate_run(run, split=split, base=bool(base), limit=int(limit) if limit else None, progress=progress,
                 stage=stage)
    return view(run, split)


def build(state, shared: dict) -> dict:
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, elem_classes="ts-panel"):  # wide enough for a whole run id
            run = gr.Dropdown([], label="Run", elem_id="eval-run")
            split = gr.Dropdown(["val", "test", "train"], value="val", label="Split", elem_id="eval-split")
            base = gr.Checkbox(True, label="Also score the base model (for comparison)")
            # 0, not empty: Gradio sends an emptied number box as 0, which must mean "all", not an error
            limit = gr.Number(0, label="Only the first N records (0 = all)", precision=0, minimum=0,
                              elem_id="eval-limit")
            on_refresh, go = run_buttons(state, run, "eval", "Evaluate", dataset=shared["dataset"])
        with gr.Column(scale=5, elem_classes="ts-panel"):
            summary = gr.Markdown("Pick a run and press Evaluate.", elem_id="eval-summary")
            rows = gr.Dataframe(headers=ROW_HEADERS, value=[], interactive=False, wrap=True, max_height=420,
                                column_widths=ROW_WIDTHS, elem_id="eval-rows")

    @ui_guard
    def on_go(r, s, b, n, progress=gr.Progress()):
        # a sync handler: Gradio runs it in a worker thread, so the page stays live while it works
        progress(0, desc="loading the model (the first batch follows)")
        return run_eval(r, s, b, n, progress=lambda d, t: progress((d, t), desc="scoring", unit="records"),
                        stage=lambda text: progress(0, desc=text))

    run.change(view, [run, split], [summary, rows])
    split.change(view, [run, split], [summary, rows])
    go.click(on_go, [run, split, base, limit], [summary, rows], concurrency_limit=1, concurrency_id="models")
    return {"refresh": on_refresh, "run": run}
