"""Train tab: the knobs in the order a person decides (what to train, how much, memory and speed),
the GPU budget and the planner's prediction, the equivalent `python -m core train` command, and
Start / Stop / Resume (the job runs as a subprocess). A gr.Timer polls the run's events.jsonl for
the curves, progress, ETA and log tail; a page reload re-attaches and the form shows the run's
settings; any past run's settings load into the form."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from core import models
from core.errors import StudioError
from core.training import config as C
from studio import planner_logic as P
from studio import plots
from studio import train_logic as T
from studio.common import esc, open_dataset, ui_guard, warn

POLL_S = 2.0
RUN_HEADERS = ["run", "status", "model", "task", "step", "loss", "eval loss"]
RUN_WIDTHS = ["30%", "14%", "10%", "9%", "10%", "12%", "15%"]  # "eval loss" whole beside a long run id
OPEN_GROUPS = ("What to train", "How much")


def _model_choices(demo_mode: bool, extra: str | None = None) -> list[tuple[str, str]]:
    """The registry's models, plus `extra` (a custom folder or hub id in use) when it is not one."""
    out = []
    for mid, info in models.MODELS.items():
        if demo_mode and mid != models.DEMO_ID:
            continue
        out.append((f"{mid}  ·  {info.size_note.split(';')[0]}", mid))
    if extra and extra not in models.MODELS and not demo_mode:
        name = Path(extra).name if Path(extra).is_absolute() else extra
        out.append((f"{name}  ·  custom ({extra})", extra))
    return out


def custom_model_html(ref: str) -> tuple[str | None, str]:
    """(model id or None, message) for the custom base model field: checked (core.model_check)."""
    from core.model_check import check_base_model, describe

    try:
        info = check_base_model(ref)
    except StudioError as e:
        return None, (f'<div class="ts-msg ts-msg-warn" id="train-custom-result">✗ {esc(e.message)} '
                      f'<span class="ts-muted">{esc(e.hint)}</span></div>')
    return info.id, (f'<div class="ts-msg ts-msg-ok" id="train-custom-result">✓ {esc(describe(info))}: '
                     f"<code>{esc(info.id)}</code> is the base model now.</div>")


def _knob(name: str, value, method: str):
    kind, help_ = T.field_kind(name), C.help_text(name)
    label = name.replace("_", " ")
    common = {"label": label, "info": help_, "elem_id": f"knob-{name}",
              "interactive": not (method == "full" and name in T.LORA_ONLY)}
    if kind == "checkbox":
        return gr.Checkbox(value=bool(value), min_width=260, elem_classes="ts-knob-check", **common)
    if kind == "choice":
        return gr.Dropdown(list(T.CHOICES[name]), value=value, min_width=180, **common)
    if kind == "int":
        return gr.Number(value=value, precision=0, min_width=180, **common)
    if kind == "float":
        return gr.Number(value=value, min_width=180, **common)
    return gr.Textbox(value="" if value is None else str(value), max_lines=1, min_width=180, **common)


def target_html(state, path: str | None, train_split: str | None) -> str:
    """Says which dataset Start trains, and how many labeled records its split holds."""
    try:
        ds = open_dataset(state, path)
    except StudioError as e:
        return f'<div class="ts-msg ts-msg-warn">{esc(e.message)}</div>'
    split = train_split or "train"
    n = sum(1 for r in ds.records(split=split) if ds.task.is_labeled(r))
    kind = "ok" if n else "warn"
    return (f'<div class="ts-msg ts-msg-{kind}" id="train-target-text">Start trains <b>{esc(ds.name)}</b> '
            f'({esc(ds.task.name)}): {n} labeled record{"" if n == 1 else "s"} in its <b>{esc(split)}</b> split.</div>')


