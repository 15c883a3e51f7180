"""The task contract: every installed task (all_tasks(), so a new task gets this suite by being installed),
and the example tasks of tests/example_tasks/ (docs/NEW_TASK.md's meter task, installed under
core/tasks/ for these tests only), goes through the product's own paths:

- its samples are labels that validate, and whose target parses back into the same target;
- each format it declares exports the labels and imports them again from a folder and from a zip;
- the Annotate tab's own handlers (render, the live check, Save) put another record's label into the
  editor and save it, value types intact (a reading "004217" stays that string);
- a few demo-base training steps, shared by the steps below; evaluate (every metric has a direction and
  an aggregate; a right answer lands in the best band); the model card says which metrics are better low;
- the REST route(s), and the Ollama and OpenAI routes, answer with the task's payload.

Kept small for CI: 6 sample records, 3 training steps at batch 2, 16 new tokens.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from core.dataset import Dataset
from core.tasks import all_tasks, get_task
from task_install import EXAMPLES, TASKS_DIR, installed

EXAMPLE_TASKS = sorted(p.name for p in EXAMPLES.iterdir() if (p / "__init__.py").is_file() and p.name != "__pycache__")
TASK_NAMES = sorted({*all_tasks(), *EXAMPLE_TASKS})
N_SAMPLES, N_VAL = 6, 2
GEN = {"max_new_tokens": 16}


def _png(im) -> bytes:
    buf = io.BytesIO()
    im.convert("RGB").save(buf, "PNG")
    return buf.getvalue()


def _pairs(ds: Dataset) -> list[tuple[str, str]]:
    """What training sees of a dataset's labeled records: (prompt, target), in order."""
    return sorted((ds.task.prompt(r), ds.task.target(r)) for r in ds.records() if ds.task.is_labeled(r))


@pytest.fixture(scope="module", params=TASK_NAMES)
def contract(request, tmp_path_factory):
    """One task's dataset of its own samples (4 train, 2 val) in a fresh workspace."""
    name = request.param
    env = os.environ.get("TRINITY_WORKSPACE")
    with contextlib.ExitStack() as stack:
        if name in EXAMPLE_TASKS and name not in all_tasks():
            stack.enter_context(installed(name))
        task = get_task(name)
        root = tmp_path_factory.mktemp(f"contract-{name}")
        ws = root / "workspace"
        os.environ["TRINITY_WORKSPACE"] = str(ws)
        settings = dict(task.example_settings) if getattr(task, "settings", None) else None
        assert not getattr(task, "settings", None) or set(settings) == set(task.settings), \
            f"{name} asks for settings {list(task.settings)}: give a working value of each in example_settings"
        ds = Dataset.create(ws / "datasets" / "source", name, config=settings)
        samples = ds.task.samples(N_SAMPLES)
        assert len(samples) == N_SAMPLES, f"{name}.samples({N_SAMPLES}) gave {len(samples)} records: the contract " \
                                          "(and export checks) need labelled example images"
        for i, s in enumerate(samples):
            rec, _ = ds.add_image(_png(s["image_obj"]), fields=s["fields"])
            ds.save_record({**rec, "split": "val" if i < N_VAL else "train"})
        try:
            yield SimpleNamespace(name=name, task=ds.task, ds=ds, ws=ws, root=root, settings=settings,
                                  samples=samples)
        finally:
            if env is None:
                os.environ.pop("TRINITY_WORKSPACE", None)
            else:
                os.environ["TRINITY_WORKSPACE"] = env
    if name in EXAMPLE_TASKS:  # an example task never stays installed after its tests
        assert not (TASKS_DIR / name).exists() and name not in all_tasks()


