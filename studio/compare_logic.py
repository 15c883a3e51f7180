"""The Compare tab's logic without Gradio: which loaded model answers for the base and each run,
and how an answer is shown (parsed schema / fields, validity, diff against the label, the phone
app's JSON). Models are loaded once per base model and kept; a run's adapter is added to it."""
from __future__ import annotations

from pathlib import Path

from studio.common import badge, esc
from core.tasks.ui2sql.er_diagram import er_svg

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


def answer(state, image, task, record: dict | None, run: str | None, base_model: str, max_new_tokens: int):
    eng, adapter, title = side_for(state, run, base_model)
    prompt = task.prompt(record or {"fields": {}})
    ans = eng.generate([image], [prompt], adapter=adapter, task=task, max_new_tokens=int(max_new_tokens))[0]
    return title, ans


def phone_app_json(ans) -> dict:
    """The Keylike app's JSON for a keys answer: the same builder as POST /api/v1/keys/analyze."""
    from core.tasks.keys.app_json import keys_app_json

    return keys_app_json(ans)


def verdict_html(ans, task, record: dict | None) -> str:
    parsed = ans.parsed
    ok = bool(parsed and parsed.ok)
    head = (badge("valid" if ok else "invalid", "ok" if ok else "err")
            + f" {badge(f'confidence {ans.confidence:.2f}', 'neutral')}")
    errs = "".join(f"<li>{('line %s, col %s: ' % (e.line, e.column)) if e.line else ''}{esc(e.message)}</li>"
                   for e in (parsed.errors if parsed else [])[:6])
    body = f"<ul class='ts-issues'>{errs}</ul>" if errs else ""
    if record and task.is_labeled(record) and parsed is not None:
        scores = task.score(parsed, record)
        body += ('<div class="ts-scores">' + " ".join(badge(f"{k.replace('_', ' ')} {v:.2f}", "info")
                                                       for k, v in scores.items()) + "</div>")
        if task.name == "ui2sql":
            body += diff_html(parsed, record)
    return f'<div class="ts-verdict">{head}{body}</div>'


def diff_html(parsed, record: dict) -> str:
    from core.tasks.ui2sql import schema_diff

    diff = schema_diff(parsed, (record.get("fields") or {}).get("sql") or "")
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
    """(schema/fields HTML, JSON for the side)."""
    parsed = ans.parsed
    if task.name == "ui2sql":
        tables = (parsed.data.get("tables") if parsed else None) or []
        return er_svg(tables, "No table parsed from this answer"), {"tables": tables}
    return "", phone_app_json(ans)


def run_title(run: str | None) -> str:
    return Path(run).name if run else "—"
