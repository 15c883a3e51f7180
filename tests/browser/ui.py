"""What the browser tests share: Debian's chromium (never a downloaded browser), one studio and one page
per module (studio_fixtures, screenshot_on_failure), and the moves a person makes in the studio (open a
dataset on a tab, pick a dropdown option)."""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ART = ROOT / "test-artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


@contextlib.contextmanager
def browser_page(server_url: str):
    """A headless chromium page at 1440x1000 that records requests leaving the studio's server."""
    from playwright.sync_api import sync_playwright

    ART.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        pg = browser.new_page(viewport={"width": 1440, "height": 1000})
        outside = []
        pg.on("request", lambda r: None if r.url.startswith((server_url, "data:", "blob:")) else outside.append(r.url))
        pg.outside_requests = outside
        # what a failure's note needs: the server's error answers and the page's errors, with times
        problems = []
        pg.problems = problems
        stamp = lambda: f"{time.monotonic():.1f}"  # noqa: E731
        pg.on("response", lambda r: problems.append(f"{stamp()} {r.status} {r.request.method} {r.url}")
              if r.status >= 400 else None)
        pg.on("requestfailed", lambda r: problems.append(f"{stamp()} failed {r.method} {r.url} {r.failure}"))
        pg.on("console", lambda m: problems.append(f"{stamp()} console.{m.type}: {m.text[:500]}")
              if m.type in ("error", "warning") else None)
        try:
            yield pg
        finally:
            browser.close()


def studio_fixtures(name: str):
    """A module's `server` (one studio on a fresh workspace, {"url", "ws"}) and `page` (one chromium
    page on it), both module-scoped: `server, page = studio_fixtures("e2e")` in the test module."""
    @pytest.fixture(scope="module")
    def server(tmp_path_factory, start_studio):
        with start_studio(tmp_path_factory.mktemp(name) / "workspace") as s:
            yield {"url": s.url, "ws": s.ws}

    @pytest.fixture(scope="module")
    def page(server):
        with browser_page(server["url"]) as pg:
            yield pg

    return server, page


@pytest.fixture(autouse=True)
def screenshot_on_failure(request, page):
    """Imported into a test module: each test of it that fails leaves test-artifacts/failure-TEST.png
    and failure-TEST.log (the page's error answers and console errors)."""
    yield
    if call_failed(request):  # also an attempt that a rerun then repeats
        save_failure(page, request.node.name)


def open_tab(pg, url: str, dataset: str, tab: str):
    pg.goto(f"{url}/?dataset={dataset}")
    wait_dataset(pg, dataset)
    pg.click(f"button[role=tab]:has-text('{tab}')")


def wait_dataset(pg, dataset: str, timeout: int = 60_000):
    pg.wait_for_selector("#ts-dataset input", timeout=timeout)
    pg.wait_for_function(f"document.querySelector('#ts-dataset input').value.includes({dataset!r})", timeout=timeout)


def pick(pg, elem_id: str, option: str, exact: bool = True):
    """Chooses an option of a Gradio dropdown by its visible text."""
    pg.click(f"#{elem_id} input")
    opts = pg.locator(f"#{elem_id}").get_by_role("option")
    (opts.filter(has_text=option).first if not exact else
     pg.locator(f"#{elem_id}").get_by_role("option", name=option, exact=True)).click()


def selected_tab(pg) -> str:
    return pg.locator("#ts-tabs button[role=tab][aria-selected=true]").first.inner_text().strip()


def records(ws: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (ws / "datasets" / name / "records.jsonl").read_text().splitlines() if x.strip()]


def toasts(pg) -> str:
    """Every toast's text on the page (Gradio's gr.Info / gr.Warning / gr.Error messages)."""
    return "\n".join(t.inner_text() for t in pg.locator(".toast-body").all())


def error_badges(pg) -> int:
    """Red "Error" badges Gradio puts on output components when a handler raises."""
    return pg.locator("[data-testid=status-tracker] span.error:visible").count()


def save_failure(pg, name: str):
    """A failed test's full-page screenshot and the page's problems (error answers, console errors)."""
    pg.screenshot(path=str(ART / f"failure-{name}.png"), full_page=True)
    (ART / f"failure-{name}.log").write_text("\n".join(getattr(pg, "problems", [])) + "\n")


def call_failed(request) -> bool:
    """Whether the test's call failed (tests/browser/conftest.py keeps the report; a failed attempt
    that pytest-rerunfailures repeats counts too)."""
    rep = getattr(request.node, "rep_call", None)
    return bool(rep is not None and rep.failed)


