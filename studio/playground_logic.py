"""The Playground tab's logic without Gradio: ask a base model or a finished run anything about an
image, with a free prompt, and see its raw answer, plus the structure it parses into when it does
(the run's own task; for a base model, the open dataset's task). One engine per base model, shared
with Compare (compare_logic), a run's adapter switched on it (core.infer.Engine)."""
from __future__ import annotations

from pathlib import Path

from core.errors import StudioError
from studio import compare_logic as K
from studio.common import badge, esc, run_choices

BASE_PREFIX = "base:"  # a target value "base:<model>" is a base model; anything else is a run folder
MAX_PROMPT = 4000      # characters; a prompt is one turn, not a document


def targets(state, models_offered: list[str]) -> list[tuple[str, str]]:
    """What can answer: each offered base model, then every finished run (any task)."""
    bases = [(f"base · {m}", BASE_PREFIX + m) for m in models_offered]
    runs = [(f"run · {label}", path) for label, path in run_choices(state, finished_only=True)]
    return bases + runs


def task_for(target: str | None, dataset_task=None):
    """The task an answer is parsed with: a run's own (configured by its dataset, e.g. the json
    task's schema), a base model's the open dataset's (None when no dataset is open)."""
    if not target or target.startswith(BASE_PREFIX):
        return dataset_task
    from core.export import run_task
    from core.infer import read_run_config

    return run_task(read_run_config(target))


def task_prompt(target: str | None, dataset_task=None) -> str:
    """The prompt the task trains with: a start for a free prompt."""
    task = task_for(target, dataset_task)
    if task is None:
        raise StudioError("No task to take a prompt from.", "Open a dataset, or pick a run.")
    return task.prompt({"fields": {}})


def _side(state, target: str):
    if target.startswith(BASE_PREFIX):
        model = target[len(BASE_PREFIX):]
        return K.side_for(state, None, model)
    if not Path(target).is_dir():
        raise StudioError("That run is gone.", "Press Refresh and pick another.")
    return K.side_for(state, target, "")


def ask(state, target: str | None, image, prompt: str, dataset_task=None, max_new_tokens: int = 256,
        temperature: float = 0.0) -> dict:
    """One answer: {"title", "text", "parsed" (the structure, or None), "verdict" (HTML), "answer"}.
    image: a path or PIL image. temperature 0 decodes greedily (as Compare and Evaluate do)."""
    if not target:
        raise StudioError("Pick a base model or a run to ask.", "Choose one in the list above.")
    if image is None:
        raise StudioError("No image yet.", "Drop an image on the upload box (the models answer about a picture).")
    prompt = (prompt or "").strip()
    if not prompt:
        raise StudioError("The prompt is empty.", "Type a question, or press “Use the task's prompt”.")
    if len(prompt) > MAX_PROMPT:
        raise StudioError(f"The prompt is {len(prompt):,} characters long.", f"Keep it under {MAX_PROMPT:,}.")
    from core.images import load_image

    picture = load_image(image) if not hasattr(image, "convert") else image.convert("RGB")
    task = task_for(target, dataset_task)
    eng, adapter, title = _side(state, target)
    gen = {"max_new_tokens": int(max_new_tokens)}
    if temperature and float(temperature) > 0:
        gen.update(sample=True, temperature=float(temperature))
    ans = eng.generate([picture], [prompt], adapter=adapter, task=task, **gen)[0]
    parsed = ans.parsed
    if task is None:
        verdict = f'<div class="ts-verdict">{badge("raw", "neutral")} no task to parse the answer with</div>'
    elif parsed is not None and parsed.ok:
        verdict = (f'<div class="ts-verdict">{badge("parses", "ok")} as {esc(task.title or task.name)} · '
                   f"{K.confidence_html(ans)}</div>")
    else:
        why = "; ".join(e.message for e in (parsed.errors if parsed else [])[:3]) or "no fields"
        verdict = (f'<div class="ts-verdict">{badge("does not parse", "warn")} as {esc(task.title or task.name)}: '
                   f"{esc(why)}</div>")
    return {"title": title, "text": ans.text, "answer": ans, "verdict": verdict,
            "parsed": parsed.data if parsed is not None and parsed.ok else None}
