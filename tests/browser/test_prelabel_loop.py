"""Model-assisted labeling in a real browser (issue 26): pre-label a dataset with a finished run from
the Annotate tab, accept one suggestion with Alt+A, correct one field of another and save, then
reload: both labels survive, the corrected field is marked as the person's, and the report counts
what was accepted unchanged."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.ui import ART, CHROMIUM, browser_page, error_badges, open_tab, pick, records, save_failure

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")

TARGET_A = "KEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage"


def _brand(pg):
    return pg.locator("#ann-brand textarea, #ann-brand input").first


def _shown(pg) -> str:
    return pg.inner_text("#ann-header code")


def _record(ws: Path, rid: str) -> dict:
    return next(r for r in records(ws, "k") if r["id"] == rid)


def test_prelabel_accept_correct_reload(trained_run, tmp_path, start_studio):
    from tests.test_prelabel import keys_dataset

    ws = tmp_path / "workspace"
    trained_run(TARGET_A, seed=1, into=ws / "runs" / "run_a")
    keys_dataset(ws / "datasets" / "k", labeled=3, unlabeled=4)
    with start_studio(ws, {"OMP_NUM_THREADS": "1"}) as s, browser_page(s.url) as pg:
        try:
            open_tab(pg, s.url, "k", "Annotate")
            pg.wait_for_selector("#ann-header code", timeout=60_000)
            pg.click("#ann-pl button")  # open the pre-label panel
            pick(pg, "ann-pl-run", "run_a", exact=False)
            pg.click("#ann-pl-go")
            pg.wait_for_selector("#ann-pl-state[data-status=completed]", timeout=180_000)
            assert "4 / 4 records answered · 4 suggestions" in pg.inner_text("#ann-pl-state")
            pick(pg, "ann-filter", "suggested")  # the queue of suggestions; the open record shows its own
            pg.wait_for_selector("#ann-suggestion-box", timeout=30_000)
            first = _shown(pg)
            assert "run_a" in pg.inner_text("#ann-suggestion-box")
            pg.wait_for_function("(document.querySelector('#ann-brand textarea, #ann-brand input')||{}).value"
                                 " === 'Schlage'", timeout=30_000)
            assert _record(ws, first)["fields"] == {} and _record(ws, first)["status"] == "suggested"
            pg.screenshot(path=str(ART / "prelabel_suggestion.png"), full_page=True)

            pg.keyboard.press("Alt+a")  # one key accepts it; the next suggestion opens
            pg.wait_for_selector("#ann-save-msg :text('Accepted')", timeout=30_000)
            pg.wait_for_function(f"document.querySelector('#ann-header code')?.innerText !== {first!r}",
                                 timeout=30_000)
            second = _shown(pg)
            pg.wait_for_function("(document.querySelector('#ann-brand textarea, #ann-brand input')||{}).value"
                                 " === 'Schlage'", timeout=30_000)
            _brand(pg).fill("Corrected brand")
            pg.click("#ann-save")
            pg.wait_for_selector("#ann-save-msg :text('Saved')", timeout=30_000)
            a, b = _record(ws, first), _record(ws, second)
            assert a["status"] == "labeled" and a["fields"]["brand"] == "Schlage" and a["prelabel"]["edited"] == []
            assert b["status"] == "labeled" and b["fields"]["brand"] == "Corrected brand"
            assert b["prelabel"]["edited"] == ["brand"] and b["prelabel"]["accepted"] == ["keyway", "bitting"]

            pg.reload()  # both survive, and the corrected one says whose its brand is
            pg.wait_for_selector("#ann-header code", timeout=60_000)
            pick(pg, "ann-filter", "labeled")
            for rid, words in ((second, "yours: Brand"), (first, "accepted unchanged")):
                pg.locator("#ann-gallery button").filter(has_text=rid[:8]).first.click()
                pg.wait_for_function(f"document.querySelector('#ann-header code')?.innerText === {rid!r}",
                                     timeout=30_000)
                pg.wait_for_selector(f"#ann-suggestion-box:has-text({words!r})", timeout=30_000)
            assert _brand(pg).input_value() == "Schlage"
            pg.locator("#ann-gallery button").filter(has_text=second[:8]).first.click()
            pg.wait_for_function("(document.querySelector('#ann-brand textarea, #ann-brand input')||{}).value"
                                 " === 'Corrected brand'", timeout=30_000)
            assert "✎ yours" in pg.inner_text("#ann-brand")
            pg.screenshot(path=str(ART / "prelabel_after_reload.png"), full_page=True)
            # the Datasets tab's report counts what the run's suggestions were worth
            pg.click("button[role=tab]:has-text('Datasets')")
            pg.click("#ds-validate")
            pg.wait_for_selector("text=run_a: 1/2 accepted unchanged", timeout=30_000)
            assert error_badges(pg) == 0
        except Exception:
            save_failure(pg, "prelabel_loop")
            raise