# What a person sees as clipped (issue 27's layout list), measured in the page: text cut by its box,
# a block's label under its buttons, a block whose content is cut, a dropdown's text running under its
# arrow, the Datasets preview scrolling its second row, a table wider than its box, a wrapped header.
LAYOUT_JS = """
() => {
  const out = [];
  const where = (el) => (el.closest('[id]')?.id || '?');
  const name = (el) => where(el) + ': ' + (el.innerText || el.value || '').trim().slice(0, 50);
  const seen = (el) => { const r = el.getBoundingClientRect(); return el.offsetParent !== null && r.width > 0 && r.height > 0; };
  const meet = (a, b) => !(a.right <= b.left || b.right <= a.left || a.bottom <= b.top || b.bottom <= a.top);
  for (const el of document.querySelectorAll('label span, [data-testid="block-info"], th, button, .ts-side-title, .label-wrap > span')) {
    if (!seen(el) || !(el.innerText || '').trim()) continue;
    const cs = getComputedStyle(el);
    const cut = ['hidden', 'clip'].includes(cs.overflowX) || cs.textOverflow === 'ellipsis' || cs.whiteSpace === 'nowrap';
    if (cut && el.scrollWidth > el.clientWidth + 1) out.push('cut text ' + name(el));
  }
  for (const block of document.querySelectorAll('.block')) {
    if (!seen(block)) continue;
    const label = block.querySelector(':scope > label[data-testid="block-label"]');
    const icons = block.querySelector(':scope > .icon-button-wrapper, :scope > * > .icon-button-wrapper');
    if (label && icons && seen(label) && seen(icons) && meet(label.getBoundingClientRect(), icons.getBoundingClientRect()))
      out.push('label under the buttons ' + name(label));
    const cs = getComputedStyle(block);
    if (cs.overflowY === 'hidden' && block.scrollHeight > block.clientHeight + 2) out.push('content cut ' + where(block));
  }
  for (const w of document.querySelectorAll('.wrap-inner')) {
    const input = w.querySelector('.secondary-wrap > input'), icon = w.querySelector('.icon-wrap');
    if (!input || !icon || !seen(input) || !seen(icon)) continue;
    // where the shown text ends: its measured width, or the input's content box when it is cut short
    const cs = getComputedStyle(input), r = input.getBoundingClientRect();
    const ctx = (window.__tsCanvas = window.__tsCanvas || document.createElement('canvas')).getContext('2d');
    ctx.font = cs.font;
    const left = r.left + (parseFloat(cs.paddingLeft) || 0) + (parseFloat(cs.borderLeftWidth) || 0);
    const room = r.right - (parseFloat(cs.paddingRight) || 0) - left;
    const shown = Math.min(ctx.measureText(input.value || '').width, room);
    if (shown < 1) continue;
    const arrow = (icon.querySelector('svg') || icon).getBoundingClientRect();
    if (left + shown > arrow.left + 1) out.push('dropdown text under its arrow ' + name(input));
    if (room < ctx.measureText(input.value.slice(0, 1)).width) out.push('dropdown text hidden ' + name(input));
  }
  for (const g of document.querySelectorAll('#ds-preview .grid-wrap')) {
    if (seen(g) && g.scrollHeight > g.clientHeight + 1) out.push('gallery rows cut ' + where(g));
  }
  for (const g of document.querySelectorAll('.grid-wrap')) {  // every gallery: no column cut at the side
    const edge = g.getBoundingClientRect().right - (parseFloat(getComputedStyle(g).paddingRight) || 0);
    if (seen(g) && [...g.querySelectorAll('.thumbnail-item')].some(t => t.getBoundingClientRect().right > edge + 0.5))
      out.push('gallery column cut ' + where(g));
  }
  for (const v of document.querySelectorAll('.virtual-table-viewport')) {
    if (seen(v) && v.scrollWidth > v.clientWidth + 1) out.push('table wider than its box ' + where(v));
  }
  for (const th of document.querySelectorAll('th')) {
    const span = [...th.querySelectorAll('span')].reverse().find(s => s.innerText.trim());
    if (!span || !seen(span)) continue;
    const lh = parseFloat(getComputedStyle(span).lineHeight) || 20;
    if (span.getBoundingClientRect().height > lh * 1.5) out.push('header wraps ' + name(th));
  }
  return out;
}
"""


def layout_problems(pg) -> list[str]:
    """Everything LAYOUT_JS finds clipped on the page as it is now ([] when nothing is)."""
    return pg.evaluate(LAYOUT_JS)