@pytest.fixture(scope="module")
def trained(contract):
    """One run per task: 3 LoRA steps on the demo base with its recipe, through the product's job."""
    from core.training.config import default_config
    from core.training.events import last_of, read_events
    from core.training.hardware import CPU_ONLY
    from core.training.job import run_job
    from core.training.runs import create_run

    cfg = default_config("demo", CPU_ONLY, task=contract.name, dataset=str(contract.ds.path), max_steps=3,
                         batch_size=2, gradient_accumulation_steps=1, eval_split="", save_steps=10_000,
                         logging_steps=1, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = create_run(cfg, run_dir=contract.ws / "runs" / f"{contract.name}-run")
        code = run_job(run, progress=False)
    finally:
        torch.set_num_threads(threads)
    end = last_of(read_events(run), "end")
    assert code == 0 and end and end["status"] == "completed", end
    return run


# ---------------------------------------------------------------- labels, kinds, metrics as declared
def test_samples_are_labels_whose_target_parses_back(contract):
    task = contract.task
    kinds = {f.name: f for f in task.fields}
    for s in contract.samples:
        rec = {"id": s["id"], "image": "", "fields": s["fields"]}
        errors = [i.message for i in task.validate(rec) if i.severity == "error"]
        assert not errors and task.is_labeled(rec), (s["fields"], errors)
        for name, value in s["fields"].items():  # every value is its kind's type (Field.check, the documented types)
            if name in kinds:
                assert not kinds[name].check(value), (name, value, kinds[name].value_type())
        target = task.target(rec)
        parsed = task.parse(target)
        assert parsed.ok, parsed.errors
        assert task.target({"fields": task.fields_from_parsed(parsed)}) == target
    for f in task.fields:
        assert f.value_type() and f.to_dict()["kind"] == f.kind


def test_a_right_answer_scores_best_in_every_band(contract):
    from core.evaluate import compliance_band
    from core.tasks.base import metric_spec

    task = contract.task
    rec = {"fields": contract.samples[0]["fields"]}
    scores = task.score(task.parse(task.target(rec)), rec)
    assert task.headline_metric in scores, f"the headline metric {task.headline_metric} is not one score() gives"
    for metric, bands in (task.bands or {}).items():
        assert metric in scores, f"banded metric {metric} is not one score() gives"
        spec = metric_spec(task, metric)
        assert compliance_band(scores[metric], bands, spec.higher_is_better) == bands[0][0], (metric, scores[metric])


# ---------------------------------------------------------------- seed formats: export, then import (folder, zip)
def test_each_format_exports_and_imports_from_a_folder_and_a_zip(contract):
    from core.importers import sniff

    task, src = contract.task, contract.ds
    writable = [f for f in task.formats if f.write is not None]
    if not task.formats:
        pytest.skip(f"{contract.name} declares no label format")
    assert writable, f"{contract.name}'s formats are import-only: the suite round-trips formats that write"
    want = _pairs(src)
    for fmt in writable:
        out = contract.root / f"export-{fmt.name}"
        res = src.export(fmt.name, out)
        assert res["records"] == N_SAMPLES and not res["skipped"], res
        label_file = Path(res["out"])
        assert label_file.suffix.lower() in fmt.suffixes and label_file.is_file()
        assert sniff(out, contract.name) == ("folder", contract.name)
        assert sniff(label_file, None) == (fmt.name, contract.name)  # detected with no hint of the task
        archive = Path(shutil.make_archive(str(contract.root / f"zip-{fmt.name}"), "zip", root_dir=out))
        assert sniff(archive, None) == ("zip", contract.name)
        for source, kind in ((out, "folder"), (archive, "zip")):
            ds = Dataset.create(contract.root / f"import-{fmt.name}-{kind}", contract.name, config=contract.settings)
            rep = ds.import_source(source)
            assert (rep["imported"], rep["labeled"], rep["skipped"]) == (N_SAMPLES, N_SAMPLES, []), rep
            assert rep["format"] == fmt.name and rep["label_file"] == label_file.name
            assert _pairs(ds) == want, f"{fmt.name} from a {kind} does not give back the labels"


# ---------------------------------------------------------------- Annotate: the tab's own handlers
def test_annotate_puts_a_label_in_the_editor_and_saves_it(contract):
    import gradio as gr

    from studio.common import make_state
    from studio.tabs import annotate

    state = make_state(contract.ws)
    ds = Dataset.create(contract.ws / "datasets" / "annotate", contract.name, config=contract.settings)
    first = contract.samples[0]
    rec_a, _ = ds.add_image(_png(first["image_obj"]), fields=first["fields"])
    rec_b, _ = ds.add_image(_png(contract.samples[1]["image_obj"]), fields=contract.samples[1]["fields"])
    with gr.Blocks():
        dd = gr.Dropdown([str(ds.path)], value=str(ds.path))
        tab = annotate.build(state, {"dataset": dd})
    value = lambda upd: upd.get("value") if isinstance(upd, dict) and upd.get("__type__") == "update" else upd  # noqa: E731
    shown_a = tab["render"](str(ds.path), rec_a["id"], "all", "me")
    shown_b = tab["render"](str(ds.path), rec_b["id"], "all", "someone else")   # B's label, as its editor shows it
    assert shown_a[tab["holding"]] == rec_a["id"] and shown_a[tab["cur"]]["id"] == rec_a["id"]
    data = {tab["cur"]: shown_a[tab["cur"]], dd: str(ds.path), tab["filter"]: "all", tab["autosave"]: True,
            tab["reviewed"]: False, tab["holding"]: rec_a["id"], tab["order"]: tab["order"].value,
            tab["want"]: None, tab["drafts"]: {},
            **{c: value(shown_b.get(c)) for c in tab["editors"]}}
    me = SimpleNamespace(session_hash="me")
    check = tab["on_edit"](None)(data, me)   # the live check of what the editor holds
    assert "valid" in check[tab["check"]]["value"] and "error" not in check[tab["check"]]["value"]
    out = tab["on_save"](data, me)
    assert "Saved as labeled" in out[tab["save_msg"]], out.get(tab["save_msg"])
    saved = ds.get(rec_a["id"])
    want = contract.samples[1]["fields"]
    assert saved["status"] == "labeled" and ds.task.normalize_fields(saved["fields"]) == ds.task.normalize_fields(want), \
        (saved["fields"], want)
    for k, v in want.items():   # the value types survive the editor: a string of digits stays a string
        assert type(saved["fields"][k]) is type(v), (k, saved["fields"][k], v)
    again = tab["render"](str(ds.path), rec_a["id"], "all", "third")
    assert [value(again[c]) for c in tab["editors"]] == [value(shown_b.get(c)) for c in tab["editors"]]


# ---------------------------------------------------------------- train (shared), evaluate, model card
def test_evaluate_honours_the_metrics_declarations(contract, trained):
    from core.evaluate import evaluate_run, format_summary, load_results
    from core.modelcard import model_card
    from core.tasks.base import metric_spec

    summary = evaluate_run(trained, split="val", batch_size=2, **GEN)
    rows, again = load_results(trained, "val")
    assert again == summary and summary["n"] == N_VAL and len(rows) == N_VAL and summary["task"] == contract.name
    assert set(summary["metric_info"]) >= {*summary["metrics"], *(contract.task.bands or {}),
                                           contract.task.headline_metric} and summary["metrics"]
    for name, info in summary["metric_info"].items():
        spec = metric_spec(contract.task, name)
        assert info == {"better": spec.better, "aggregate": spec.aggregate}
    assert summary["headline"]["metric"] == contract.task.headline_metric
    assert summary["headline"]["better"] == metric_spec(contract.task, contract.task.headline_metric).better
    text = format_summary(summary)
    card = model_card("adapter", trained.name, json.loads((trained / "config.json").read_text()), "demo", None, [summary])
    for name in summary["metrics"]:
        info = summary["metric_info"][name]
        line = next(x for x in text.splitlines() if x.startswith(name + " "))
        assert ("lower is better" in line) == (info["better"] == "lower"), line
        assert line in card
    for metric, band in summary.items():
        if isinstance(band, dict) and "bands" in band:
            sign = "<=" if metric_spec(contract.task, metric).better == "lower" else ">="
            assert f"{metric.replace('_', ' ')}: " in text and f" {sign} " in text


# ---------------------------------------------------------------- the REST route, Ollama and OpenAI
def test_rest_ollama_and_openai_routes_answer_for_the_task(contract, trained, demo_model_path):
    from fastapi.testclient import TestClient

    from core.api import ServedModels, create_api
    from core.tasks import api_model

    task = contract.task
    provider = ServedModels({contract.name: trained}, base_model=str(demo_model_path), device="cpu")
    image = _png(contract.samples[N_VAL]["image_obj"])
    b64 = base64.b64encode(image).decode()
    with TestClient(create_api(provider, generation=GEN)) as c:
        paths = [f"/api/v1/tasks/{contract.name}/analyze"] + ([f"/api/v1{task.route.path}"] if task.route else [])
        bodies = []
        for path in paths:
            r = c.post(path, files={"image": ("photo.png", image, "image/png")})
            assert r.status_code == 200, r.text
            body = api_model(task).model_validate(r.json()).model_dump()
            assert isinstance(body["success"], bool) and (body.get("error") is None) == body["success"], body
            bodies.append(body)
        assert len({frozenset(b) for b in bodies}) == 1  # the task's own route and the generic one: one payload
        spec = c.get("/api/v1/openapi.json").json()
        assert all(p in spec["paths"] for p in paths)
        tags = [m["name"] for m in c.get("/api/tags").json()["models"]]
        assert any(t.startswith(trained.name) for t in tags) and any(t.startswith(contract.name) for t in tags)
        chat = c.post("/api/chat", json={"model": trained.name, "stream": False, "messages": [
            {"role": "user", "content": "", "images": [b64]}]})
        assert chat.status_code == 200 and isinstance(chat.json()["message"]["content"], str), chat.text
        models = [m["id"] for m in c.get("/v1/models").json()["data"]]
        assert trained.name in models and contract.name in models
        out = c.post("/v1/chat/completions", json={"model": trained.name, "max_tokens": 16, "messages": [
            {"role": "user", "content": [{"type": "text", "text": ""},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64}}]}]})
        assert out.status_code == 200, out.text
        assert out.json()["model"] == trained.name and isinstance(out.json()["choices"][0]["message"]["content"], str)