def build(state, shared: dict) -> dict:
    from core.training.hardware import detect

    ds_dd = shared["dataset"]
    hw = detect()
    start_cfg = C.default_config("demo")
    values = T.knob_values(start_cfg)
    knobs: dict[str, gr.components.Component] = {}
    last = gr.State({})
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            with gr.Row():
                model = gr.Dropdown(_model_choices(state.demo_mode), value="demo", label="Base model",
                                    elem_id="train-model", scale=3,
                                    info="The offline demo model trains on CPU in a minute; hub models need a GPU and a token.")
                preset = gr.Dropdown([T.DEFAULTS_PRESET, *C.PRESETS], value=T.DEFAULTS_PRESET, label="Preset",
                                     elem_id="train-preset", scale=2,
                                     info="The two seed documents' settings, or sensible defaults for the model.")
            with gr.Row(visible=not state.demo_mode, equal_height=False, elem_id="train-custom-row"):
                custom = gr.Textbox(label="Custom base model", max_lines=1, scale=4, elem_id="train-custom-model",
                                    placeholder="a model folder on this machine, or a hub id (owner/name)",
                                    info="A Gemma 3 / 3n vision model; its config.json is checked before it is used.")
                custom_btn = gr.Button("Check and use", scale=1, min_width=140, elem_id="train-custom-check")
            custom_msg = gr.HTML(elem_id="train-custom-msg")
            preset_note = gr.Markdown(P.preset_note(None), elem_id="train-preset-note")
            for group, names in T.grouped_fields().items():
                with gr.Accordion(group, open=group in OPEN_GROUPS, elem_id=f"train-group-{group.split()[0].lower()}"):
                    with gr.Row(elem_classes="ts-knobs"):
                        for name in names:
                            knobs[name] = _knob(name, values.get(name), start_cfg.method)
            command = gr.Code(label="The same run from a shell", language="shell", interactive=False, lines=3,
                              elem_id="train-command")
        with gr.Column(scale=3, elem_classes="ts-panel"):
            budget = gr.Dropdown(P.budget_choices(hw), value=P.default_budget(hw), label="Memory budget",
                                 elem_id="train-budget",
                                 info="What the run must fit in: this machine, or a GPU (the seeds train on a 16 GB T4).")
            gauge = gr.HTML(P.planner_html(None, P.default_budget(hw)), elem_id="train-gauge")
            gctl = P.gpu_control(hw)
            gpus = gr.Slider(1, max(2, gctl["maximum"]), value=1, step=1, label="GPUs", info=gctl["info"],
                             interactive=gctl["interactive"], visible=gctl["visible"], elem_id="train-gpus")
            backend_note = gr.HTML(elem_id="train-backend")
            target = gr.HTML(elem_id="train-target")
            with gr.Row():
                start_btn = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop_btn = gr.Button("Stop", variant="stop", elem_id="train-stop")
                resume_btn = gr.Button("Resume", elem_id="train-resume")
            run_dd = gr.Dropdown([], label="Run", elem_id="train-run", allow_custom_value=False)
            load_cfg = gr.Button("Load this run's settings into the form", size="sm", elem_id="train-load-config")
            status = gr.HTML(elem_id="train-status-box")
    with gr.Row():
        with gr.Column(min_width=320):
            loss_plot = gr.Plot(plots.loss_figure([]), show_label=False, elem_id="train-loss")
            with gr.Row(elem_id="train-loss-options"):  # the loss plot's own: under it
                log_scale = gr.Checkbox(False, label="Log scale", elem_id="train-loss-log", scale=0, min_width=140)
                smoothing = gr.Slider(0, 0.99, 0, step=0.01, label="Smoothing (train loss)",
                                      elem_id="train-loss-smooth", scale=1)
        mem_plot = gr.Plot(plots.memory_figure([], P.usable_gib(P.default_budget(hw))), show_label=False,
                           elem_id="train-mem")
    with gr.Row():
        lr_plot = gr.Plot(plots.lr_figure([]), show_label=False, elem_id="train-lr")
        tput_plot = gr.Plot(plots.throughput_figure([]), show_label=False, elem_id="train-tput")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            logs = gr.Code(label="Log (tail)", language="shell", interactive=False, lines=12, max_lines=12,
                           elem_id="train-log")
        with gr.Column(scale=4):
            runs_df = gr.Dataframe(headers=RUN_HEADERS, value=[], interactive=False, label="Runs (click to open)",
                                   elem_id="train-runs", max_height=300, wrap=True, column_widths=RUN_WIDTHS)
    timer = gr.Timer(POLL_S)
    knob_list = list(knobs.values())

    def cfg_from(data: dict):
        vals = {n: data[c] for n, c in knobs.items()}
        ds = open_dataset(state, data[ds_dd])
        return T.config_from_knobs(vals, data[model], str(ds.path), ds.task.name, state.demo_mode,
                                   gpus=int(data[gpus] or 1) if gctl["interactive"] else 1)

    def on_gauge(data):
        try:
            cfg, _ = cfg_from(data)
        except StudioError:
            cfg = None
        return {gauge: P.planner_html(cfg, data[budget]), backend_note: P.backend_note(cfg, hw, cfg.gpus if cfg else 1),
                preset_note: P.preset_note(data[preset], data[budget] or P.DEFAULT_GPU),
                command: T.command_preview(cfg, hw) if cfg else ""}

    def form_from(cfg: C.TrainConfig, with_model: bool = True) -> dict:
        vals = T.knob_values(cfg)
        out = {knobs[n]: gr.update(value=vals[n], interactive=not (cfg.method == "full" and n in T.LORA_ONLY))
               for n in knobs}
        if with_model and not state.demo_mode:  # a run's custom base joins the list, so it can show
            out[model] = gr.update(choices=_model_choices(False, cfg.model_id), value=cfg.model_id)
        return out

    def on_preset(p, m):
        try:
            cfg = T.preset_config(p, m)
        except StudioError as e:
            warn(e)
            return {}
        return form_from(cfg)

    def runs_view():
        from core.training.runs import list_runs

        runs = list_runs(state.workspace)
        choices = [(f"{r['run_id']}  ·  {r['status']}", r["path"]) for r in runs]
        return runs, choices, T.run_rows(runs)

    @ui_guard
    def on_start(data):
        cfg, notes = cfg_from(data)
        run_dir = T.start(state, cfg)
        for n in notes:
            gr.Info(n)
        gr.Info(f"Started {run_dir.name} on {Path(cfg.dataset).name}.")
        _, choices, rows = runs_view()
        return {run_dd: gr.update(choices=choices, value=str(run_dir)), runs_df: rows, last: {}}

    def request(action, done: str):
        """A button that asks the job of the picked run for something: a toast either way."""
        def handler(run):
            try:
                action(run)
                gr.Info(done)
            except StudioError as e:
                warn(e)
        return handler

    on_stop = request(T.stop, "Stop requested: the job saves a checkpoint at the end of this step and ends.")
    on_resume = request(T.resume, "Resuming from the last checkpoint.")

    @ui_guard
    def on_load_cfg(run):
        cfg = T.run_config(run)
        gr.Info(f"Loaded the settings of {Path(run).name} (trained {Path(cfg.dataset).name}, {cfg.model_id}).")
        return {**form_from(cfg), preset: T.DEFAULTS_PRESET}

    def tick(run, bud, prev, log_scale_on=False, smooth=0.0):
        st, events = T.live(run)
        if not st:
            return [gr.skip()] * 6 + [prev, gr.skip(), gr.skip()]
        sig = {"run": run, "n": len(events), "status": st.get("status"), "budget": bud,
               "stop": st.get("stop_requested"), "phase": T.phase_text(st.get("status", ""), events)}
        tail = T.log_tail(run)
        if sig == prev:
            return [gr.skip()] * 5 + [tail, prev, gr.skip(), gr.skip()]
        _, choices, rows = runs_view()  # the table's step and status move with the status box
        # the picker's labels ("run · running") follow a changed status; its value is the user's
        labels = gr.update(choices=choices) if st.get("status") != (prev or {}).get("status") else gr.skip()
        return [T.status_html(st, events), plots.loss_figure(events, bool(log_scale_on), float(smooth or 0)),
                plots.memory_figure(events, P.usable_gib(bud)),
                plots.lr_figure(events), plots.throughput_figure(events), tail, sig, rows, labels]

    def on_load(dataset_path: str | None, wanted_run: str | None = None) -> dict:
        """After a page (re)load: the run asked for (URL) or the running / newest one, and the form
        holding that run's settings when it trained the open dataset."""
        runs, choices, rows = runs_view()
        paths = [r["path"] for r in runs]
        run = next((p for p in paths if wanted_run and Path(p).name == wanted_run), None) or T.pick_run_on_load(runs)
        out = {run_dd: gr.update(choices=choices, value=run), runs_df: rows}
        if run and dataset_path:
            try:
                cfg = T.run_config(run)
                if Path(cfg.dataset).resolve() == Path(dataset_path).resolve():
                    out.update(form_from(cfg))
            except StudioError:
                pass
        return out

    def refresh_runs(run):
        _, choices, rows = runs_view()
        return gr.update(choices=choices, value=run), rows

    def on_run_row(evt: gr.SelectData):
        from core import workspace
        rid = (evt.row_value or [None])[0]
        return str(workspace.runs_dir(state.workspace) / rid) if rid else gr.skip()

    def on_method(m):
        full = m == "full"
        return {knobs[n]: gr.update(interactive=not full) for n in T.LORA_ONLY if n in knobs}

    inputs_all = {model, budget, ds_dd, gpus, preset, *knob_list}
    gr.on([c.change for c in (model, budget, ds_dd, gpus, preset, *knob_list)], on_gauge, inputs_all,
          [gauge, backend_note, preset_note, command], trigger_mode="always_last", show_progress="hidden")
    gr.on([ds_dd.change, knobs["train_split"].change], lambda p, s: target_html(state, p, s),
          [ds_dd, knobs["train_split"]], target, show_progress="hidden")
    knobs["method"].change(on_method, knobs["method"], [knobs[n] for n in T.LORA_ONLY if n in knobs],
                           show_progress="hidden")
    preset.input(on_preset, [preset, model], [model, *knob_list])
    model.input(lambda m: {**on_preset(T.DEFAULTS_PRESET, m), preset: T.DEFAULTS_PRESET}, model,
                [model, preset, *knob_list])
    def on_custom(ref):
        mid, msg = custom_model_html(ref)
        if mid is None:
            return {custom_msg: msg}
        out = {**on_preset(T.DEFAULTS_PRESET, mid), preset: T.DEFAULTS_PRESET, custom_msg: msg}
        out[model] = gr.update(choices=_model_choices(False, mid), value=mid)
        return out

    gr.on([custom_btn.click, custom.submit], on_custom, custom, [custom_msg, model, preset, *knob_list])
    start_btn.click(on_start, inputs_all, [run_dd, runs_df, last])
    stop_btn.click(on_stop, run_dd, None)
    resume_btn.click(on_resume, run_dd, None)
    load_cfg.click(on_load_cfg, run_dd, [model, preset, *knob_list])
    live_out = [status, loss_plot, mem_plot, lr_plot, tput_plot, logs, last, runs_df, run_dd]
    timer.tick(tick, [run_dd, budget, last, log_scale, smoothing], live_out, show_progress="hidden", queue=False)
    run_dd.change(lambda r, b, lg, sm: tick(r, b, {}, lg, sm), [run_dd, budget, log_scale, smoothing], live_out,
                  show_progress="hidden")

    def on_loss_options(run, log, smooth):
        return plots.loss_figure(T.live(run)[1] if run else [], bool(log), float(smooth or 0))

    gr.on([log_scale.change, smoothing.change], on_loss_options, [run_dd, log_scale, smoothing], loss_plot,
          show_progress="hidden", trigger_mode="always_last")
    runs_df.select(on_run_row, None, run_dd)
    for btn in (stop_btn, resume_btn):
        btn.click(refresh_runs, run_dd, [run_dd, runs_df])
    return {"on_load": on_load, "load_outputs": [run_dd, runs_df, model, *knob_list], "run": run_dd,
            "knobs": knobs, "model": model, "tick": tick, "budget": budget}
