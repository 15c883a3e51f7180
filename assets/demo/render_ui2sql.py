"""Builds the ui2sql demo dataset (assets/demo/ui2sql/) from the HTML mock-ups in ui2sql_src/.

Each mock-up NAME.html has a hand-written schema NAME.sql and names its domain in
<meta name="domain" content="...">. The script
  1. checks every schema with the ui2sql task's validate (any error stops the build),
  2. renders every page with headless Chromium (Playwright, the system's /usr/bin/chromium; no
     browser is ever downloaded) at a fixed viewport, and adds the generated one-table pages of
     ui2sql_pages.py (drawn with PIL, 256 x 160; the demo base can read their titles and labels),
  3. writes a Ghost Architect style dataset_vision.json in a temp folder and imports it with the
     dataset API into a fresh dataset, then splits it with seed 42 and puts the mock-ups in the
     test split (see build_dataset),
  4. swaps the result into place only when its content differs from the shipped folder, so a
     re-run gives the same dataset and leaves the committed files untouched.

    python3 assets/demo/render_ui2sql.py            # build / refresh assets/demo/ui2sql
    python3 assets/demo/render_ui2sql.py --check    # only validate the schemas, render nothing
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.dataset import Dataset  # noqa: E402
from core.errors import StudioError  # noqa: E402
from core.tasks import get_task  # noqa: E402

sys.path.insert(0, str(HERE))
import ui2sql_pages  # noqa: E402

SRC = HERE / "ui2sql_src"
OUT = HERE / "ui2sql"
VIEWPORT = {"width": 1024, "height": 640}
CHROMIUM = os.environ.get("TRINITY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--font-render-hinting=none",
                 "--force-color-profile=srgb", "--hide-scrollbars"]
# Empty instruction: the importer then keeps no per-record prompt and the task's standard one applies.
INSTRUCTION = ""
DOMAIN_RE = re.compile(r'<meta\s+name="domain"\s+content="([^"]+)"', re.I)


def mockups(src: Path = SRC) -> list[dict]:
    """The mock-ups, sorted by name: {"name", "html", "sql", "domain"}. Raises StudioError when an
    HTML page has no schema (or the reverse) or names no domain."""
    html = {p.stem: p for p in src.glob("*.html")}
    sql = {p.stem: p for p in src.glob("*.sql")}
    if html.keys() != sql.keys():
        odd = sorted(html.keys() ^ sql.keys())
        raise StudioError(f"Mock-ups without a partner file: {', '.join(odd)}.",
                          f"Each NAME.html in {src} needs a NAME.sql and the other way round.")
    out = []
    for name in sorted(html):
        m = DOMAIN_RE.search(html[name].read_text(encoding="utf-8"))
        if not m:
            raise StudioError(f"{html[name].name} names no domain.",
                              'Add <meta name="domain" content="..."> to its <head>.')
        out.append({"name": name, "html": html[name], "sql": sql[name].read_text(encoding="utf-8"),
                    "domain": m.group(1)})
    return out


def check_schemas(items: list[dict]) -> list[str]:
    """Every validate issue as 'NAME: severity: message'; errors and warnings alike."""
    task = get_task("ui2sql")
    problems = []
    for it in items:
        for issue in task.validate({"fields": {"sql": it["sql"]}}):
            problems.append(f"{it['name']}: {issue.severity}: {issue.message}")
    return problems


def render(items: list[dict], out_dir: Path) -> list[str]:
    """Screenshots each page to out_dir/NAME.png. Returns layout warnings (content wider than the
    viewport or clipped inside a box), which usually mean a table runs off the screen."""
    from playwright.sync_api import sync_playwright  # only the build needs a browser

    warnings = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1, reduced_motion="reduce")
            # Mock-ups are self-contained: anything that is not a local file is blocked.
            page.route(re.compile(r"^(?!file:).*"), lambda route: route.abort())
            for it in items:
                page.goto(it["html"].as_uri(), wait_until="load")
                clipped = page.evaluate(
                    """() => { const w = innerWidth; const bad = [];
                      if (document.documentElement.scrollWidth > w) bad.push('page wider than viewport');
                      for (const el of document.querySelectorAll('.panel, .content, .main'))
                        if (el.scrollWidth > el.clientWidth + 2) bad.push(el.className + ' clipped');
                      return bad; }""")
                warnings += [f"{it['name']}: {c}" for c in clipped]
                page.screenshot(path=str(out_dir / f"{it['name']}.png"), animations="disabled",
                                caret="hide")
        finally:
            browser.close()
    return warnings


def save_pages(items: list[dict], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for it in items:
        it["image"].save(out_dir / f"{it['name']}.png", optimize=True)


def write_vision_json(items: list[dict], folder: Path) -> Path:
    """Ghost Architect's format; "mockup" is an extra key the importer keeps on each record."""
    rows = [{"image_path": f"images/{it['name']}.png", "instruction": INSTRUCTION,
             "output": it["sql"], "domain": it["domain"], "mockup": it["name"]} for it in items]
    path = folder / "dataset_vision.json"
    path.write_text(json.dumps(rows, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def build_dataset(json_path: Path, target: Path, expected: int) -> dict:
    """Imports the records, splits them (seed 42, a tenth for validation), then moves the mock-ups
    to the test split. The demo base sees 96 px: the mock-ups' 1024 x 640 screenshots are text it
    cannot read, and their 200-400-token schemas are more than its short fine-tune can learn; in
    the train split they tripled the CPU time of a run (every batch padded to one), in val they
    measured what the demo base cannot do. As `test` they stay in the dataset, scored apart
    (`python -m core eval --split test`); a user with a real model re-splits them in the Datasets
    tab (Split), which assigns every record again."""
    ds = Dataset.create(target, task="ui2sql", name="ui2sql-demo")  # named like keys-demo
    report = ds.import_source(json_path)
    if report["skipped"] or report["imported"] != expected:
        raise StudioError(f"Import took {report['imported']} of {expected} pages.",
                          "Skipped: " + "; ".join(f"{s['image_path']}: {s['reason']}"
                                                  for s in report["skipped"]))
    ds.split(seed=42)
    for rec in ds.records():
        if not rec["source_extra"]["mockup"].startswith("page_"):
            ds.save_record({**rec, "split": "test"})
    return report


def fingerprint(folder: Path) -> str | None:
    """Content of a dataset folder without its timestamps: records (sans "updated"), the task and
    split settings, and the image bytes. None when folder is not a dataset."""
    if not (folder / "dataset.json").is_file():
        return None
    ds = Dataset.open(folder)
    meta = {k: v for k, v in ds.meta.items() if k not in ("created", "updated")}
    if isinstance(meta.get("split"), dict):
        meta["split"] = {k: v for k, v in meta["split"].items() if k != "at"}
    recs = sorted(({k: v for k, v in r.items() if k != "updated"} for r in ds.records()),
                  key=lambda r: r["id"])
    h = hashlib.sha256(json.dumps([meta, recs], sort_keys=True).encode())
    for img in sorted((folder / "images").glob("*")):
        h.update(img.name.encode() + img.read_bytes())
    return h.hexdigest()


def replace_folder(new: Path, dest: Path) -> None:
    """Moves new into dest; the old folder is removed only after the new one is in place."""
    (new / ".lock").unlink(missing_ok=True)  # the dataset API's lock file is no content to ship
    old = dest.with_name(f".{dest.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if dest.exists():
        dest.rename(old)
    shutil.move(str(new), str(dest))
    if old.exists():
        shutil.rmtree(old)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="dataset folder to write (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="validate the schemas only")
    ap.add_argument("--force", action="store_true", help="replace the folder even if its content is the same")
    args = ap.parse_args(argv)
    try:
        items = mockups()
        generated = ui2sql_pages.pages()
        problems = check_schemas(items + generated)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            return 1
        items_all = items + generated
        print(f"{len(items_all)} schemas valid ({len(items)} mock-ups, {len(generated)} generated pages).")
        if args.check:
            return 0
        with tempfile.TemporaryDirectory(prefix="ui2sql-demo-") as tmp:
            tmp = Path(tmp)
            for w in render(items, tmp / "src" / "images"):
                print("layout warning:", w, file=sys.stderr)
            save_pages(generated, tmp / "src" / "images")
            json_path = write_vision_json(items_all, tmp / "src")
            build_dataset(json_path, tmp / "dataset", len(items_all))
            if not args.force and fingerprint(tmp / "dataset") == fingerprint(args.out):
                print(f"{args.out}: unchanged ({len(items_all)} records).")
                return 0
            replace_folder(tmp / "dataset", args.out)
        size = sum(p.stat().st_size for p in (args.out / "images").glob("*.png"))
        print(f"{args.out}: {len(items_all)} records, images {size / 1e6:.1f} MB.")
        return 0
    except StudioError as e:
        print(f"error: {e.message}\n  {e.hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
