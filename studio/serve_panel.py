"""Export tab: serve finished runs over the studio's own API (task routes, Ollama, OpenAI) without a
restart. Several runs can be served at once: runs of one base model share it, each as an adapter.
What is served lives in core.api.serving.ServedModels (app.py puts it on the studio state)."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from core.errors import StudioError
from studio.common import esc, guard, run_choices

PUBLIC_API = ("serve_runs", "stop_serving")  # gradio_client endpoints (the other UI events are private)


def _served(state):
    served = getattr(state, "served", None)
    if served is None:
        raise StudioError("This studio serves no API (a share link runs the UI alone).",
                          "Start it with `python app.py` (or use `python -m core serve --serve RUN`).")
    return served


def served_markdown(state) -> str:
    """What answers each model name, and how to call it."""
    try:
        status = _served(state).status()
    except StudioError as e:
        return f"{e.message} {e.hint}"
    rows = ["| model name | task | answered by | loaded |", "|---|---|---|---|"]
    for s in status["served"]:
        who = f"run `{esc(s['run'])}`" if s["run"] else "base model (no run)"
        rows.append(f"| `{esc(s['name'])}` | {esc(s['task'])} | {who} on {esc(s['base_model'])} | "
                    f"{'yes' if s['loaded'] else 'on first request'} |")
    return ("\n".join(rows) + "\n\nCall it on this server: `POST /api/v1/tasks/<task>/analyze` (form field "
            "`model` picks a run), Ollama `POST /api/chat` and OpenAI `POST /v1/chat/completions` with "
            "`model` set to a name above. `GET /api/v1/health` lists the same.")


def _in_workspace(state, run: str) -> Path:
    """A run id or a run folder, which must lie in the workspace's runs/ (a script calling the
    endpoint cannot serve folders from elsewhere on the server)."""
    root = state.runs_dir.resolve()
    path = (Path(run) if Path(run).is_absolute() else root / run).resolve()
    if path.parent != root:
        raise StudioError(f"'{run}' is not a run of this studio.", f"Pick a run under {root}.")
    return path


def _picked(runs) -> list[str]:
    runs = [runs] if isinstance(runs, str) else [r for r in (runs or []) if r]
    if not runs:
        raise StudioError("No run picked.", "Pick one or more finished runs.")
    return runs


def serve_runs(state, runs) -> str:
    """Serves each picked run (the last one per task also answers under the task's name)."""
    for run in _picked(runs):
        _served(state).serve(_in_workspace(state, run))
    return served_markdown(state)


def stop_runs(state, runs) -> str:
    for run in _picked(runs):
        _served(state).unserve(_in_workspace(state, run).name)
    return served_markdown(state)


def build(state) -> dict:
    with gr.Accordion("Serve over the API", open=False, elem_id="serve-panel"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2):
                runs = gr.Dropdown([], multiselect=True, label="Runs to serve", elem_id="serve-runs",
                                   allow_custom_value=True,  # scripts name runs by id (checked in serve_runs)
                                   info="Finished runs; several at once share one base model.")
                with gr.Row():
                    refresh = gr.Button("Refresh runs", size="sm")
                    serve = gr.Button("Serve", variant="primary", elem_id="serve-go")
                    stop = gr.Button("Stop serving", elem_id="serve-stop")
            with gr.Column(scale=5):
                table = gr.Markdown(served_markdown(state), elem_id="serve-status")

    def on_refresh(picked=None):
        """The finished runs to pick from (the picks kept) and what is served now; also when the
        Export tab opens, so the list is never empty while a finished run exists."""
        choices = run_choices(state, finished_only=True)
        return gr.update(choices=choices, value=picked or []), served_markdown(state)

    refresh.click(on_refresh, runs, [runs, table])
    serve.click(guard(lambda r: serve_runs(state, r)), runs, table, api_name=PUBLIC_API[0])
    stop.click(guard(lambda r: stop_runs(state, r)), runs, table, api_name=PUBLIC_API[1])
    return {"runs": runs, "table": table, "refresh": on_refresh}
