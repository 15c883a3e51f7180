"""Export tab: a finished run as its PEFT adapter, merged 16-bit weights, or GGUF for llama.cpp /
Ollama, through core.export.export_run (written to RUN/export/<format>)."""
from __future__ import annotations

import json

import gradio as gr

from core.errors import StudioError
from studio.common import guard, run_choices

FORMATS = [("LoRA adapter (PEFT)", "adapter"), ("Merged 16-bit model", "merged"), ("GGUF + vision projector", "gguf")]


def formats_for(run: str | None) -> tuple[list[tuple[str, str]], str, str]:
    """(format choices, default, note) for a run: a LoRA run exports its adapter by default; a full
    fine-tune (RUN/model/, no adapter) offers merged and GGUF only, merged by default."""
    from core.infer import resolve_run_dir, run_weights

    if not run:
        return FORMATS, "adapter", "Pick a finished run."
    try:
        _, has_adapter = run_weights(run)
    except StudioError as e:
        return FORMATS, "adapter", f"{e.message} {e.hint}"
    name = resolve_run_dir(run).name
    if has_adapter:
        return FORMATS, "adapter", f"`{name}` is a LoRA run: its adapter, or the base merged with it."
    return FORMATS[1:], "merged", (f"`{name}` is a full fine-tune: every weight was trained, so there is no "
                                   "adapter; export the merged model or GGUF.")


def do_export(run: str | None, fmt: str, quant: str | None, verify: bool, progress=None) -> tuple[str, str]:
    """Runs core.export.export_run; (where it went, the summary as JSON)."""
    from core.export import export_run

    if not run:
        raise StudioError("No run picked.", "Pick a finished run.")
    res = export_run(run, fmt, quant=quant if fmt == "gguf" else None, verify=bool(verify), progress=progress)
    return f"Exported to `{res.get('out_dir')}`", json.dumps(res, indent=2, default=str)


def build(state, shared: dict) -> dict:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, elem_classes="ts-panel"):
            run = gr.Dropdown([], label="Run", elem_id="export-run")
            fmt = gr.Radio(FORMATS, value="adapter", label="Format", elem_id="export-format")
            quant = gr.Dropdown(["f16", "q8_0", "q4_k_m"], value="f16", label="GGUF quantization",
                                info="Text model only; the vision projector stays f16.", visible=False)
            verify = gr.Checkbox(True, label="Verify the GGUF against the merged model", visible=False)
            with gr.Row():
                refresh = gr.Button("Refresh runs", size="sm")
                go = gr.Button("Export", variant="primary", elem_id="export-go")
        with gr.Column(scale=5, elem_classes="ts-panel"):
            where = gr.Markdown("Pick a finished run.", elem_id="export-where")
            summary = gr.Code(language="json", label="Export summary", interactive=False, lines=14)
    from studio import serve_panel  # serving a run over the API: its own module

    serve_panel.build(state)

    def on_refresh():
        return gr.update(choices=run_choices(state, finished_only=True))

    @guard
    def on_go(r, f, q, v, progress=gr.Progress()):
        # a sync handler: Gradio runs it in a worker thread, so the page stays live while it works
        return do_export(r, f, q, v, progress=lambda frac, msg: progress(frac if frac is not None else 0, desc=msg))

    def on_run(r):
        choices, value, note = formats_for(r)
        return gr.update(choices=choices, value=value), note

    refresh.click(on_refresh, None, run)
    run.change(on_run, run, [fmt, where])
    fmt.change(lambda f: (gr.update(visible=f == "gguf"), gr.update(visible=f == "gguf")), fmt, [quant, verify])
    go.click(on_go, [run, fmt, quant, verify], [where, summary], concurrency_limit=1, concurrency_id="models")
    return {"refresh": on_refresh, "run": run}
