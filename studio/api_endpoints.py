"""Named studio endpoints for `gradio_client` (and the "Use via API" page): plain typed inputs by
name, JSON out, so a script needs no knowledge of the tabs' components.

    check_sql(sql) -> {"ok", "errors": [{"message", "line", "column", ...}], "tables", ...}
    compare_record(dataset, record_id, run="", max_new_tokens=64) -> {"record", "task", "label", "sides"}

Datasets and runs are named by their folder name inside the studio's workspace (never a path).
"""
from __future__ import annotations

import re

import gradio as gr

from core.errors import StudioError
from studio import compare_logic as K
from studio.common import guard

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _name(value: str, what: str) -> str:
    if not isinstance(value, str) or not NAME.match(value) or ".." in value:
        raise StudioError(f"'{value}' is not a {what} name.", f"Give the {what}'s folder name (letters, digits, . _ -).")
    return value


def check_sql(sql: str) -> dict:
    """Checks a SQL schema as the annotator does: ok, errors with line/column, parsed tables."""
    from core.tasks import get_task

    return get_task("ui2sql").parse(sql or "").to_dict()


def compare_record(state, dataset: str, record_id: str, run: str = "", max_new_tokens: int = 64) -> dict:
    """The base model's answer and, when run is given, the run's answer on one dataset record,
    each with its parsed structure, validity, scores against the label, and for keys the phone
    app's JSON (the same as POST /api/v1/keys/analyze)."""
    from core.dataset import Dataset

    ds = Dataset.open(state.datasets_dir / _name(dataset, "dataset"))
    rec = ds.get(record_id)
    if rec is None:
        raise StudioError(f"Dataset {ds.name} has no record '{record_id}'.", "Pick an id from records.jsonl.")
    run_dir = str(state.runs_dir / _name(run, "run")) if run else None
    base = "demo"
    if run_dir:  # the base side is the model the run was trained on, not always the demo model
        from core.infer import read_run_config
        base = read_run_config(run_dir)["model"]
    image, task = ds.load_image(rec), ds.task
    labeled = task.is_labeled(rec)
    sides = []
    for which in (None, run_dir) if run_dir else (None,):
        title, ans = K.answer(state, image, task, rec, which, base, max(1, min(int(max_new_tokens), 1024)))
        side = {"title": title, "text": ans.text, "confidence": ans.confidence,
                "valid": bool(ans.parsed and ans.parsed.ok),
                "scores": task.score(ans.parsed, rec) if labeled and ans.parsed is not None else None}
        side.update({"app_json": K.phone_app_json(ans)} if task.name == "keys" else K.detail(ans, task)[1])
        sides.append(side)
    return {"record": rec["id"], "task": task.name, "label": task.target(rec) if labeled else None, "sides": sides}


def register(state) -> None:
    """Adds the endpoints to the Blocks being built (call inside its `with` block)."""
    gr.api(guard(check_sql), api_name="check_sql")

    def compare(dataset: str, record_id: str, run: str = "", max_new_tokens: int = 64) -> dict:
        return compare_record(state, dataset, record_id, run, max_new_tokens)

    compare.__doc__ = compare_record.__doc__
    gr.api(guard(compare), api_name="compare", concurrency_limit=1, concurrency_id="models")
