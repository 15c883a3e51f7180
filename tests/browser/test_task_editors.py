"""The Annotate editor of every installed task, in a real browser (Debian's /usr/bin/chromium, headless),
with the example meter task installed too (tests/example_tasks/meter, under core/tasks/ for this module
only): each dataset of a task's own samples opens in Annotate, every field's editor shows its stored value,
and no component errors. On the meter: a reading with zeros shows digit by digit, a 0 is picked and saved,
and the saved reading is the string typed ("004217" stays a string). Screenshots: test-artifacts/annotate_<task>.png."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.browser.ui import ART, CHROMIUM, browser_page, error_badges, open_tab, pick, records
from tests.browser.ui import screenshot_on_failure  # noqa: F401  (autouse)
from tests.task_install import EXAMPLES, installed

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is missing (apt-get install chromium)")
pytest.importorskip("playwright.sync_api", reason="playwright's Python package is not installed")

EXAMPLE_TASKS = sorted(p.name for p in EXAMPLES.iterdir() if (p / "__init__.py").is_file())


def _task_names() -> list[str]:
    from core.tasks import all_tasks

    return sorted({*all_tasks(), *EXAMPLE_TASKS})


@pytest.fixture(scope="module")
def server(tmp_path_factory, start_studio):
    """One studio with a dataset of 3 samples per installed task (the example tasks installed first)."""
    from core.dataset import Dataset
    from core.tasks import all_tasks

    with installed("meter"):
        ws = tmp_path_factory.mktemp("editors") / "workspace"
        for name, task in all_tasks().items():
            settings = dict(task.example_settings) if getattr(task, "settings", None) else None
            ds = Dataset.create(ws / "datasets" / f"{name}-samples", name, config=settings)
            for s in ds.task.samples(3):
                buf = io.BytesIO()
                s["image_obj"].convert("RGB").save(buf, "PNG")
                ds.add_image(buf.getvalue(), fields=s["fields"])
        with start_studio(ws) as s:
            yield {"url": s.url, "ws": ws}


@pytest.fixture(scope="module")
def page(server):
    with browser_page(server["url"]) as pg:
        yield pg


def _shown(pg, elem_id: str) -> str:
    return pg.evaluate(f"(document.querySelector('#{elem_id} textarea, #{elem_id} input') || {{}}).value")


@pytest.mark.parametrize("name", _task_names())
def test_every_task_opens_in_the_annotate_editor(page, server, name):
    from core.tasks import task_for_dataset
    from studio.annotate_logic import digits_to_inputs

    pg, ds_name = page, f"{name}-samples"
    open_tab(pg, server["url"], ds_name, "Annotate")
    pg.wait_for_selector("#ann-header code", timeout=60_000)
    rid = pg.inner_text("#ann-header code")
    rec = next(r for r in records(server["ws"], ds_name) if r["id"] == rid)
    task = task_for_dataset(json.loads((server["ws"] / "datasets" / ds_name / "dataset.json").read_text()))
    for f in task.fields:   # every field's editor shows the stored value
        value = rec["fields"].get(f.name)
        if f.kind == "sql":
            pg.wait_for_selector(f"#ann-{f.name} .cm-content", timeout=30_000)
            assert value.splitlines()[0] in pg.inner_text(f"#ann-{f.name} .cm-content")
        elif f.kind == "digits":
            for i, d in enumerate(digits_to_inputs(value), 1):
                pg.wait_for_function(f"(document.querySelector('#ann-bit-{i} input')||{{}}).value === {d!r}",
                                     timeout=30_000)
        else:
            pg.wait_for_selector(f"#ann-{f.name}", state="visible", timeout=30_000)
            if value not in (None, "", []) and f.kind in ("text", "number", "choice"):
                pg.wait_for_function(f"(document.querySelector('#ann-{f.name} textarea, #ann-{f.name} input')||{{}})"
                                     f".value.includes({str(value)!r})", timeout=30_000)
    pg.wait_for_selector("#ann-check-box :text('valid')", timeout=30_000)
    assert error_badges(pg) == 0
    pg.screenshot(path=str(ART / f"annotate_{name}.png"), full_page=True)


def test_a_meter_reading_keeps_its_zeros_through_the_editor(page, server):
    """Pick a 0 where the keys task would refuse one, save, and the reading on disk is the string typed."""
    pg, ds_name = page, "meter-samples"
    open_tab(pg, server["url"], ds_name, "Annotate")
    pg.wait_for_selector("#ann-bit-6 input", timeout=60_000)
    rid = pg.inner_text("#ann-header code")
    for i, d in enumerate("004217", 1):
        pick(pg, f"ann-bit-{i}", d)
    pg.wait_for_selector("#ann-target :text('READING: 004217')", timeout=20_000)
    pg.click("#ann-save")
    pg.wait_for_selector("#ann-save-msg :text('Saved as labeled')", timeout=30_000)
    rec = next(r for r in records(server["ws"], ds_name) if r["id"] == rid)
    assert rec["fields"]["reading"] == "004217" and rec["status"] == "labeled"
    open_tab(pg, server["url"], ds_name, "Annotate")   # a fresh page: it comes back as it was saved
    pg.wait_for_function("(document.querySelector('#ann-bit-1 input')||{}).value === '0'", timeout=60_000)
    assert [_shown(pg, f"ann-bit-{i}") for i in range(1, 7)] == list("004217")
    pg.screenshot(path=str(ART / "annotate_meter_zeros.png"), full_page=True)

