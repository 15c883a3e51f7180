"""Annotate's pre-label panel: pick a finished run (or the base), let it answer the unlabeled records
in the background (core/prelabel.py: a thread of the studio, so it goes on when the page is
reloaded or left), follow its progress, stop it; then the offer to train again and the plot of how
the accept-unchanged rate moves from run to run. No ML and no task knowledge here."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from core.errors import StudioError
from studio import prelabel_logic as P
from studio.common import open_dataset, run_choices, warn
from studio.plots import accept_rate_figure

POLL_S = 1.0


def build(state, ds_dd) -> dict:
    with gr.Accordion("Pre-label with a run: the model suggests, you accept or correct", open=False,
                      elem_id="ann-pl", elem_classes="ts-panel"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=260):
                gr.Markdown("A finished run answers every unlabeled record. Its answers are **suggestions**, never "
                            "labels, until you accept (<kbd>Alt</kbd>+<kbd>A</kbd>) or correct them. Order the queue "
                            "by *lowest confidence first* to see the doubtful ones first.", elem_classes="ts-muted")
                run = gr.Dropdown([], label="Run", elem_id="ann-pl-run", allow_custom_value=False)
                which = gr.Radio([("every unlabeled record", "unlabeled"),
                                  ("suggested ones only (a 2nd opinion)", "suggested")],
                                 value="unlabeled", label="Records", elem_id="ann-pl-which")
                with gr.Row():
                    go = gr.Button("Pre-label", variant="primary", size="sm", elem_id="ann-pl-go")
                    stop = gr.Button("Stop", size="sm", elem_id="ann-pl-stop")
            with gr.Column(scale=2, min_width=260):
                status = gr.HTML(elem_id="ann-pl-status")
                offer = gr.HTML(elem_id="ann-pl-offer-box")
                with gr.Row(visible=False) as offer_row:
                    again = gr.Button("Train again (same settings)", size="sm", variant="primary",
                                      elem_id="ann-pl-again")
                    resume = gr.Button("Resume the run", size="sm", elem_id="ann-pl-resume", visible=False)
            with gr.Column(scale=3, min_width=320):
                plot = gr.Plot(elem_id="ann-pl-plot", show_label=False)
    timer = gr.Timer(POLL_S, active=False)
    finished = gr.Number(0, visible=False, elem_id="ann-pl-finished")  # bumped when a pass ends: refresh the queue
    offered = gr.State(None)

    def panel(path, bump=None, runs: bool = True) -> dict:
        """Everything the panel shows for the dataset, fresh from disk."""
        from core import label_loop, prelabel

        if not path:
            return {status: "", offer: "", offer_row: gr.update(visible=False), timer: gr.Timer(active=False)}
        ds = open_dataset(state, path)
        st = prelabel.status(ds)
        choices = [("base model (no adapter)", "base")] + run_choices(state, ds.task.name, finished_only=True)
        got = label_loop.offer(ds)
        out = {status: P.pass_html(st), offer: P.offer_html(got), offered: got,
               offer_row: gr.update(visible=bool(got)), resume: gr.update(visible=bool(got and got["resume"])),
               plot: accept_rate_figure(label_loop.rate_series(ds)),
               timer: gr.Timer(active=st["status"] in prelabel.ACTIVE_STATUSES)}
        if runs:  # not while polling: the choice the person made stays
            # a pass that stopped early is what "Pre-label" goes on with; else the newest finished run
            left = [v for _, v in choices if st["status"] in ("stopped", "interrupted", "failed")
                    and (Path(v).name == st.get("run") or (v == "base" and str(st.get("run", "")).startswith("base:")))]
            trained = [v for _, v in choices if v != "base"]  # newest first
            out[run] = gr.update(choices=choices, value=(left or trained or ["base"])[0])
        if bump is not None:
            out[finished] = bump
        return out

    outputs = [status, offer, offered, offer_row, resume, plot, run, timer]

    def on_dataset(path):
        try:
            return panel(path)
        except StudioError as e:
            return {status: f'<div class="ts-muted">{e.message}</div>'}

    def on_go(path, run_ref, which_):
        from core import prelabel

        try:
            ds = open_dataset(state, path)
            prelabel.start(ds, run_ref, which=which_ or "unlabeled", engines=state.engines, lock=state.engine_lock)
        except StudioError as e:
            warn(e)
            return {}
        return {status: P.pass_html(prelabel.status(ds)), timer: gr.Timer(active=True)}

    def on_stop(path):
        from core import prelabel

        try:
            return {status: P.pass_html(prelabel.request_stop(open_dataset(state, path)))}
        except StudioError as e:
            warn(e)
            return {}

    def on_tick(path, bump):
        from core import prelabel

        try:
            ds = open_dataset(state, path)
        except StudioError:
            return {timer: gr.Timer(active=False)}
        st = prelabel.status(ds)
        if st["status"] in prelabel.ACTIVE_STATUSES:
            return {status: P.pass_html(st)}
        return panel(path, (bump or 0) + 1, runs=False)  # it ended: counts, offer, plot, and the queue (via `finished`)

    def train_again(how):
        def handler(path, got):
            from core import label_loop

            try:
                if not got:
                    raise StudioError("There is nothing to train again from.", "Review some suggestions first.")
                new = label_loop.train_again(open_dataset(state, path), got["run_dir"], how, state.workspace)
            except StudioError as e:
                warn(e)
                return {}
            gr.Info(f"Run {new.name} is training on every label; follow it in the Train tab.")
            return {offer_row: gr.update(visible=False),
                    offer: f'<div class="ts-offer" id="ann-pl-offer">Training <code>{new.name}</code>… Pre-label '
                           "with it once it has finished.</div>"}
        return handler

    ds_dd.change(on_dataset, ds_dd, outputs)
    go.click(on_go, [ds_dd, run, which], [status, timer])
    stop.click(on_stop, ds_dd, status)
    timer.tick(on_tick, [ds_dd, finished], [*outputs, finished], show_progress="hidden")
    again.click(train_again("new"), [ds_dd, offered], [offer_row, offer])
    resume.click(train_again("resume"), [ds_dd, offered], [offer_row, offer])
    return {"finished": finished, "refresh": on_dataset, "outputs": outputs}
