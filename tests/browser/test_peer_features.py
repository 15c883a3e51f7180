"""Issue 27's peer features in a real browser (Debian's /usr/bin/chromium, headless), as a person uses
them: a receipt dataset whose line items are edited as a table of rows (nested JSON Schema), a
custom base model checked in the Train tab and trained on, and the Playground asking a run and the
base about a receipt with a free prompt. Screenshots go to test-artifacts/."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from receipt_images import RECEIPT_SCHEMA, receipt_fields, receipt_image
from tests.browser.ui import ART, CHROMIUM, error_badges, open_tab, pick, records, screenshot_on_failure  # noqa: F401
from tests.browser.ui import studio_fixtures, toasts

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")

server, page = studio_fixtures("peer-features")
RECEIPT = '{"items":[{"name":"Tea","price":3.5,"qty":2}],"total":7.0,"vendor":"Corner Cafe"}'


@pytest.fixture(scope="module")
def receipts(server):
    """A json dataset of three labelled receipts of one template (line items: a list of objects)."""
    from core.dataset import Dataset

    ds = Dataset.create(server["ws"] / "datasets" / "receipts", "json", config={"schema": RECEIPT_SCHEMA})
    for seed in range(3):
        buf = io.BytesIO()
        receipt_image(seed).save(buf, "PNG")
        rec, _ = ds.add_image(buf.getvalue(), fields=receipt_fields(seed))
        ds.save_record({**rec, "split": "train"})
    return ds


def _cell(pg, field: str, row: int, col: int, text: str):
    """Types into one cell of a table editor: a double click opens the cell, Enter closes it."""
    pg.dblclick(f"#ann-{field} [data-testid=cell-{row}-{col}]")
    pg.wait_for_selector(f"#ann-{field} textarea[aria-label='Edit cell']", timeout=10_000)
    pg.keyboard.press("Control+A")  # the cell's old text goes
    pg.keyboard.type(text)
    pg.keyboard.press("Enter")
    pg.wait_for_timeout(300)


def test_line_items_are_a_table_of_rows(page, server, receipts):
    pg, ws = page, server["ws"]
    open_tab(pg, server["url"], "receipts", "Annotate")
    pg.wait_for_selector("#ann-items [data-testid=cell-0-0]", timeout=60_000)
    first = records(ws, "receipts")[0]
    n = len(first["fields"]["items"])
    headers = [h.inner_text().strip() for h in pg.locator("#ann-items th[role=columnheader]").all()]
    assert headers == ["name", "qty", "price"]
    shown = [pg.inner_text(f"#ann-items [data-testid=cell-{r}-0]").strip() for r in range(n)]
    assert shown == [i["name"] for i in first["fields"]["items"]]
    # a bad quantity is named with its row and column while typing
    _cell(pg, "items", n, 0, "Bagel")
    _cell(pg, "items", n, 1, "two")
    pg.wait_for_selector(f"#ann-check :text('qty in row {n + 1}')", timeout=20_000)
    assert "is not a number" in pg.inner_text("#ann-check")
    _cell(pg, "items", n, 1, "2")
    _cell(pg, "items", n, 2, "1.5")
    pg.wait_for_function("document.querySelector('#ann-check').innerText.includes('valid')", timeout=20_000)
    pg.click("#ann-save")
    pg.wait_for_selector("#ann-save-msg :text('Saved as labeled')", timeout=30_000)
    pg.screenshot(path=str(ART / "peer_table_editor.png"), full_page=True)
    saved = next(r for r in records(ws, "receipts") if r["id"] == first["id"])
    assert saved["status"] == "labeled"
    assert saved["fields"]["items"] == first["fields"]["items"] + [{"name": "Bagel", "qty": 2, "price": 1.5}]
    # after a reload the record comes back with its new row, and an empty row to type the next into
    open_tab(pg, server["url"], "receipts", "Annotate")
    pg.wait_for_selector(f"#ann-items [data-testid=cell-{n}-0]", timeout=60_000)
    assert pg.inner_text(f"#ann-items [data-testid=cell-{n}-0]").strip() == "Bagel"
    assert pg.inner_text(f"#ann-items [data-testid=cell-{n + 1}-0]").strip() == ""
    assert error_badges(pg) == 0


def test_a_custom_base_model_is_checked_and_trained_on(page, server, receipts, demo_model_path, tmp_path):
    pg, ws = page, server["ws"]
    mine = shutil.copytree(demo_model_path, tmp_path / "my-gemma")
    other = shutil.copytree(demo_model_path, tmp_path / "not-gemma", ignore=shutil.ignore_patterns("*.safetensors"))
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**cfg, "model_type": "llama"}))
    open_tab(pg, server["url"], "receipts", "Train")
    box = "#train-custom-model input, #train-custom-model textarea"
    for ref, says in ((str(tmp_path / "nowhere"), "There is no folder"), (str(other), "holds a 'llama' model")):
        pg.fill(box, ref)
        pg.click("#train-custom-check")
        pg.wait_for_function(f"document.querySelector('#train-custom-msg').innerText.includes({says!r})",
                             timeout=30_000)
        assert "✗" in pg.inner_text("#train-custom-msg")
    pg.fill(box, str(mine))
    pg.locator(box).press("Enter")  # Enter checks too
    pg.wait_for_function("document.querySelector('#train-custom-msg').innerText.includes('✓ Gemma 3 local folder')",
                         timeout=30_000)
    pg.wait_for_function("document.querySelector('#train-model input').value.includes('custom')", timeout=30_000)
    assert str(mine) in pg.input_value("#train-model input")
    pg.wait_for_selector(f"#train-command :text('--model {mine}')", timeout=30_000)
    pg.screenshot(path=str(ART / "peer_custom_model.png"), full_page=False)
    pg.fill("#knob-max_steps input", "1")
    pg.locator("#knob-max_steps input").press("Tab")
    pg.wait_for_timeout(500)
    pg.click("#train-start")
    pg.wait_for_selector("#train-status-box :text('completed')", timeout=300_000)
    run = max((p for p in (ws / "runs").iterdir() if (p / "config.json").is_file()), key=lambda p: p.stat().st_mtime)
    assert json.loads((run / "config.json").read_text())["model_id"] == str(mine.resolve())
    assert (run / "adapter" / "adapter_config.json").is_file()
    assert "holds a" not in toasts(pg) and error_badges(pg) == 0


def test_the_playground_asks_a_run_and_the_base(page, server, receipts, trained_run, tmp_path):
    pg, ws = page, server["ws"]
    # a run that memorised one receipt's JSON (the product's training job), put in this workspace
    trained_run(RECEIPT, task="json", schema=RECEIPT_SCHEMA, seed=3, into=ws / "runs" / "receipt-memo")
    picture = tmp_path / "receipt.png"
    receipt_image(7).save(picture)
    open_tab(pg, server["url"], "receipts", "Playground")
    pg.click("#pg-refresh")
    pick(pg, "pg-model", "run · receipt-memo", exact=False)
    pg.locator("#pg-image input[type=file]").set_input_files(str(picture))
    pg.wait_for_selector("#pg-image img", timeout=30_000)
    pg.click("#pg-task-prompt")
    pg.wait_for_function("document.querySelector('#pg-prompt textarea').value.includes('line item')", timeout=30_000)
    pg.click("#pg-go")
    pg.wait_for_selector("#pg-verdict :text('parses')", timeout=240_000)
    assert "does not parse" not in pg.inner_text("#pg-verdict")
    pg.wait_for_function("document.querySelector('#pg-parsed').innerText.includes('Corner Cafe')", timeout=30_000)
    assert RECEIPT in pg.inner_text("#pg-answer").replace("\n", "")
    pg.screenshot(path=str(ART / "peer_playground.png"), full_page=True)
    # the base model, a free question: its raw answer, which is no receipt JSON
    pick(pg, "pg-model", "base · demo")
    pg.fill("#pg-prompt textarea", "What is written at the top of this paper?")
    pg.click("#pg-go")
    pg.wait_for_selector("#pg-verdict :text('does not parse')", timeout=240_000)
    assert pg.inner_text("#pg-answer").strip() and "base · demo" in pg.inner_text("#pg-title")
    # a fresh page, no image yet: one clear message, nothing red
    open_tab(pg, server["url"], "receipts", "Playground")
    pg.fill("#pg-prompt textarea", "Anything?")
    pg.click("#pg-go")
    pg.wait_for_selector(".toast-body :text('No image yet')", timeout=30_000)
    assert error_badges(pg) == 0
    assert not pg.outside_requests, f"requests left the machine: {pg.outside_requests[:5]}"
