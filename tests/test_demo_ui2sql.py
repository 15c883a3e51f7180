"""The ui2sql demo: hand-written schemas under assets/demo/ui2sql_src, the generated one-table pages
of assets/demo/ui2sql_pages.py, and the shipped dataset folder assets/demo/ui2sql built from both
by assets/demo/render_ui2sql.py. No browser is needed here: the screenshots are committed, these
tests read them."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from core.dataset import Dataset
from core.images import image_sha16
from core.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "assets" / "demo" / "ui2sql_src"
SHIPPED = ROOT / "assets" / "demo" / "ui2sql"
SQL_FILES = sorted(SRC.glob("*.sql"))
CREATE_RE = re.compile(r"\bCREATE\s+TABLE\b", re.I)
TASK = get_task("ui2sql")


def _load(name):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, ROOT / f"assets/demo/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PAGES = _load("ui2sql_pages")


def _is_page(rec) -> bool:
    return rec["source_extra"]["mockup"].startswith("page_")


def _load_builder():
    import importlib.util
    spec = importlib.util.spec_from_file_location("render_ui2sql", ROOT / "assets/demo/render_ui2sql.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # playwright is imported lazily, only when rendering
    return mod


def test_enough_mockups_each_with_html_and_schema():
    assert len(SQL_FILES) >= 26
    items = _load_builder().mockups(SRC)  # raises on a missing partner file or domain
    assert [it["name"] for it in items] == [p.stem for p in SQL_FILES]
    assert len({it["domain"] for it in items}) == len(items), "each mock-up is its own domain"


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.stem)
def test_schema_passes_validate(path):
    sql = path.read_text(encoding="utf-8")
    issues = [i.to_dict() for i in TASK.validate({"fields": {"sql": sql}})]
    assert issues == []  # no errors and no warnings (every table has a primary key)
    parsed = TASK.parse(sql)
    tables = parsed.data["tables"]
    assert parsed.ok and 2 <= len(tables) <= 6
    assert len(tables) == len(CREATE_RE.findall(sql))
    assert any(t["foreign_keys"] for t in tables), "related tables are linked"


@pytest.mark.parametrize("path", sorted(SRC.glob("*.html")), ids=lambda p: p.stem)
def test_mockup_is_self_contained(path):
    html = path.read_text(encoding="utf-8")
    # No CDN, web font or remote image: the render must work offline and give the same pixels.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html, re.I)
    assert not re.search(r"<script\b", html, re.I)


def test_shared_css_is_local():
    css = (SRC / "style.css").read_text(encoding="utf-8")
    assert "@import" not in css and not re.search(r"url\(\s*['\"]?(https?:)?//", css)


@pytest.fixture(scope="module")
def shipped():
    return Dataset.open(SHIPPED)


def test_shipped_dataset_has_labeled_records(shipped):
    assert shipped.task.name == "ui2sql"
    recs = shipped.records()
    labeled = [r for r in recs if r["status"] in ("labeled", "reviewed")]
    assert len(labeled) == len(recs) == len(SQL_FILES) + PAGES.COUNT
    assert sum(not _is_page(r) for r in recs) == len(SQL_FILES) >= 24
    # Pages train and validate; the mock-ups, which the 96 px demo base cannot read, are the test split.
    assert {r["split"] for r in recs if _is_page(r)} == {"train", "val"}
    assert {r["split"] for r in recs if not _is_page(r)} == {"test"}
    assert 15 <= len(shipped.records(split="val")) <= 40
    assert shipped.meta["split"]["seed"] == 42


def test_shipped_images_are_readable_and_content_addressed(shipped):
    total = 0
    for rec in shipped.records():
        path = shipped.image_path(rec)
        data = path.read_bytes()
        total += len(data)
        assert path.name == f"{image_sha16(data)}.png" == Path(rec["image"]).name
        with Image.open(path) as im:
            im.load()
            assert im.format == "PNG" and im.size == ((256, 160) if _is_page(rec) else (1024, 640))
            # A blank or failed render would be (nearly) one colour.
            assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or range(1 << 20)) > 50
    assert total < 6_000_000, "keep the committed screenshots small"


def test_shipped_records_match_their_schema_files(shipped):
    by_name = {p.stem: p.read_text(encoding="utf-8") for p in SQL_FILES}
    by_name |= {pg["name"]: pg["sql"] for pg in PAGES.pages()}
    seen = set()
    for rec in shipped.records():
        name = rec["source_extra"]["mockup"]
        seen.add(name)
        sql = rec["fields"]["sql"]
        assert sql == by_name[name], f"{name}: dataset is stale, re-run assets/demo/render_ui2sql.py"
        assert rec["fields"]["domain"]
        assert "instruction" not in rec["fields"]  # the task's standard prompt applies
        tables = TASK.parse(sql).data["tables"]
        assert len(tables) == len(CREATE_RE.findall(by_name[name]))
        assert TASK.target(rec).count("CREATE TABLE") == len(tables)
    assert seen == set(by_name)


def test_shipped_dataset_report_is_clean(shipped):
    report = shipped.validate()
    assert report["errors"] == 0 and report["warnings"] == 0, report["issues"]
    assert report["images_readable"] == report["records"]


def test_split_is_reproducible(shipped, tmp_path):
    copy = tmp_path / "ui2sql"
    shutil.copytree(SHIPPED, copy)
    again = Dataset.open(copy)
    again.split(seed=42)  # assigns every record again, the mock-ups too (a real model trains on them)
    pages = {r["id"] for r in shipped.records() if _is_page(r)}
    assert {r["id"]: r["split"] for r in again.records() if r["id"] in pages} == \
           {r["id"]: r["split"] for r in shipped.records() if r["id"] in pages}
    assert {r["split"] for r in again.records() if r["id"] not in pages} <= {"train", "val"}


def test_builder_fingerprint_ignores_timestamps_only(tmp_path):
    builder = _load_builder()
    copy = tmp_path / "ui2sql"
    shutil.copytree(SHIPPED, copy)
    before = builder.fingerprint(copy)
    assert before == builder.fingerprint(SHIPPED)
    lines = (copy / "records.jsonl").read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[0])
    rec["updated"] = "2000-01-01T00:00:00+00:00"
    (copy / "records.jsonl").write_text("\n".join([json.dumps(rec)] + lines[1:]) + "\n", encoding="utf-8")
    assert builder.fingerprint(copy) == before  # a timestamp alone is no change
    rec["fields"]["sql"] += "\n"
    (copy / "records.jsonl").write_text("\n".join([json.dumps(rec)] + lines[1:]) + "\n", encoding="utf-8")
    assert builder.fingerprint(copy) != before
    assert builder.fingerprint(tmp_path / "missing") is None


def test_builder_check_mode_validates_without_a_browser(capsys):
    assert _load_builder().main(["--check"]) == 0
    assert (f"{len(SQL_FILES) + PAGES.COUNT} schemas valid ({len(SQL_FILES)} mock-ups, {PAGES.COUNT} generated "
            "pages).") in capsys.readouterr().out


def test_report_flags_a_resaved_screen_but_not_another_screen_of_the_same_app(shipped, tmp_path):
    """Screens of one template look alike to an 8x8 perceptual hash; ui2sql's 16x16 one tells them
    apart and still finds a resized JPEG copy of a screen."""
    import io

    ds = Dataset.create(tmp_path / "ds", task="ui2sql")
    pages = [r for r in shipped.records() if _is_page(r)][:30]
    for r in pages:
        ds.add_image(shipped.image_path(r), fields=r["fields"])
    with Image.open(shipped.image_path(pages[0])) as im:
        buf = io.BytesIO()
        im.convert("RGB").resize((192, 120)).save(buf, "JPEG", quality=70)
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(buf.getvalue())
    added, _ = ds.add_image(copy, fields=pages[0]["fields"])
    near = [i for i in ds.validate()["issues"] if i["code"] == "near_duplicate"]
    assert [(i["record"], i["duplicate_of"]) for i in near] == [(added["id"], ds.records()[0]["id"])], near
    assert "/256" in near[0]["reason"]
