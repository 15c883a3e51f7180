"""Annotating as a person does (issue 15), in a real browser: opening the tab writes nothing, a
second render of the record on screen keeps what was typed, an edit left alone is autosaved on a
timer, two browser sessions on one record get a clear conflict instead of a silent overwrite, a new
key record reads "empty" (not red errors), and GENERIC's seven cut boxes sit in one even row."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.browser.ui import ART, CHROMIUM, ROOT, error_badges, open_tab, pick, records, wait_dataset
from tests.browser.ui import studio_fixtures

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")


server, page = studio_fixtures("annotate")


def _brand(pg):
    return pg.locator("#ann-brand textarea, #ann-brand input").first


def _type_brand(pg, text: str):
    """Types into the brand box as a person does, key by key (Playwright's fill() sends no key events,
    and Gradio reports a typed edit from them)."""
    _brand(pg).click()
    pg.keyboard.press("Control+a")
    pg.keyboard.type(text)


def _record_on_disk(ws: Path, rid: str) -> dict:
    return next(r for r in records(ws, "keys") if r["id"] == rid)


def _on_screen(pg, ws: Path) -> str:
    """Waits until the record is rendered (its stored brand in the box), as a person reads before typing."""
    pg.wait_for_selector("#ann-header code", timeout=60_000)
    rid = pg.inner_text("#ann-header code")
    stored = _record_on_disk(ws, rid)["fields"].get("brand", "")
    pg.wait_for_function(f"(document.querySelector('#ann-brand textarea, #ann-brand input')||{{}}).value === {stored!r}",
                         timeout=30_000)
    return rid


def test_opening_the_tab_writes_nothing(page, server):
    """Opening Annotate while the page load's render is still on its way used to save the editor's
    initial, empty values over the record on screen (its labels gone, status unlabeled). A race, so
    the page is opened three times; each time the dataset file must be byte for byte as it was."""
    before = (server["ws"] / "datasets" / "keys" / "records.jsonl").read_bytes()
    for _ in range(3):
        open_tab(page, server["url"], "keys", "Annotate")  # at once, as soon as the dataset shows
        _on_screen(page, server["ws"])
        page.wait_for_timeout(1500)  # the tab's own render has come back
        assert (server["ws"] / "datasets" / "keys" / "records.jsonl").read_bytes() == before
    assert error_badges(page) == 0


def test_an_edit_left_alone_is_autosaved(page, server):
    from studio.tabs.annotate import AUTOSAVE_S

    pg = page
    open_tab(pg, server["url"], "keys", "Annotate")
    rid = _on_screen(pg, server["ws"])
    _brand(pg).fill("Left alone")
    # no Save, no Next: the timer saves it
    pg.wait_for_selector("#ann-save-msg :text('Autosaved')", timeout=(AUTOSAVE_S * 3 + 30) * 1000)
    assert _record_on_disk(server["ws"], rid)["fields"]["brand"] == "Left alone"


def test_showing_the_record_on_screen_again_keeps_what_was_typed(page, server):
    """A second render of the record the editor holds (the page load's dataset event arriving late,
    coming back to the tab) must not put the stored values back over the typing: the next save would
    write the stale values over the user's own acknowledged save (test_kill9 saw exactly that)."""
    pg = page
    open_tab(pg, server["url"], "keys", "Annotate")
    rid = _on_screen(pg, server["ws"])
    stored = _record_on_disk(server["ws"], rid)["fields"].get("brand", "")
    pg.uncheck("#ann-autosave input")  # nothing saves the typing on the way: the editor alone holds it
    try:
        _brand(pg).fill("Typed, not saved")
        pg.click("button[role=tab]:has-text('Datasets')")
        pg.click("button[role=tab]:has-text('Annotate')")
        pg.wait_for_selector("#ann-counter", timeout=30_000)
        pg.wait_for_timeout(1500)  # the tab's render has come back
        assert pg.inner_text("#ann-header code") == rid
        assert _brand(pg).input_value() == "Typed, not saved"
        assert _record_on_disk(server["ws"], rid)["fields"].get("brand", "") == stored
        pg.click("#ann-save")
        pg.wait_for_selector("#ann-save-msg :text('Saved')", timeout=30_000)
        assert _record_on_disk(server["ws"], rid)["fields"]["brand"] == "Typed, not saved"
    finally:
        pg.check("#ann-autosave input")


