"""Compare tab: one image (from the dataset or uploaded), the base model and one or two runs,
answers side by side with their parsed structure, validity, scores and diff against the label."""
from __future__ import annotations

import gradio as gr

from core import models
from core.errors import StudioError
from studio import compare_logic as K
from studio.common import esc, open_dataset, run_choices, ui_guard

SIDES = 3


def build(state, shared: dict) -> dict:
    ds_dd = shared["dataset"]
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, elem_classes="ts-panel"):
            source = gr.Radio(["dataset", "upload"], value="dataset", label="Image from", elem_id="cmp-source")
            record = gr.Dropdown([], label="Record", elem_id="cmp-record", allow_custom_value=False)
            upload = gr.Image(type="filepath", label="Upload an image", sources=["upload", "clipboard"],
                              visible=False, elem_id="cmp-upload", height=220)
            preview = gr.Image(type="filepath", interactive=False, show_label=False, height=260,
                               elem_id="cmp-preview")
        with gr.Column(scale=3, elem_classes="ts-panel"):
            base = gr.Dropdown([m for m in models.MODELS if not state.demo_mode or m == models.DEMO_ID],
                               value=models.DEMO_ID, label="Base model", elem_id="cmp-base")
            with gr.Row():
                run_a = gr.Dropdown([], label="Run A", elem_id="cmp-run-a")
                run_b = gr.Dropdown([], label="Run B (optional)", elem_id="cmp-run-b")
            tokens = gr.Slider(16, 1024, 256, step=16, label="Max new tokens", elem_id="cmp-tokens")
            with gr.Row():
                refresh_btn = gr.Button("Refresh runs", size="sm")
                go = gr.Button("Compare", variant="primary", elem_id="cmp-go")
            label_box = gr.Code(label="Label of this image", interactive=False, lines=4, elem_id="cmp-label")
    cols = []
    with gr.Row(equal_height=False):
        for i in range(SIDES):
            with gr.Column(elem_classes="ts-panel ts-side", min_width=280):
                # verdict first and the answer capped in height, so the three verdicts line up even
                # when an untrained base rambles for thousands of tokens
                title = gr.HTML(f'<div class="ts-side-title">{["Base", "Run A", "Run B"][i]}</div>')
                verdict = gr.HTML(elem_id=f"cmp-verdict-{i}", elem_classes="ts-side-verdict")
                text = gr.Code(label="Answer", interactive=False, lines=6, max_lines=10, wrap_lines=True,
                               elem_id=f"cmp-answer-{i}")
                picture = gr.HTML(max_height=360, elem_classes="ts-side-picture")
                # the task's picture already shows the answer's structure; the API's payload (with the
                # confidence) is one click away, not a second copy of it cut off below
                with gr.Accordion("The API's JSON", open=False, elem_id=f"cmp-json-box-{i}"):
                    js = gr.JSON(show_label=False, elem_id=f"cmp-json-{i}", max_height=300)
                cols.append((title, verdict, text, picture, js))

    def on_dataset(path, rid=None, ra=None, rb=None):
        """The record and run lists of the open dataset; a record or run still listed stays picked
        (a tab switch must not undo the user's choice), else the first val/test record and newest run."""
        try:
            ds = open_dataset(state, path)
        except StudioError:
            return gr.update(choices=[], value=None), gr.update(choices=[]), gr.update(choices=[])
        recs = ds.records()
        labeled = [r for r in recs if r.get("status") in ("labeled", "reviewed")] or recs
        first = next((r for r in labeled if r.get("split") in ("val", "test")), labeled[0] if labeled else None)
        if rid and any(r["id"] == rid for r in recs):
            first = {"id": rid}
        runs = run_choices(state, ds.task.name, finished_only=True)
        ids = [v for _, v in runs]
        # The split in the label: a fair comparison uses held-out (val/test) images.
        return (gr.update(choices=[(" · ".join(filter(None, (r["id"], r.get("status"), r.get("split")))), r["id"])
                                   for r in recs],
                          value=first["id"] if first else None),
                gr.update(choices=runs, value=ra if ra in ids else (runs[0][1] if runs else None)),
                gr.update(choices=[("—", "")] + runs, value=rb if rb in ids else ""))

    def on_record(path, rid):
        try:
            ds = open_dataset(state, path)
            rec = ds.get(rid)
        except StudioError:
            return None, ""
        return str(ds.image_path(rec)), ds.task.target(rec) if ds.task.is_labeled(rec) else "(not labeled)"

    @ui_guard
    def on_compare(path, src, rid, up, b, ra, rb, n, progress=gr.Progress()):
        # a sync handler: Gradio runs it in a worker thread, so the page stays live while it works
        ds = open_dataset(state, path)
        task, rec = ds.task, None
        if src == "upload":
            if not up:
                raise StudioError("No image uploaded.", "Drop an image on the upload box, or pick a dataset record.")
            from core.images import load_image
            image = load_image(up)
        else:
            rec = ds.get(rid) if rid else None
            if rec is None:
                raise StudioError("No record picked.", "Choose a record of the dataset.")
            image = ds.load_image(rec)
        names = ["base", "run A", "run B"]
        chosen = [i for i, run in enumerate([None, ra, rb]) if i == 0 or run]
        out = []
        for i, run in enumerate([None, ra or None, rb or None]):
            if i not in chosen:
                out += [f'<div class="ts-side-title">{["Base", "Run A", "Run B"][i]} <span class="ts-muted">not chosen</span></div>',
                        "", "", "", None]
                continue
            # two steps per side (its model, its answer), counted so a first load reads as progress
            k, m = chosen.index(i) + 1, len(chosen)
            progress((2 * k - 2, 2 * m), desc=f"loading {names[i]} {k}/{m}", unit="steps")
            eng, adapter, title = K.side_for(state, run, b)
            progress((2 * k - 1, 2 * m), desc=f"answering with {names[i]} {k}/{m}", unit="steps")
            ans = K.generate(eng, adapter, image, task, rec, n)
            picture, data = K.detail(ans, task)
            out += [f'<div class="ts-side-title">{esc(title)}</div>', K.verdict_html(ans, task, rec), ans.text,
                    picture, data]
        return out

    def on_refresh(path, rid, ra, rb):
        # the record list comes with the runs: Run A showing and Record still empty let a quick
        # Compare click go out with no record ("No record picked") while the list was on its way
        return on_dataset(path, rid, ra, rb)

    ds_dd.change(on_dataset, ds_dd, [record, run_a, run_b])
    record.change(on_record, [ds_dd, record], [preview, label_box])
    source.change(lambda s: (gr.update(visible=s == "dataset"), gr.update(visible=s == "upload")), source,
                  [record, upload])
    upload.change(lambda u: u, upload, preview)
    refresh_btn.click(on_refresh, [ds_dd, record, run_a, run_b], [record, run_a, run_b])
    flat = [c for col in cols for c in col]
    go.click(on_compare, [ds_dd, source, record, upload, base, run_a, run_b, tokens], flat,
             concurrency_limit=1, concurrency_id="models")
    return {"refresh": on_refresh, "run_a": run_a, "run_b": run_b, "on_dataset": on_dataset,
            "dataset_outputs": [record, run_a, run_b], "refresh_inputs": [ds_dd, record, run_a, run_b]}
