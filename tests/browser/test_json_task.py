"""The json task in a real browser (Debian's /usr/bin/chromium, headless): create a dataset from a
pasted JSON Schema, label two images with the editor generated from it (an integer box, an enum
dropdown), train a few demo steps, and compare the base model with the run. Screenshots go to
test-artifacts/."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.browser.test_e2e import ARGS, ART, CHROMIUM, _open, _pick, _records

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")

SCHEMA = {"type": "object", "title": "water meter",
          "properties": {"reading": {"type": "integer", "minimum": 0, "maximum": 99999, "title": "Reading"},
                         "unit": {"type": "string", "enum": ["m3", "l"], "title": "Unit"}},
          "required": ["reading", "unit"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory, start_studio):
    with start_studio(tmp_path_factory.mktemp("json-e2e") / "workspace") as s:
        yield {"url": s.url, "ws": s.ws}


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request, page):
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        page.screenshot(path=str(ART / f"failure-{request.node.name}.png"), full_page=True)


@pytest.fixture(scope="module")
def page(server):
    ART.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1440, "height": 1000})
        yield pg
        browser.close()


def _meter_images(folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(2):
        im = Image.new("RGB", (128, 64), (240, 240, 240))
        ImageDraw.Draw(im).rectangle([6, 6, 30 + 40 * i, 50], fill=(20, 40 + 80 * i, 160))
        im.save(folder / f"meter{i}.png")
        out.append(str(folder / f"meter{i}.png"))
    return out


def test_json_task_from_schema_to_compare(page, server, tmp_path):
    pg, ws = page, server["ws"]
    name = f"meters-{uuid.uuid4().hex[:6]}"
    _open(pg, server, "ui2sql", "Datasets")
    pg.get_by_label("Name").fill(name)
    pg.get_by_label("Image -> JSON (fields from your JSON Schema)").check()
    pg.wait_for_selector("#ds-schema .cm-content", timeout=30_000)
    pg.click("#ds-schema .cm-content")
    pg.keyboard.insert_text(json.dumps(SCHEMA, indent=1))
    pg.click("#ds-create")
    pg.wait_for_function(f"document.querySelector('#ts-dataset input').value.includes('{name}')", timeout=30_000)
    meta = json.loads((ws / "datasets" / name / "dataset.json").read_text())
    assert meta["task"] == "json" and meta["schema"] == SCHEMA
    pg.locator("#ds-files input[type=file]").set_input_files(_meter_images(tmp_path))
    pg.wait_for_timeout(1500)
    pg.click("#ds-import")
    pg.wait_for_selector("text=Imported 2", timeout=60_000)
    pg.screenshot(path=str(ART / "json_datasets.png"), full_page=True)

    # the editor generated from the schema: integer -> number box, enum -> dropdown
    pg.click("button[role=tab]:has-text('Annotate')")
    pg.wait_for_selector("#ann-reading input", timeout=30_000)
    for reading, unit in (("42", "m3"), ("7", "l")):
        pg.wait_for_selector("#ann-header .ts-warn", timeout=30_000)  # an unlabeled record
        pg.fill("#ann-reading input", reading)
        _pick(pg, "ann-unit", unit)
        want = json.dumps({"reading": int(reading), "unit": unit}, separators=(",", ":"))
        pg.wait_for_selector(f"#ann-target :text('{want}')", timeout=20_000)
        pg.click("#ann-save")
        pg.wait_for_selector("#ann-save-msg :text('Saved as labeled')", timeout=30_000)
        pg.screenshot(path=str(ART / "json_annotate.png"), full_page=True)
        pg.click("#ann-next-unlabeled")
    recs = _records(ws, name)
    assert sorted((r["status"], r["fields"]["reading"], r["fields"]["unit"]) for r in recs) == \
        [("labeled", 7, "l"), ("labeled", 42, "m3")]
    # a value outside the schema is an error in the editor, not a silent save
    pg.fill("#ann-reading input", "-5")
    pg.wait_for_selector("#ann-check :text('less than the minimum of 0')", timeout=20_000)
    # put it back before the autosave timer keeps the bad value as a draft (which it would, by design)
    pg.fill("#ann-reading input", "7")
    pg.locator("#ann-reading input").press("Tab")
    pg.wait_for_function("!document.querySelector('#ann-check').innerText.includes('less than the minimum')",
                         timeout=20_000)
    pg.click("#ann-save")
    pg.wait_for_timeout(1000)

    # split, train a few demo steps, compare base and run
    pg.click("button[role=tab]:has-text('Datasets')")
    pg.click("#ds-split")
    pg.wait_for_timeout(1500)
    pg.click("button[role=tab]:has-text('Train')")
    pg.fill("#knob-max_steps input", "2")
    pg.get_by_text("Logging and checkpoints", exact=True).click()
    pg.fill("#knob-logging_steps input", "1")
    pg.fill("#knob-save_steps input", "2")
    pg.locator("#knob-save_steps input").press("Tab")
    pg.wait_for_timeout(500)
    pg.click("#train-start")
    pg.wait_for_selector("#train-status :text('completed')", timeout=300_000)
    _open(pg, server, name, "Compare")  # a fresh page: the record list is filled when a dataset opens
    pg.wait_for_function("document.querySelector('#cmp-run-a input').value.includes('completed')", timeout=60_000)
    pg.wait_for_function("document.querySelector('#cmp-record input').value.includes('labeled')", timeout=60_000)
    pg.fill("#cmp-tokens input[type=number]", "32")
    pg.locator("#cmp-tokens input[type=number]").press("Tab")
    pg.click("#cmp-go")
    pg.wait_for_selector("#cmp-verdict-1 :text('confidence')", timeout=240_000)
    assert "reading acc" in pg.inner_text("#cmp-verdict-1") and "unit acc" in pg.inner_text("#cmp-verdict-1")
    pg.screenshot(path=str(ART / "json_compare.png"), full_page=True)