def test_two_sessions_on_one_record_get_a_conflict_not_an_overwrite(page, server):
    pg = page
    open_tab(pg, server["url"], "keys", "Annotate")
    rid = _on_screen(pg, server["ws"])
    pg.uncheck("#ann-autosave input")  # this session saves by hand only
    ctx = pg.context.browser.new_context(viewport={"width": 1440, "height": 1000})  # a second person
    other = ctx.new_page()
    try:
        open_tab(other, server["url"], "keys", "Annotate")
        assert _on_screen(other, server["ws"]) == rid
        _brand(other).fill("Theirs")
        other.click("#ann-save")
        other.wait_for_selector("#ann-save-msg :text('Saved')", timeout=30_000)
    finally:
        ctx.close()
    _brand(pg).fill("Mine")
    pg.click("#ann-save")
    pg.wait_for_selector("#ann-save-msg :text('changed by someone else')", timeout=30_000)
    assert pg.locator("#ann-reload").is_visible() and pg.locator("#ann-force").is_visible()
    assert _record_on_disk(server["ws"], rid)["fields"]["brand"] == "Theirs"  # not silently overwritten
    assert error_badges(pg) == 0
    pg.screenshot(path=str(ART / "annotate_conflict.png"), full_page=True)
    pg.click("#ann-reload")  # their version comes in
    pg.wait_for_function("(document.querySelector('#ann-brand textarea, #ann-brand input')||{}).value === 'Theirs'",
                         timeout=30_000)
    pg.check("#ann-autosave input")


def test_a_new_key_record_reads_empty_and_generic_cuts_sit_in_one_row(page, server):
    pg = page
    open_tab(pg, server["url"], "keys", "Datasets")
    pg.get_by_label("Name").fill("fresh-keys")
    pg.get_by_label("Key photo").check()
    pg.click("#ds-create")
    wait_dataset(pg, "fresh-keys", timeout=30_000)
    key_png = sorted((ROOT / "assets/demo/keys/images").glob("*.png"))[0]
    pg.locator("input[type=file]").first.set_input_files(str(key_png))
    pg.wait_for_timeout(1500)
    pg.click("#ds-import")
    pg.wait_for_selector("text=Imported 1 new image", timeout=60_000)
    pg.click("button[role=tab]:has-text('Annotate')")
    pg.wait_for_selector("#ann-check :text('empty')", timeout=30_000)
    assert "error" not in pg.inner_text("#ann-check").lower()  # untouched: neutral, not "2 errors"
    pick(pg, "ann-keyway", "GENERIC", exact=False)
    pg.wait_for_selector("#ann-bit-7", state="visible", timeout=20_000)
    boxes = [pg.locator(f"#ann-bit-{i}").bounding_box() for i in range(1, 8)]
    assert len({round(b["y"]) for b in boxes}) == 1, boxes  # one row, none wrapped
    assert max(b["width"] for b in boxes) - min(b["width"] for b in boxes) < 2  # even widths
    pg.screenshot(path=str(ART / "tab_annotate_keys.png"), full_page=True)


def _sql_records(ws: Path) -> Path:
    return ws / "datasets" / "ui2sql" / "records.jsonl"


