"""End to end in a real browser (Debian's /usr/bin/chromium, headless; never a downloaded one):
`python app.py` on a free port with a temp workspace; label a key photo and a screenshot through
the UI (invalid SQL shows its line and saves as a draft), train the demo model (reload during the
run, Stop works, a second run finishes), then Compare. Screenshots go to test-artifacts/."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.browser.ui import ART, CHROMIUM, ROOT, open_tab, pick, records, screenshot_on_failure  # noqa: F401
from tests.browser.ui import studio_fixtures

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)"),
    # Once seen: Gradio 6.31 answering an event's SSE stream with 404 (the session's queue entry
    # gone: routes.py sse_stream), that event's spinner up for good. Not reproduced since (3 runs
    # without reruns passed, 2026-12-01), after two autosave-timer fixes (its empty-dict answer failed
    # Gradio's output check on every idle tick; a tick wrote one record's editor into the next). A
    # failed attempt now leaves test-artifacts/failure-NAME.log (error answers, console errors): read
    # it before keeping this rerun or dropping it.
    pytest.mark.flaky(reruns=1),
]
pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")


server, page = studio_fixtures("e2e")


def _new_dataset(pg, server, name: str, task_label: str, image: Path):
    open_tab(pg, server["url"], "keys", "Datasets")
    pg.get_by_label("Name").fill(name)
    pg.get_by_label(task_label).check()
    pg.click("#ds-create")
    pg.wait_for_function(f"document.querySelector('#ts-dataset input').value.includes('{name}')", timeout=30_000)
    pg.locator("input[type=file]").first.set_input_files(str(image))
    pg.wait_for_timeout(1500)
    pg.click("#ds-import")
    pg.wait_for_selector("text=Imported 1", timeout=60_000)


def test_label_a_key_photo(page, server):
    pg, ws = page, server["ws"]
    key_png = sorted((ROOT / "assets/demo/keys/images").glob("*.png"))[0]
    name = f"e2e-keys-{uuid.uuid4().hex[:6]}"  # a rerun gets a dataset of its own
    _new_dataset(pg, server, name, "Key photo", key_png)
    pg.screenshot(path=str(ART / "tab_datasets.png"), full_page=True)
    pg.click("button[role=tab]:has-text('Annotate')")
    pg.wait_for_selector("#ann-header .ts-warn", timeout=30_000)  # the new record: unlabeled
    pick(pg, "ann-keyway", "SC1 · Schlage · 5 cuts")
    pg.wait_for_function("document.querySelector('#ann-brand textarea, #ann-brand input').value === 'Schlage'")
    for i, d in enumerate("12537", 1):
        pick(pg, f"ann-bit-{i}", d)
    pg.wait_for_selector("#ann-target :text('BITTING: 1,2,5,3,7')", timeout=20_000)
    pg.keyboard.press("Control+s")  # the save shortcut
    pg.wait_for_selector("#ann-save-msg :text('Saved as labeled')", timeout=30_000)
    rec = records(ws, name)[0]
    assert rec["status"] == "labeled" and rec["fields"] == {"keyway": "SC1", "bitting": [1, 2, 5, 3, 7],
                                                            "brand": "Schlage"}
    pg.screenshot(path=str(ART / "tab_annotate_keys.png"), full_page=True)


def test_label_a_screenshot_with_invalid_sql_first(page, server):
    pg, ws = page, server["ws"]
    shot = sorted((ROOT / "assets/demo/ui2sql/images").glob("*.png"))[0]
    name = f"e2e-sql-{uuid.uuid4().hex[:6]}"
    _new_dataset(pg, server, name, "UI screenshot", shot)
    pg.click("button[role=tab]:has-text('Annotate')")
    pg.wait_for_selector("#ann-sql .cm-content", timeout=30_000)
    bad = "CREATE TABLE users (\n  id INT PRIMARY KEY,,\n  name TEXT\n);"
    pg.click("#ann-sql .cm-content")
    pg.keyboard.insert_text(bad)
    pg.wait_for_selector("#ann-sql-status :text('line 2')", timeout=30_000)
    pg.click("#ann-save")
    pg.wait_for_selector("#ann-save-msg :text('Saved as a draft')", timeout=30_000)
    assert records(ws, name)[0]["fields"]["sql"] == bad  # nothing lost
    pg.screenshot(path=str(ART / "tab_annotate_sql_error.png"), full_page=True)
    pg.locator("#ann-sql .cm-content").focus()
    pg.keyboard.press("Control+a")
    good = ("CREATE TABLE users (\n  id INT PRIMARY KEY,\n  name TEXT\n);\n"
            "CREATE TABLE orders (\n  id INT PRIMARY KEY,\n  user_id INT REFERENCES users(id)\n);")
    pg.keyboard.insert_text(good)
    pg.wait_for_selector("#ann-sql-status :text('valid')", timeout=30_000)
    pg.click("#ann-save")
    pg.wait_for_selector("#ann-save-msg :text('Saved as labeled')", timeout=30_000)
    rec = records(ws, name)[0]
    assert rec["status"] == "labeled" and rec["fields"]["sql"] == good
    pg.click("button[role=tab]:has-text('Preview')")
    pg.wait_for_selector("#ann-preview svg .ts-er-table", timeout=10_000)
    pg.screenshot(path=str(ART / "tab_annotate_sql.png"), full_page=True)


def test_memory_gauge_for_the_seed_preset(page, server):
    """The Ghost Architect preset fits a T4 at 1024 tokens and not at 2048, as measured (and as
    `python -m core plan` predicts)."""
    from dataclasses import replace

    from core.training.config import preset
    from studio.planner_logic import plan_for

    # = python -m core plan --gpu t4 --dataset D: the gauge plans from the open dataset's longest example
    cfg = replace(preset("Ghost Architect (T4)"), dataset=str(server["ws"] / "datasets" / "ui2sql"))
    peak = plan_for(cfg, "t4")["predicted_peak_gb"]
    at_2048 = plan_for(replace(cfg, max_seq_length=2048), "t4")
    pg = page
    open_tab(pg, server["url"], "ui2sql", "Train")
    # issue 27: a CPU machine plans for itself first (no GPU slider, no CUDA context); a GPU elsewhere
    # can still be planned for
    pg.wait_for_selector("#train-gauge :text('Trains on this machine')", timeout=60_000)
    assert "CUDA" not in pg.inner_text("#train-gauge") and "CPU" in pg.inner_text("#train-backend")
    assert not pg.locator("#train-gpus").is_visible()
    pick(pg, "train-budget", "T4 · 16 GB (a GPU elsewhere)")
    pick(pg, "train-preset", "Ghost Architect (T4)")
    pg.wait_for_selector(f"#train-gauge :text('{peak:.2f} GiB')", timeout=60_000)
    gauge = pg.inner_text("#train-gauge")
    assert "14.75 GiB" in gauge and "does not fit" not in gauge and "fits" in gauge
    note = pg.inner_text("#train-preset-note")
    assert "Fits the T4 · 16 GB at 1024 tokens" in note and "Does not fit the T4 · 16 GB at 2048 tokens" in note
    pg.get_by_text("Memory and speed", exact=True).click()  # a closed accordion
    # The preset fills every knob in its own event: wait for it to land, or it overwrites our edit.
    pg.wait_for_function("document.querySelector('#knob-max_seq_length input')?.value === '1024'",
                         timeout=30_000)
    pg.fill("#knob-max_seq_length input", "2048")
    pg.locator("#knob-max_seq_length input").press("Tab")
    pg.wait_for_selector(f"#train-gauge :text('{at_2048['predicted_peak_gb']:.2f} GiB')", timeout=30_000)
    gauge = pg.inner_text("#train-gauge")
    assert ("does not fit" in gauge) == (not at_2048["fits"])
    assert f"{at_2048['sequence']['tokens']} tokens" in gauge  # the length it planned with, and why
    pg.screenshot(path=str(ART / "tab_train_planner.png"), full_page=True)


def _start_run(pg, server, steps: int) -> str:
    open_tab(pg, server["url"], "keys", "Train")
    pg.fill("#knob-max_steps input", str(steps))
    pg.get_by_text("Logging and checkpoints", exact=True).click()  # a closed accordion
    pg.fill("#knob-logging_steps input", "1")
    pg.fill("#knob-save_steps input", "2")
    pg.locator("#knob-save_steps input").press("Tab")
    pg.wait_for_timeout(500)
    pg.click("#train-start")
    pg.wait_for_selector("#train-status :text('running')", timeout=60_000)
    return pg.input_value("#train-run input")


def _run_dir(ws: Path) -> Path:
    return max((p for p in (ws / "runs").iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)


def test_reload_during_a_run_reattaches_and_stop_works(page, server):
    pg, ws = page, server["ws"]
    _start_run(pg, server, 400)
    run = _run_dir(ws)
    pg.wait_for_selector("#train-loss :text('train loss')", timeout=240_000)  # the curve has points
    pg.reload()  # a page reload during the run...
    pg.click("button[role=tab]:has-text('Train')")
    pg.wait_for_function(f"document.querySelector('#train-run input').value.includes('{run.name}')", timeout=60_000)
    pg.wait_for_selector("#train-status :text('running')", timeout=30_000)  # ...shows the same run
    pg.wait_for_selector("#train-loss :text('train loss')", timeout=30_000)
    pg.click("#train-stop")
    pg.wait_for_selector("#train-status :text('stopped')", timeout=240_000)
    assert json.loads((run / "events.jsonl").read_text().splitlines()[-1])["status"] == "stopped"
    # issue 27: the Run picker's label follows (it said "· running" after Stop)
    pg.wait_for_function("document.querySelector('#train-run input').value.includes('stopped')", timeout=30_000)


def test_a_short_run_finishes_with_curves(page, server):
    pg, ws = page, server["ws"]
    _start_run(pg, server, 12)
    pg.wait_for_function("document.querySelectorAll('#train-loss .scatterlayer .point').length >= 4",
                         timeout=240_000)
    pg.screenshot(path=str(ART / "train_live.png"), full_page=True)  # the README's is test_studio_life's
    pg.wait_for_selector("#train-status :text('completed')", timeout=300_000)
    pg.wait_for_function("document.querySelector('#train-run input').value.includes('completed')", timeout=30_000)
    pg.screenshot(path=str(ART / "tab_train.png"), full_page=True)
    assert (_run_dir(ws) / "model" / "config.json").is_file() or (_run_dir(ws) / "adapter").is_dir()


def test_compare_base_and_run(page, server):
    pg = page
    open_tab(pg, server["url"], "keys", "Compare")
    pg.wait_for_function("document.querySelector('#cmp-run-a input').value.includes('completed')", timeout=60_000)
    pg.wait_for_function("document.querySelector('#cmp-record input').value.includes('labeled')", timeout=60_000)
    pg.click("#cmp-go")
    pg.wait_for_selector("#cmp-verdict-0 :text('confidence')", timeout=240_000)
    pg.wait_for_selector("#cmp-verdict-1 :text('confidence')", timeout=60_000)
    assert "keyway acc" in pg.inner_text("#cmp-verdict-1")  # scored against the record's label
    pg.screenshot(path=str(ART / "tab_compare.png"), full_page=True)
    assert not pg.outside_requests, f"requests left the machine: {pg.outside_requests[:5]}"


def _pick_completed_run(pg, elem_id: str):
    pg.click(f"#{elem_id} input")
    pg.locator(f"#{elem_id}").get_by_role("option").filter(has_text="completed").first.click()


def test_evaluate_and_export_a_lora_run(page, server):
    """The demo base trains a LoRA adapter by default: Evaluate scores it, Export offers the adapter
    first (a full fine-tune's formats are test_studio_engine's test_export_tab_follows_the_run_kind)."""
    pg = page
    newest = _run_dir(server["ws"]).name  # the 12-step run, finished last
    open_tab(pg, server["url"], "keys", "Evaluate")
    # issue 27: the newest finished run is picked (as Compare does), not "No run picked"
    pg.wait_for_function(f"document.querySelector('#eval-run input').value.includes('{newest}')", timeout=30_000)
    _pick_completed_run(pg, "eval-run")
    pg.fill("#eval-limit input", "2")
    pg.click("#eval-go")
    pg.wait_for_selector("#eval-summary :text('keyway')", timeout=240_000)
    pg.screenshot(path=str(ART / "tab_evaluate.png"), full_page=True)
    pg.click("button[role=tab]:has-text('Export')")
    pg.wait_for_function(f"document.querySelector('#export-run input').value.includes('{newest}')", timeout=30_000)
    pg.get_by_text("Serve over the API", exact=True).click()  # its list is filled without its own Refresh
    pg.click("#serve-runs input")
    pg.locator("#serve-runs").get_by_role("option").filter(has_text=newest).first.wait_for(timeout=10_000)
    pg.keyboard.press("Escape")
    _pick_completed_run(pg, "export-run")
    pg.wait_for_selector("#export-where :text('is a LoRA run')", timeout=30_000)
    assert pg.locator("#export-format input[value=adapter]").is_checked()
    assert pg.locator("#export-format input[value=merged]").count() == 1
    pg.click("#export-go")
    pg.wait_for_selector("#export-verdict :text('Wrote the adapter export')", timeout=240_000)
    pg.screenshot(path=str(ART / "tab_export.png"), full_page=True)
    assert not pg.outside_requests, f"requests left the machine: {pg.outside_requests[:5]}"
