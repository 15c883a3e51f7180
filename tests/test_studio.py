"""The studio without a browser: the Blocks build, and the handlers' logic against a temp workspace."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.dataset import Dataset
from core.errors import StudioError
from core.workspace import ASSETS


@pytest.fixture
def state(workspace):
    from studio.common import make_state, seed_demo_datasets

    st = make_state(workspace)
    seed_demo_datasets(st)
    return st


def test_demo_datasets_are_copied_once_and_never_edited_in_place(state):
    from studio.common import seed_demo_datasets

    keys = state.datasets_dir / "keys"
    assert (keys / "dataset.json").is_file() and (state.datasets_dir / "ui2sql" / "records.jsonl").is_file()
    ds = Dataset.open(keys)
    rid = ds.records()[0]["id"]
    ds.set_fields(rid, {"brand": "Edited"})
    assert seed_demo_datasets(state) == []  # present: not copied again, the edit stays
    assert Dataset.open(keys).get(rid)["fields"]["brand"] == "Edited"
    repo = [json.loads(x) for x in (ASSETS / "demo" / "keys" / "records.jsonl").read_text().splitlines() if x.strip()]
    assert next(r for r in repo if r["id"] == rid)["fields"]["brand"] != "Edited"


def test_blocks_build_with_every_tab(state):
    import gradio as gr

    from studio.app import TABS, build_app, launch_kwargs

    blocks = build_app(state)
    assert isinstance(blocks, gr.Blocks)
    ids = {getattr(b, "id", None) for b in blocks.blocks.values() if isinstance(b, gr.Tab)}
    assert set(TABS) <= ids
    kw = launch_kwargs()
    assert "ann-save" in kw["js"] and ".ts-badge" in kw["css"]


def test_sql_check_reports_line_and_column_and_tables():
    from core.tasks import get_task
    from studio.annotate_logic import sql_check

    task = get_task("ui2sql")
    html, rows, svg = sql_check(task, "CREATE TABLE a (id INT PRIMARY KEY);\nCREATE TABLE b (id INT,, a_id INT);")
    assert "line 2" in html and "error" in html
    html, rows, svg = sql_check(task, "CREATE TABLE a (id INT PRIMARY KEY);\n"
                                "CREATE TABLE b (id INT PRIMARY KEY, a_id INT REFERENCES a(id));")
    assert "valid" in html
    assert ["b", "a_id", "INT", "FK", "a(id)", ""] in rows
    assert svg.count("ts-er-table") == 2 and "marker-end" in svg  # two boxes, one FK arrow


def test_invalid_sql_saves_as_a_draft_and_nothing_is_lost(state):
    from studio.annotate_logic import save

    ds = Dataset.open(state.datasets_dir / "ui2sql")
    rec = ds.records()[0]
    bad = "CREATE TABLE t (\n  id INT,,\n  name TEXT\n)"
    saved, msg = save(ds, rec["id"], {"sql": bad}, rec["updated"])
    assert "draft" in msg and "line 2" in msg
    assert Dataset.open(ds.path).get(rec["id"])["fields"]["sql"] == bad  # nothing lost
    assert saved["status"] == "unlabeled"
    good = "CREATE TABLE t (id INT PRIMARY KEY, name TEXT)"
    saved2, msg2 = save(ds, rec["id"], {"sql": good}, saved["updated"], reviewed=True)
    assert saved2["status"] == "reviewed" and msg2 == "Saved as reviewed."


def test_conflicting_edit_is_refused_with_a_clear_error(state):
    from studio.annotate_logic import StampBook, save

    ds = Dataset.open(state.datasets_dir / "keys")
    rec = ds.records()[0]
    ds.set_fields(rec["id"], {"brand": "Theirs"})  # another user saves first
    with pytest.raises(StudioError, match="changed by someone else"):
        save(ds, rec["id"], {"keyway": "SC1", "bitting": [1, 2, 3, 4, 5], "brand": "Mine"}, rec["updated"])
    assert Dataset.open(ds.path).get(rec["id"])["fields"]["brand"] == "Theirs"
    saved, _ = save(ds, rec["id"], {"brand": "Mine"}, rec["updated"], force=True)
    assert saved["fields"]["brand"] == "Mine"
    book = StampBook()  # one session's own later stamp is not a conflict
    book.put("s1", str(ds.path), rec["id"], saved["updated"])
    assert book.get("s1", str(ds.path), rec["id"], rec["updated"]) == saved["updated"]
    assert book.get("s2", str(ds.path), rec["id"], rec["updated"]) == rec["updated"]


def test_key_inputs_follow_the_keyway():
    """The keys task's own editor behaviour, through the generic editor: the keyway sets the digit
    pickers and prefills the brand."""
    from core.tasks import get_task
    from studio.annotate_logic import digit_setup, digits_from_inputs, editor_plan, fields_from_editor, live_check

    task = get_task("keys")
    setup = digit_setup(task, "bitting", {"keyway": "SC1"})
    assert setup["positions"] == 5 and setup["digits"][0] == "1"
    assert task.prefill("keyway", {"keyway": "SC1", "brand": ""}) == {"brand": "Schlage"}
    assert task.prefill("keyway", {"keyway": "SC1", "brand": "My Brand"}) == {}
    plan = editor_plan(task)
    assert plan["digits"].name == "bitting" and [(f.name, k) for f, k in plan["slots"]] == [("keyway", "choice"),
                                                                                          ("brand", "text")]
    assert ("SC1 · Schlage · 5 cuts", "SC1") in plan["slots"][0][0].choices
    bitting = plan["digits"]
    assert digits_from_inputs(["1", "2", "5", "", ""], bitting) == [1, 2, 5]
    with pytest.raises(StudioError, match="position 2 is empty"):
        digits_from_inputs(["1", "", "5"], bitting)
    with pytest.raises(StudioError, match="Bitting position 1 is '0', not a digit 1-9"):  # the field's alphabet
        digits_from_inputs(["0", "2"], bitting)
    fields = fields_from_editor(task, {"keyway": "SC1", "brand": " Schlage ", "bitting": ["1", "2", "5", "3", "7"]})
    assert fields == {"keyway": "SC1", "bitting": [1, 2, 5, 3, 7], "brand": "Schlage"}
    out = live_check(task, fields)
    assert "valid" in out["status"] and out["target"] == "KEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage"
    assert "&quot;bitting&quot;: &quot;1,2,5,3,7&quot;" in out["preview"]  # the phone app's JSON
    assert "error" in live_check(task, {**fields, "bitting": [1, 2]})["status"]
    assert "empty" in live_check(task, {"keyway": "", "bitting": [], "brand": ""})["status"]  # untouched: neutral


def test_import_messages_say_each_thing_once(state, tmp_path):
    """Issue 27: "line 2: line 2 is not valid JSON" and "corrupt.png of corrupt.png"."""
    from studio.tabs.datasets import create_dataset, import_into

    ds = create_dataset(state.datasets_dir, "wording", "keys")
    good = sorted((state.datasets_dir / "keys" / "images").glob("*.png"))[0]
    (tmp_path / "corrupt.png").write_bytes(good.read_bytes()[:120])
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"image_path": good.name, "keyway": "SC1", "bittings": [1, 2, 3, 4, 5]}) + "\n"
                      + '{"image_path": "x.png", "keyway": \n')
    text = import_into(ds, [str(tmp_path / "corrupt.png"), str(labels)], None, allow_server_path=True)
    assert "- corrupt.png: " in text and "corrupt.png of" not in text, text
    assert "- line 2 of `labels.jsonl`: not valid JSON" in text and text.count("line 2") == 1, text


def test_the_annotators_label_is_not_called_a_models_answer():
    """Issue 27: the preview said "The model's answer did not parse" for the annotator's own empty
    label; a number field with only a minimum read "(0–)"."""
    from core.tasks import get_task
    from core.tasks.base import Field
    from studio.annotate_logic import live_check, range_hint

    keys, sql = get_task("keys"), get_task("ui2sql")
    for task, fields in ((keys, {}), (keys, {"keyway": "SC1", "bitting": [1, 2], "brand": "x"}), (sql, {}),
                         (sql, {"sql": "CREATE TABLE t (id INT,, name TEXT);"})):
        out = live_check(task, fields)
        assert "did not parse" not in out["preview"] and "answer" not in out["preview"], (task.name, fields)
        assert "once the label is complete and valid" in out["preview"]
    assert live_check(sql, {"sql": "CREATE TABLE t (id INT,, name TEXT);"})["rows"]  # the table keeps what parses
    assert "&quot;success&quot;: true" in live_check(keys, {"keyway": "SC1", "bitting": [1, 2, 5, 3, 7]})["preview"]
    assert [range_hint(Field("n", "number", "N", minimum=0)), range_hint(Field("n", "number", "N", maximum=9)),
            range_hint(Field("n", "number", "N", minimum=0, maximum=99999)), range_hint(Field("n", "number", "N"))] \
        == ["at least 0", "at most 9", "0–99999", ""]


def test_navigation_and_progress(state):
    from studio.annotate_logic import next_unlabeled, progress_html, queue, step

    ds = Dataset.open(state.datasets_dir / "keys")
    recs = ds.records()
    ids = [r["id"] for r in recs]
    assert step(ids, ids[0], -1) == ids[0] and step(ids, ids[0], 1) == ids[1] and step(ids, "nope", 1) == ids[0]
    ds.set_fields(ids[5], {"bitting": []})
    assert next_unlabeled(ds.records(), ids[0]) == ids[5]
    assert next_unlabeled(ds.records(), ids[5]) is None
    assert [r["id"] for r in queue(ds, "unlabeled")] == [ids[5]]
    assert f"{len(ids) - 1} labeled" in progress_html(ds.records(), ids[1])


def test_datasets_tab_create_import_report_split_export(state, tmp_path):
    from studio.tabs.datasets import create_dataset, export_dataset, import_into, overview_html, report_rows

    with pytest.raises(StudioError):
        create_dataset(state.datasets_dir, "../escape", "keys")
    ds = create_dataset(state.datasets_dir, "mine", "keys")
    src = sorted((state.datasets_dir / "keys" / "images").glob("*.png"))[:3]
    text = import_into(ds, [str(p) for p in src], None, allow_server_path=True)
    assert "Imported 3 new images" in text and ds.counts()["total"] == 3
    with pytest.raises(StudioError, match="disabled"):
        import_into(ds, None, str(tmp_path), allow_server_path=False)
    with open(ds.path / "records.jsonl", "a") as f:
        f.write("not a record\n")
    head, rows = report_rows(ds)
    assert rows[0][:3] == ["error", "records.jsonl line 4", "bad line"] and "1 error<" in head  # not "1 errors"
    assert "line 4" not in rows[0][3]  # said once (issue 27)
    assert "3" in overview_html(ds)
    keys = Dataset.open(state.datasets_dir / "keys")
    summary, archive = export_dataset(keys, "keylike", state.workspace / "exports")
    assert Path(archive).is_file() and "Exported" in summary


def test_train_config_from_knobs_and_demo_cap(state):
    from studio import train_logic as T

    cfg0 = T.preset_config(T.DEFAULTS_PRESET, "demo")
    vals = T.knob_values(cfg0)
    ds = state.datasets_dir / "keys"
    cfg, notes = T.config_from_knobs({**vals, "max_steps": 5.0, "image_size": None}, "demo", str(ds), "keys")
    assert cfg.max_steps == 5 and cfg.image_size is None and cfg.dataset == str(ds) and not notes
    cfg, notes = T.config_from_knobs({**vals, "max_steps": -1}, "demo", str(ds), "keys", demo_mode=True)
    assert cfg.max_steps == T.DEMO_MAX_STEPS and notes
    # the Space runs the demo base's own recipe uncut, so a visitor sees it learn
    from core.training.config import demo_recipe
    cfg, notes = T.config_from_knobs({**vals, "max_steps": demo_recipe("keys")["max_steps"]}, "demo", str(ds),
                                     "keys", demo_mode=True)
    assert cfg.max_steps == demo_recipe("keys")["max_steps"] and not any("capped" in n for n in notes)
    with pytest.raises(StudioError):
        T.config_from_knobs(vals, "google/gemma-3-4b-it", str(ds), "keys", demo_mode=True)
    from studio.planner_logic import planner_html
    gauge = planner_html(T.preset_config("Ghost Architect (T4)", "demo"), "t4")
    assert "Predicted peak" in gauge and "GiB" in gauge
    kp = T.knob_values(T.preset_config("Keylike", "demo"))
    assert kp["lora_r"] == 32 and kp["finetune_vision_layers"] is True
    grouped = {n for names in T.grouped_fields().values() for n in names}
    assert grouped | set(T.SET_ELSEWHERE) == set(T.C.FIELDS)


def test_command_preview_builds_the_same_config_from_the_cli(state):
    """The Train tab's `python -m core train …` line, parsed by the CLI, gives the form's config."""
    import argparse
    import shlex

    from core.cli import train as cli_train
    from core.training.hardware import detect
    from studio import train_logic as T

    vals = {**T.knob_values(T.preset_config(None, "demo")), "max_steps": 7, "lora_r": 8, "method": "lora",
            "target_modules": "q_proj, v_proj", "learning_rate": 5e-4, "image_size": None}
    cfg, _ = T.config_from_knobs(vals, "demo", str(state.datasets_dir / "keys"), "keys")
    line = T.command_preview(cfg, detect())
    words = shlex.split(line.replace("\\\n", " "))  # the shell's line continuations
    assert words[:4] == ["python", "-m", "core", "train"] and "max_steps=7" in words
    assert "target_modules=q_proj,v_proj" in words and "seed" not in line  # defaults are left out
    parser = argparse.ArgumentParser()
    cli_train.add_parser(parser.add_subparsers())
    args = parser.parse_args(words[3:])
    assert cli_train.build_config(args).to_dict() == cfg.to_dict()
    # a past run's settings load back into the form
    run = state.runs_dir / "old"
    run.mkdir(parents=True)
    cfg.save(run / "config.json")
    assert T.run_config(str(run)).to_dict() == cfg.to_dict()
    with pytest.raises(StudioError, match="No run is selected"):
        T.run_config(str(state.runs_dir / "missing"))


def test_train_start_refuses_an_empty_train_split(state):
    from studio import train_logic as T

    ds = Dataset.create(state.datasets_dir / "empty", "keys")
    cfg, _ = T.config_from_knobs(T.knob_values(T.preset_config(None, "demo")), "demo", str(ds.path), "keys")
    with pytest.raises(StudioError, match="no labeled records"):
        T.start(state, cfg)
    assert not any(state.runs_dir.iterdir())


def test_live_view_reads_a_run_folder(state):
    from studio import plots
    from studio import train_logic as T

    run = state.runs_dir / "r1"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model_id": "demo", "task": "keys"}))
    events = [{"type": "start", "time": 1, "max_steps": 10, "device": "CPU", "backend": "hf"},
              {"type": "log", "time": 2, "step": 5, "loss": 2.5, "lr": 1e-3, "eta_s": 30, "rss_gb": 1.2},
              {"type": "eval", "time": 3, "step": 5, "eval_loss": 2.7},
              {"type": "end", "time": 4, "status": "completed", "step": 10}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + '{"type": "lo')
    (run / "log.txt").write_text("a\rb\nline 2\n")
    st, ev = T.live(str(run))
    assert st["status"] == "completed" and len(ev) == 4
    html = T.status_html(st, ev)
    assert "completed" in html and "step <b id=\"train-step\">10/10</b>" in html
    assert "running" in T.status_html({"status": "running", "step": 0}, [])  # before the first log event
    assert T.log_tail(run).splitlines() == ["a", "b", "line 2"]
    # tqdm redraws (\r) collapse to the bar's last state, shown last; the kernels hub note goes
    (run / "log.txt").write_text(
        "loading\n  0%|          | 0/60 [00:00<?, ?it/s]\r 50%|#####     | 30/60 [00:03<00:03,  9.1it/s]"
        "\r100%|##########| 60/60 [00:06<00:00,  9.3it/s]\nFailed to load CPU gemm_4bit_forward from "
        "kernels-community: No module named 'kernels'.\ndone\n")
    assert T.log_tail(run).splitlines() == ["loading", "done", "100%|##########| 60/60 [00:06<00:00,  9.3it/s]"]
    fig = plots.loss_figure(ev)
    assert [t.name for t in fig.data] == ["train loss", "eval loss"]
    mem = plots.memory_figure(ev, 16)  # a CPU run: RAM, and no GPU budget line to compare it with
    assert mem.data[0].name == "process RAM" and not mem.layout.shapes and "RAM" in mem.layout.title.text
    gpu = plots.memory_figure([{"type": "log", "step": 1, "vram_alloc_gb": 3.0, "vram_reserved_gb": 4.0}], 14.75)
    assert gpu.layout.title.text == "GPU memory" and gpu.layout.shapes  # the budget line
    assert T.pick_run_on_load([{"path": "a", "status": "completed"}, {"path": "b", "status": "running"}]) == "b"
    assert T.run_rows([{"run_id": "r", "status": "running", "step": 3, "max_steps": 9, "loss": 1.0}])[0][4] == "3/9"
    assert T.run_rows([{"run_id": "r", "status": "running"}])[0][4] == "starting"  # not "0/?"


def test_phone_app_json_matches_the_api_shape():
    from core.api import KeysAnalysis
    from core.infer import Answer
    from core.tasks import get_task
    from studio.compare_logic import payload

    task = get_task("keys")
    text = "KEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage"
    ans = Answer(text=text, token_ids=[], token_probs=[], confidence=0.8, parsed=task.parse(text))
    out = payload(ans, task)
    assert set(out) == set(KeysAnalysis.model_fields)
    assert out["success"] and out["bitting"] == "1,2,5,3,7" and out["timeInMarket"] is not None
    bad = Answer(text="hello", token_ids=[], token_probs=[], confidence=0.1, parsed=task.parse("hello"))
    assert payload(bad, task)["success"] is False and "did not parse" in payload(bad, task)["error"]


def test_app_settings_are_safe_by_default():
    import app as studio_app

    s = studio_app.settings(studio_app.parse_args([]), env={})
    assert s["host"] == "127.0.0.1" and s["port"] == 7860 and not s["demo_mode"]
    with pytest.raises(SystemExit, match="Refusing"):
        studio_app.settings(studio_app.parse_args(["--host", "0.0.0.0"]), env={})
    with pytest.raises(SystemExit, match="Refusing"):
        studio_app.settings(studio_app.parse_args(["--share"]), env={})
    s = studio_app.settings(studio_app.parse_args(["--host", "0.0.0.0", "--auth", "a:b"]), env={})
    assert s["auth"] == ("a", "b")
    s = studio_app.settings(studio_app.parse_args([]), env={"SPACE_ID": "me/space"})
    assert s["host"] == "0.0.0.0" and s["port"] == 7860 and s["demo_mode"]


def test_server_serves_the_api_and_the_studio(state):
    from fastapi.testclient import TestClient

    import app as studio_app

    cfg = studio_app.settings(studio_app.parse_args(["--workspace", str(state.workspace)]), env={})
    server, _blocks, _state = studio_app.create_server(cfg)
    with TestClient(server) as c:
        assert c.get("/api/v1/health").json()["success"] is True
        page = c.get("/")
        assert page.status_code == 200 and "Trinity Studio" in page.text
        assert "googleapis" not in page.text and "cdn.jsdelivr" not in page.text


def test_an_empty_keyway_line_reads_as_empty():
    from core.tasks import get_task

    parsed = get_task("keys").parse("KEYWAY: --\nBITTING: 1,2,5,3,7\nBRAND: Schlage")
    messages = [e.message for e in parsed.errors]
    assert "The KEYWAY line names no keyway." in messages
    assert not any("Keyway ''" in m for m in messages)


def _as_the_page_sends(values: dict) -> dict:
    """What the browser's editors send back for values they were given: the code editor drops a
    trailing newline, a number comes back as a float, an empty dropdown as None."""
    out = {}
    for k, v in values.items():
        if isinstance(v, str) and "\n" in v:
            v = v.rstrip("\n")
        elif isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        out[k] = v
    return out


def test_an_untouched_editor_is_the_stored_label_for_every_record(state):
    """Issue 27: looking at a record rewrote it. The editor's values for a stored label, as the page
    sends them back, compare as unchanged for every demo record and a json record with an unset
    boolean and number; any real edit is a change."""
    from core.tasks import task_for_dataset
    from studio.annotate_logic import shown_values, unchanged

    for name in ("keys", "ui2sql"):
        ds = Dataset.open(state.datasets_dir / name)
        for rec in ds.records():
            sent = _as_the_page_sends(shown_values(ds.task, rec["fields"]))
            assert unchanged(ds.task, sent, rec["fields"]), (name, rec["id"])
    ds = Dataset.open(state.datasets_dir / "ui2sql")
    rec = next(r for r in ds.records() if r["fields"]["sql"].endswith("\n"))
    sent = shown_values(ds.task, rec["fields"])
    assert unchanged(ds.task, {**sent, "sql": rec["fields"]["sql"].rstrip() + "  \r\n"}, rec["fields"])
    assert not unchanged(ds.task, {**sent, "sql": rec["fields"]["sql"].replace("INTEGER", "BIGINT", 1)}, rec["fields"])
    assert not unchanged(ds.task, {**sent, "domain": "shop"}, rec["fields"])

    task = task_for_dataset({"task": "json", "name": "m", "schema": {
        "type": "object", "properties": {"reading": {"type": "integer"}, "ok": {"type": "boolean"},
                                         "dials": {"type": "array", "items": {"type": "number"}}}}})
    stored = {"reading": 12}  # "ok" and "dials" never set: the page shows an unticked box, an empty list
    sent = _as_the_page_sends(shown_values(task, stored))
    assert sent["ok"] is False and unchanged(task, sent, stored)
    assert not unchanged(task, {**sent, "ok": True}, stored)
    assert not unchanged(task, {**sent, "reading": 13.0}, stored)
    assert not unchanged(task, {**sent, "dials": "1.5\n2"}, stored)


def test_a_draft_comes_back_only_to_its_record_at_its_stamp(tmp_path):
    """studio/annotate_drafts.py: the browser's draft of a record is restored only for that dataset
    and record while the record still carries the stamp the typing was based on."""
    import os
    import stat

    from studio import annotate_drafts as D

    drafts = {D.key("/ws/d", "r1"): {"stamp": "t1", "values": ["a", "b"], "at": 1}}
    assert D.draft_values(drafts, "/ws/d", "r1", "t1", 2) == ["a", "b"]
    assert D.draft_values(drafts, "/ws/d", "r1", "t2", 2) is None      # someone saved it since
    assert D.draft_values(drafts, "/ws/d", "r2", "t1", 2) is None      # another record
    assert D.draft_values(drafts, "/ws/other", "r1", "t1", 2) is None  # the same record id elsewhere
    assert D.draft_values(drafts, "/ws/d", "r1", "t1", 3) is None      # another editor's shape
    assert D.draft_values("garbage", "/ws/d", "r1", "t1", 2) is None
    assert D.without(drafts, "/ws/d", "r1") == {}
    assert json.loads(D.held("/ws/d", "r1", "t2", after="t1")) == {"path": "/ws/d", "id": "r1", "updated": "t2",
                                                                 "from": "t1"}
    key = D.secret(tmp_path)
    assert key == D.secret(tmp_path) and len(key) == 32  # one key per workspace, kept across restarts
    assert stat.S_IMODE(os.stat(tmp_path / ".draft-key").st_mode) == 0o600