def _sql_on_screen(pg, ws: Path) -> str:
    """Waits until the SQL editor shows the stored SQL of the record in the header (as a person reads)."""
    pg.wait_for_selector("#ann-header code", timeout=60_000)
    rid = pg.inner_text("#ann-header code")
    stored = next(r for r in records(ws, "ui2sql") if r["id"] == rid)["fields"]["sql"]
    first = stored.strip().splitlines()[0]
    pg.wait_for_function(f"(document.querySelector('#ann-sql .cm-content')||{{}}).innerText?.includes({first!r})",
                         timeout=30_000)
    return rid


def test_looking_at_records_writes_nothing(page, server):
    """Issue 27: opening Annotate on the ui2sql demo said "Saved as labeled." with no edit, and every
    record paged past with Next was rewritten (its SQL's trailing newline gone, `updated` reset).
    Looking is not editing: the file stays byte for byte, through Next, Prev and an autosave tick.
    An edit is saved, and the save keeps the file's mode (it used to turn 644 into 600)."""
    import os
    import stat
    import time

    from studio.tabs.annotate import AUTOSAVE_S

    pg, ws = page, server["ws"]
    path = _sql_records(ws)
    os.chmod(path, 0o644)
    before = path.read_bytes()
    assert any(r["fields"]["sql"].endswith("\n") for r in records(ws, "ui2sql"))  # what the editor drops
    open_tab(pg, server["url"], "ui2sql", "Annotate")
    t0 = time.monotonic()
    seen = [_sql_on_screen(pg, ws)]
    for move in ("#ann-next", "#ann-next", "#ann-next", "#ann-prev"):
        pg.click(move)
        pg.wait_for_function(f"document.querySelector('#ann-header code')?.innerText !== {seen[-1]!r}",
                             timeout=30_000)
        seen.append(_sql_on_screen(pg, ws))
        assert "Saved" not in pg.inner_text("#ann-save-msg")
    pg.wait_for_timeout(max(0, (AUTOSAVE_S + 3) - (time.monotonic() - t0)) * 1000)  # an autosave tick passed
    assert "saved" not in pg.inner_text("#ann-save-msg").lower()
    assert path.read_bytes() == before, "a record nobody edited was rewritten"

    rid = seen[-1]
    pg.locator("#ann-sql .cm-content").focus()
    pg.keyboard.press("Control+End")
    pg.keyboard.insert_text("\nCREATE TABLE notes (id INT PRIMARY KEY);")
    pg.wait_for_selector("#ann-sql-status :text('valid')", timeout=30_000)
    pg.click("#ann-save")
    pg.wait_for_selector("#ann-save-msg :text('Saved as labeled')", timeout=30_000)
    after = records(ws, "ui2sql")
    assert next(r for r in after if r["id"] == rid)["fields"]["sql"].endswith("CREATE TABLE notes (id INT PRIMARY KEY);")
    old_lines = {json.loads(x)["id"]: x for x in before.decode().splitlines()}
    new_lines = {json.loads(x)["id"]: x for x in path.read_text().splitlines()}
    assert [i for i in old_lines if old_lines[i] != new_lines[i]] == [rid]  # only the edited record changed
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_reload_keeps_what_was_typed(page, server):
    """Issue 27: a reload lost what was typed since the last autosave. The typing is kept in the
    browser and comes back on the same record after a reload; it never lands on another record, nor
    over someone else's newer save of that record."""
    pg, ws = page, server["ws"]
    open_tab(pg, server["url"], "keys", "Annotate")
    first = _on_screen(pg, ws)
    pg.click("#ann-next")
    pg.wait_for_function(f"document.querySelector('#ann-header code')?.innerText !== {first!r}", timeout=30_000)
    rid = _on_screen(pg, ws)
    stored = _record_on_disk(ws, rid)
    _type_brand(pg, "Typed before the reload")
    pg.wait_for_timeout(500)
    pg.reload()  # well within the 15 s autosave
    _brand(pg).wait_for(timeout=60_000)
    pg.wait_for_function("(document.querySelector('#ann-brand textarea, #ann-brand input')||{}).value === "
                         "'Typed before the reload'", timeout=30_000)
    assert pg.inner_text("#ann-header code") == rid
    assert "Restored" in pg.inner_text("#ann-save-msg")
    pg.click("#ann-save")
    pg.wait_for_selector("#ann-save-msg :text('Saved')", timeout=30_000)
    assert _record_on_disk(ws, rid)["fields"]["brand"] == "Typed before the reload"
    assert {k: v for k, v in _record_on_disk(ws, rid)["fields"].items() if k != "brand"} == \
        {k: v for k, v in stored["fields"].items() if k != "brand"}

    # the next record shows its own label, not the draft
    pg.click("#ann-next")
    pg.wait_for_function(f"document.querySelector('#ann-header code')?.innerText !== {rid!r}", timeout=30_000)
    other = _on_screen(pg, ws)
    assert _brand(pg).input_value() == _record_on_disk(ws, other)["fields"].get("brand", "")

    # a draft of a record someone else saved since is not put over their save
    pg.uncheck("#ann-autosave input")
    try:
        _type_brand(pg, "My draft")
        pg.wait_for_timeout(500)
        ctx = pg.context.browser.new_context(viewport={"width": 1440, "height": 1000})  # another person
        them = ctx.new_page()
        try:
            open_tab(them, server["url"], "keys", "Annotate")
            _on_screen(them, ws)
            them.evaluate(f"() => {{ const u = new URL(location.href); u.searchParams.set('record', {other!r}); "
                          "location.href = u.href; }")
            them.wait_for_function(f"document.querySelector('#ann-header code')?.innerText === {other!r}",
                                   timeout=60_000)
            _on_screen(them, ws)
            _brand(them).fill("Their save")
            them.click("#ann-save")
            them.wait_for_selector("#ann-save-msg :text('Saved')", timeout=30_000)
        finally:
            ctx.close()
        pg.reload()
        _brand(pg).wait_for(timeout=60_000)
        pg.wait_for_function(f"document.querySelector('#ann-header code')?.innerText === {other!r}", timeout=60_000)
        assert _on_screen(pg, ws) == other  # the stored brand, theirs
        assert _brand(pg).input_value() == "Their save"
        assert "Restored" not in pg.inner_text("#ann-save-msg")
    finally:
        pg.check("#ann-autosave input")


