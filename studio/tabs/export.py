"""Export tab: a finished run as its PEFT adapter, merged 16-bit weights, or GGUF for llama.cpp /
Ollama, through core.export.export_run (written to RUN/export/<format>)."""
from __future__ import annotations

import json

import gradio as gr

from core.errors import StudioError
from studio.common import guard, run_choices

FORMATS = [("LoRA adapter (PEFT)", "adapter"), ("Merged 16-bit model", "merged"), ("GGUF + vision projector", "gguf")]


def build(state, shared: dict) -> dict:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, elem_classes="ts-panel"):
            run = gr.Dropdown([], label="Run", elem_id="export-run")
            fmt = gr.Radio(FORMATS, value="adapter", label="Format")
            quant = gr.Dropdown(["f16", "q8_0", "q4_k_m"], value="f16", label="GGUF quantization",
                                info="Text model only; the vision projector stays f16.", visible=False)
            verify = gr.Checkbox(True, label="Verify the GGUF against the merged model", visible=False)
            with gr.Row():
                refresh = gr.Button("Refresh runs", size="sm")
                go = gr.Button("Export", variant="primary", elem_id="export-go")
        with gr.Column(scale=5, elem_classes="ts-panel"):
            where = gr.Markdown("Pick a finished run.", elem_id="export-where")
            summary = gr.Code(language="json", label="Export summary", interactive=False, lines=14)

    def on_refresh():
        return gr.update(choices=run_choices(state, finished_only=True))

    @guard
    def on_go(r, f, q, v, progress=gr.Progress()):
        from core.export import export_run

        if not r:
            raise StudioError("No run picked.", "Pick a finished run.")
        res = export_run(r, f, quant=q if f == "gguf" else None, verify=bool(v),
                         progress=lambda frac, msg: progress(frac if frac is not None else 0, desc=msg))
        return f"Exported to `{res.get('out_dir')}`", json.dumps(res, indent=2, default=str)

    refresh.click(on_refresh, None, run)
    fmt.change(lambda f: (gr.update(visible=f == "gguf"), gr.update(visible=f == "gguf")), fmt, [quant, verify])
    go.click(on_go, [run, fmt, quant, verify], [where, summary], concurrency_limit=1, concurrency_id="models")
    return {"refresh": on_refresh, "run": run}
