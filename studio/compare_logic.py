"""The Compare tab's logic without Gradio: which loaded model answers for the base and each run,
and how an answer is shown through the task (Task.view: its picture; the REST payload: the JSON an
app gets; Task.score and Task.diff: against the label). Models are loaded once per base model and
kept; a run's adapter is added to it."""
from __future__ import annotations

from pathlib import Path

from core.tasks import api_payload, metric_spec
from studio.common import badge, esc

MAX_ENGINES = 3  # each holds a model in memory; beyond this the oldest is dropped


def _engine(state, model_ref: str):
    from core.infer import Engine

    with state.engine_lock:
        eng = state.engines.get(model_ref)
        if eng is None:
            eng = Engine(model_ref)
            while len(state.engines) >= MAX_ENGINES:
                state.engines.pop(next(iter(state.engines)))
            state.engines[model_ref] = eng
        return eng


def side_for(state, run: str | None, base_model: str):
    """(engine, adapter name or None, title) for the base model (run None) or a run. A LoRA run is
    its base model with the run's adapter switched on; a full fine-tune loads its own RUN/model/."""
    from core.infer import resolve_run_dir, run_weights

    if not run:
        return _engine(state, base_model), None, f"base · {base_model}"
    run_dir = resolve_run_dir(run)
    model, has_adapter = run_weights(run_dir)
    eng = _engine(state, model)
    return eng, (eng.add_adapter(run_dir) if has_adapter else None), f"run · {run_dir.name}" + (
        "" if has_adapter else " (full fine-tune)")


def generate(eng, adapter: str | None, image, task, record: dict | None, max_new_tokens: int):
    """One answer of a side picked by side_for()."""
    prompt = task.prompt(record or {"fields": {}})
    return eng.generate([image], [prompt], adapter=adapter, task=task, max_new_tokens=int(max_new_tokens))[0]


def answer(state, image, task, record: dict | None, run: str | None, base_model: str, max_new_tokens: int):
    eng, adapter, title = side_for(state, run, base_model)
    return title, generate(eng, adapter, image, task, record, max_new_tokens)


def payload(ans, task) -> dict:
    """The JSON an app gets for this answer: the same builder as the task's REST route."""
    return api_payload(task, ans.parsed if ans.parsed is not None else task.parse(ans.text),
                       {"text": ans.text, "confidence": ans.confidence, "field_confidence": ans.field_confidence})


def verdict_html(ans, task, record: dict | None) -> str:
    parsed = ans.parsed
    ok = bool(parsed and parsed.ok)
    head = badge("valid" if ok else "invalid", "ok" if ok else "err") + " " + confidence_html(ans)
    errs = "".join(f"<li>{('line %s, col %s: ' % (e.line, e.column)) if e.line else ''}{esc(e.message)}</li>"
                   for e in (parsed.errors if parsed else [])[:6])
    body = f"<ul class='ts-issues'>{errs}</ul>" if errs else ""
    if record and task.is_labeled(record) and parsed is not None:
        scores = task.score(parsed, record)
        body += ('<div class="ts-scores">' + " ".join(badge(score_text(task, k, v), "info")
                                                       for k, v in scores.items()) + "</div>")
        if hasattr(task, "diff"):
            body += diff_html(task.diff(parsed, record))
    return f'<div class="ts-verdict">{head}{body}</div>'


def score_text(task, name: str, value: float) -> str:
    """"bitting exact 1.00"; a metric where lower is better says so (Task.metrics), so an error of 0 reads
    as the good news it is."""
    lower = not metric_spec(task, name).higher_is_better
    return f"{name.replace('_', ' ')} {value:.2f}" + (" (lower is better)" if lower else "")


def confidence_html(ans) -> str:
    """How sure the model is of a valid answer: the answer's confidence and each field's (Answer.
    field_confidence, from the task's field spans); an answer that did not parse says so instead."""
    if ans.parsed is not None and not ans.parsed.ok:
        return badge("confidence 0 · no valid answer", "neutral")
    fields = "".join(f" {badge(f'{k} {v:.2f}', 'neutral')}" for k, v in (ans.field_confidence or {}).items())
    return (badge(f"confidence {ans.confidence:.2f}", "neutral")
            + (f'<span class="ts-field-conf" title="per field">{fields}</span>' if fields else ""))


def diff_html(diff: dict) -> str:
    """A task's differences against the label ({what: [items]}) as a list; "matches" when none."""
    rows = []
    for key, items in diff.items():
        if not items or not isinstance(items, list):
            continue
        shown = [i if isinstance(i, str) else ", ".join(f"{k}={v}" for k, v in i.items()) for i in items[:8]]
        rows.append(f"<li><b>{esc(key.replace('_', ' '))}</b>: {esc('; '.join(shown))}"
                    + (f" (+{len(items) - 8})" if len(items) > 8 else "") + "</li>")
    if not rows:
        return f'<div class="ts-diff">{badge("matches the label", "ok")}</div>'
    return '<div class="ts-diff"><div class="ts-muted">Against the label:</div><ul>' + "".join(rows) + "</ul></div>"


def detail(ans, task):
    """(the task's picture of the answer, the JSON an app gets for it)."""
    parsed = ans.parsed if ans.parsed is not None else task.parse(ans.text)
    return task.view(parsed).html, payload(ans, task)


def run_title(run: str | None) -> str:
    return Path(run).name if run else "—"
