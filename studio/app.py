"""Builds the studio's Blocks: a header with the open dataset, then one tab per step of the flow
(Datasets -> Annotate -> Train -> Compare -> Playground -> Evaluate -> Export). Launch settings (theme, CSS,
shortcuts) come from launch_kwargs(); app.py serves it next to the REST API."""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from core.errors import StudioError
from studio import api_endpoints, theme
from studio.common import StudioState, dataset_choices, esc, newest_finished, run_choices, seed_demo_datasets
from studio.tabs import annotate, compare, datasets, evaluate, export, playground, train

# The tabs in the flow's order: id (also ?tab= in the address) -> (label, the module that builds it)
PAGES = {"datasets": ("Datasets", datasets), "annotate": ("Annotate", annotate), "train": ("Train", train),
         "compare": ("Compare", compare), "playground": ("Playground", playground), "evaluate": ("Evaluate", evaluate),
         "export": ("Export", export)}
TABS = tuple(PAGES)


def _header(state: StudioState) -> gr.Dropdown:
    mode = ' <span class="ts-badge ts-warn">demo mode: small models, bounded runs</span>' if state.demo_mode else ""
    with gr.Row(elem_id="ts-header", equal_height=True):
        gr.HTML('<div class="ts-brand"><div class="ts-logo">T</div><div><div class="ts-title">Trinity Studio'
                f'{mode}</div><div class="ts-sub">Images in, labelled once, out comes an adapter that answers in a '
                'structure we can check.</div></div></div>')
        ds_dd = gr.Dropdown([], label="Open dataset", elem_id="ts-dataset", scale=0, min_width=320)
    return ds_dd


def default_dataset(choices: list[tuple[str, str]], preferred: str | None = None) -> str | None:
    if preferred and preferred in [v for _, v in choices]:
        return preferred
    return choices[0][1] if choices else None


def running_dataset(state: StudioState, choices: list[tuple[str, str]]) -> str | None:
    """The dataset a run in progress trains, when it is one of the listed datasets."""
    from core.training.runs import list_runs

    paths = {str(Path(v).resolve()): v for _, v in choices}
    for r in list_runs(state.workspace):
        if r.get("status") == "running" and r.get("dataset"):
            found = paths.get(str(Path(r["dataset"]).resolve()))
            if found:
                return found
    return None


def build_app(state: StudioState) -> gr.Blocks:
    seed_demo_datasets(state)
    with gr.Blocks(title="Trinity Studio", analytics_enabled=False, fill_width=True) as blocks:
        ds_dd = _header(state)
        shared = {"dataset": ds_dd}
        tab_blocks, uis = {}, {}
        with gr.Tabs(elem_id="ts-tabs") as tabs:
            for tab_id, (label, page) in PAGES.items():
                with gr.Tab(label, id=tab_id, elem_id=f"tab-{tab_id}") as tab_blocks[tab_id]:
                    uis[tab_id] = page.build(state, shared)
        ds_ui, ann_ui, train_ui, cmp_ui, eval_ui, export_ui = (
            uis[t] for t in ("datasets", "annotate", "train", "compare", "evaluate", "export"))

        def on_load(request: gr.Request):
            """A reload opens the same place: ?dataset=, ?run= and ?tab= from the address (written
            there as the user moves); without them, the dataset of a run in progress."""
            choices = dataset_choices(state)
            qp = dict(getattr(request, "query_params", {}) or {}) if request else {}
            wanted = next((v for _, v in choices if Path(v).name == qp.get("dataset")), None)
            dataset = default_dataset(choices, wanted or running_dataset(state, choices))
            out = {ds_dd: gr.update(choices=choices, value=dataset), **train_ui["on_load"](dataset, qp.get("run"))}
            finished = run_choices(state, finished_only=True)
            run = next((v for _, v in finished if Path(v).name == qp.get("run")), None)
            for dd in (eval_ui["run"], export_ui["run"]):  # the run in the address, else the newest
                out[dd] = newest_finished(state, run, dataset)
            out[export_ui["serve"]["runs"]] = export_ui["serve"]["refresh"]()[0]
            if qp.get("tab") in TABS:
                out[tabs] = gr.Tabs(selected=qp["tab"])
            out[ann_ui["want"]] = qp.get("record") or None  # the record the annotator had open
            return out

        loaded = blocks.load(on_load, None, [ds_dd, tabs, eval_ui["run"], export_ui["run"], ann_ui["want"],
                                             export_ui["serve"]["runs"],
                                             *train_ui["load_outputs"]])
        loaded.then(None, ds_dd, None, js=theme.set_param_js("dataset", ready=True))
        loaded.then(cmp_ui["refresh"], cmp_ui["refresh_inputs"], cmp_ui["dataset_outputs"])
        ds_dd.change(None, ds_dd, None, js=theme.set_param_js("dataset"))
        for dd in (train_ui["run"], eval_ui["run"], export_ui["run"]):
            dd.input(None, dd, None, js=theme.set_param_js("run"))
        for tab_id, tab in tab_blocks.items():
            tab.select(None, None, None, js=theme.set_param_js("tab", tab_id))

        # A row of the validation report opens its record in the annotator.
        def open_bad_record(path, filter_, evt: gr.SelectData, request: gr.Request):
            rid = (evt.row_value or [None, None])[1]
            try:
                out = ann_ui["render"](path, rid, "all", getattr(request, "session_hash", "local"))
            except StudioError as e:
                gr.Warning(esc(e.message))
                return {}
            out[tabs] = gr.Tabs(selected="annotate")
            out[ann_ui["filter"]] = "all"
            return out

        ann_ui["after"](ds_ui["report"].select(open_bad_record, [ds_dd, ann_ui["filter"]],
                                               [*ann_ui["view_outputs"], tabs, ann_ui["filter"]], **ann_ui["serial"]))
        ann_ui["after"](tab_blocks["annotate"].select(ann_ui["show"], ann_ui["all_inputs"], ann_ui["view_outputs"],
                                                      **ann_ui["serial"]))
        tab_blocks["compare"].select(cmp_ui["refresh"], cmp_ui["refresh_inputs"], cmp_ui["dataset_outputs"])
        tab_blocks["playground"].select(uis["playground"]["refresh"], uis["playground"]["target"],
                                        uis["playground"]["target"])
        tab_blocks["evaluate"].select(eval_ui["refresh"], [eval_ui["run"], ds_dd], eval_ui["run"])
        tab_blocks["export"].select(export_ui["refresh"], [export_ui["run"], ds_dd], export_ui["run"])
        tab_blocks["export"].select(export_ui["serve"]["refresh"], export_ui["serve"]["runs"],
                                    [export_ui["serve"]["runs"], export_ui["serve"]["table"]])
        api_endpoints.register(state)  # named endpoints for gradio_client: check_sql, compare
    from studio.serve_panel import PUBLIC_API

    for fn in blocks.fns.values():
        # a UI event (gr.api endpoints have no trigger): the page calls it, clients need not; the serve
        # panel's two buttons are also a client's way to pick what the API serves
        if fn.targets and fn.api_name not in PUBLIC_API:
            fn.api_visibility = "private"  # so gradio_client lists the named endpoints, not /lambda_1…
    return blocks


def launch_kwargs() -> dict:
    """Theme, CSS and the shortcut script: Gradio 6 takes these at launch / mount time."""
    return {"theme": theme.theme(), "css": theme.css(), "js": theme.SHORTCUTS_JS}