def test_save_and_next_with_one_key(page, server):
    """The peers' "save and next" (issue 27): Ctrl+Enter, shown on the page, saves the record as the
    Save button does (autosave off too) and opens the next one; on an untouched record it only moves."""
    pg, ws = page, server["ws"]
    path = ws / "datasets" / "keys" / "records.jsonl"
    open_tab(pg, server["url"], "keys", "Annotate")
    rid = _on_screen(pg, ws)
    assert "Ctrl+Enter save and next" in pg.inner_text(".ts-shortcuts")
    pg.uncheck("#ann-autosave input")
    try:
        _type_brand(pg, "Saved with one key")
        pg.keyboard.press("Control+Enter")
        pg.wait_for_function(f"document.querySelector('#ann-header code')?.innerText !== {rid!r}", timeout=30_000)
        nxt = _on_screen(pg, ws)
        assert f"Saved {rid[:8]}" in pg.inner_text("#ann-save-msg")
        assert _record_on_disk(ws, rid)["fields"]["brand"] == "Saved with one key"
        before = path.read_bytes()
        pg.keyboard.press("Control+Enter")  # untouched: moves on, writes nothing, says nothing
        pg.wait_for_function(f"document.querySelector('#ann-header code')?.innerText !== {nxt!r}", timeout=30_000)
        _on_screen(pg, ws)
        changed = [(a, b) for a, b in zip(before.decode().splitlines(), path.read_text().splitlines()) if a != b]
        assert path.read_bytes() == before, changed
        assert "Saved" not in pg.inner_text("#ann-save-msg") and "No changes" not in pg.inner_text("#ann-save-msg")
    finally:
        pg.check("#ann-autosave input")
