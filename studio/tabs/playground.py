"""Playground tab: a free prompt about one image to a base model or a finished run, its raw answer,
and the structure it parses into when it does (studio/playground_logic.py)."""
from __future__ import annotations

import gradio as gr

from core import models
from core.errors import StudioError
from studio import playground_logic as G
from studio.common import esc, open_dataset, ui_guard


def build(state, shared: dict) -> dict:
    ds_dd = shared["dataset"]
    offered = [m for m in models.MODELS if not state.demo_mode or m == models.DEMO_ID]
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, elem_classes="ts-panel"):
            target = gr.Dropdown(G.targets(state, offered), value=G.BASE_PREFIX + models.DEMO_ID,
                                 label="Who answers", elem_id="pg-model",
                                 info="A base model, or a finished run (its adapter on its base model).")
            refresh = gr.Button("Refresh runs", size="sm", elem_id="pg-refresh")
            image = gr.Image(type="filepath", label="Image", sources=["upload", "clipboard"], height=300,
                             elem_id="pg-image")
        with gr.Column(scale=3, elem_classes="ts-panel"):
            prompt = gr.Textbox(label="Prompt", lines=5, max_lines=12, elem_id="pg-prompt",
                                placeholder="Ask anything about the image, e.g. “What is written at the top?”")
            with gr.Row():
                use_task = gr.Button("Use the task's prompt", size="sm", elem_id="pg-task-prompt")
                go = gr.Button("Answer", variant="primary", elem_id="pg-go")
            with gr.Row():
                tokens = gr.Slider(16, 1024, 256, step=16, label="Max new tokens", elem_id="pg-tokens")
                temperature = gr.Slider(0, 1.5, 0, step=0.05, label="Temperature (0 = greedy, as scored)",
                                        elem_id="pg-temperature")
            title = gr.HTML(elem_id="pg-title")
            verdict = gr.HTML(elem_id="pg-verdict")
            raw = gr.Code(label="Raw answer", interactive=False, lines=6, max_lines=16, wrap_lines=True,
                          elem_id="pg-answer")
            parsed = gr.JSON(label="Parsed structure", elem_id="pg-parsed", max_height=320)

    def dataset_task(path):
        try:
            return open_dataset(state, path).task if path else None
        except StudioError:
            return None

    @ui_guard
    def on_task_prompt(t, path):
        return G.task_prompt(t, dataset_task(path))

    @ui_guard
    def on_go(t, path, img, p, n, temp, progress=gr.Progress()):
        # a sync handler: Gradio runs it in a worker thread, so the page stays live while it works
        progress(0, desc="loading the model (first time only) and answering")
        out = G.ask(state, t, img, p, dataset_task(path), int(n), float(temp or 0))
        return {title: f'<div class="ts-side-title">{esc(out["title"])}</div>', verdict: out["verdict"],
                raw: out["text"], parsed: out["parsed"]}

    def on_refresh(t):
        choices = G.targets(state, offered)
        return gr.update(choices=choices, value=t if t in [v for _, v in choices] else choices[0][1])

    use_task.click(on_task_prompt, [target, ds_dd], prompt)
    go.click(on_go, [target, ds_dd, image, prompt, tokens, temperature], [title, verdict, raw, parsed],
             concurrency_limit=1, concurrency_id="models")
    refresh.click(on_refresh, target, target)
    return {"refresh": on_refresh, "target": target}
