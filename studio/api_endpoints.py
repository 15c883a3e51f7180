"""Named studio endpoints for `gradio_client` (and the "Use via API" page): plain typed inputs by
name, JSON out, so a script needs no knowledge of the tabs' components.

    <task.check_api>(text) -> task.parse(text).to_dict(), for each task that names one, e.g. ui2sql's
        check_sql(sql) -> {"ok", "errors": [{"message", "line", "column", ...}], "data": {"tables", ...}}
    compare_record(dataset, record_id, run="", max_new_tokens=64) -> {"record", "task", "label", "sides"};
        each side carries "app_json": the task's REST payload for that answer

Datasets and runs are named by their folder name inside the studio's workspace (never a path).
"""
from __future__ import annotations

import gradio as gr

from core.errors import StudioError
from core.names import is_valid_name
from studio import compare_logic as K
from studio.common import guard


def _name(value: str, what: str) -> str:
    if not is_valid_name(value):
        raise StudioError(f"'{value}' is not a {what} name.", f"Give the {what}'s folder name (letters, digits, . _ -).")
    return value


def check_endpoint(task):
    """A named endpoint that checks text as the task reads a model's answer: ok, errors with
    line/column, the parsed structure."""
    def check(text: str) -> dict:
        return task.parse(text or "").to_dict()

    check.__name__ = task.check_api
    check.__doc__ = f"Checks text as the {task.name} task reads it: ok, errors with line/column, parsed data."
    return check


def compare_record(state, dataset: str, record_id: str, run: str = "", max_new_tokens: int = 64) -> dict:
    """The base model's answer and, when run is given, the run's answer on one dataset record,
    each with its validity, one-line verdict, scores against the label, and the JSON the task's REST
    route answers for it (app_json; for keys the phone app's JSON)."""
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
        parsed = ans.parsed if ans.parsed is not None else task.parse(ans.text)
        side.update(summary=task.view(parsed).summary, app_json=K.payload(ans, task))
        sides.append(side)
    return {"record": rec["id"], "task": task.name, "label": task.target(rec) if labeled else None, "sides": sides}


def register(state) -> None:
    """Adds the endpoints to the Blocks being built (call inside its `with` block)."""
    from core.tasks import all_tasks

    for task in all_tasks().values():
        if getattr(task, "check_api", None):
            gr.api(guard(check_endpoint(task)), api_name=task.check_api)

    def compare(dataset: str, record_id: str, run: str = "", max_new_tokens: int = 64) -> dict:
        return compare_record(state, dataset, record_id, run, max_new_tokens)

    compare.__doc__ = compare_record.__doc__
    gr.api(guard(compare), api_name="compare", concurrency_limit=1, concurrency_id="models")
