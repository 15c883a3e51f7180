"""The bad-input corpus (tests/corpus/, built by make_corpus.py) run through the real load / import /
validate paths: each case names the exact message the user sees, and the good data next to it
arrives intact. Cases already covered in test_images / test_dataset* / test_ui2sql* / test_keys_task
are not repeated here; this file is the table of files the studio will meet in the wild."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from core.dataset import Dataset
from core.errors import StudioError
from core.images import load_image

CORPUS = Path(__file__).resolve().parent / "corpus"
sys.path.insert(0, str(CORPUS))
import make_corpus  # noqa: E402

RED, BLUE, WHITE, GREY = (255, 0, 0), (0, 0, 255), (255, 255, 255), (128, 128, 128)


def near(px, want, tol=8):
    return all(abs(a - b) <= tol for a, b in zip(px, want))


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    return make_corpus.build_big(tmp_path_factory.mktemp("big_corpus"))


def test_committed_corpus_matches_the_generator():
    """The files in git are exactly what make_corpus.py writes (no stray or stale case)."""
    want = make_corpus.files()
    have = {p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*")
            if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts}
    assert have == set(want), "run python tests/corpus/make_corpus.py"
    for rel in ("images/zero_bytes.png", "keylike/labels.jsonl", "ghost/dataset_vision.json"):
        assert (CORPUS / rel).read_bytes() == want[rel]


# ---- images: file -> the message (or the upright RGB picture) --------------------------------
BAD_IMAGES = [
    ("zero_bytes.png", "Image 'zero_bytes.png' is empty (0 bytes)."),
    ("truncated.png", "Image 'truncated.png' is truncated (the file ends early)."),
    ("truncated.jpg", "Image 'truncated.jpg' is truncated (the file ends early)."),
    ("text_named.png", "Image 'text_named.png' is a text file, not an image."),
    ("html_named.jpg", "Image 'html_named.jpg' is a text file, not an image."),
    ("garbage.webp", "Image 'garbage.webp' is not an image Pillow can read."),
]

# name -> (size, [(xy, colour)]): the colour where the picture's "up" and transparency say it is
GOOD_IMAGES = {
    "jpeg_named.png": ((24, 16), [((2, 2), RED), ((20, 12), GREY)]),          # JPEG bytes, .png name
    "cmyk.jpg": ((16, 16), [((8, 8), RED)]),
    "grey16.png": ((16, 16), [((8, 8), GREY)]),                               # 32768/65535, not clipped white
    "palette_transparent.png": ((16, 16), [((2, 8), BLUE), ((12, 8), WHITE)]),  # transparent index -> white
    "rgba_half_transparent.png": ((16, 16), [((2, 8), WHITE), ((12, 8), BLUE)]),
    "exif_rotated.jpg": ((20, 40), [((17, 2), RED), ((2, 2), GREY), ((2, 37), GREY)]),  # orientation 6 applied
    "animated.gif": ((16, 16), [((8, 8), RED)]),                               # first frame
}


@pytest.mark.parametrize("name, message", BAD_IMAGES)
def test_bad_image_message(name, message):
    with pytest.raises(StudioError) as e:
        load_image(CORPUS / "images" / name)
    assert e.value.message == message and e.value.hint


@pytest.mark.parametrize("name", sorted(GOOD_IMAGES))
def test_odd_image_loads_upright_rgb(name):
    size, points = GOOD_IMAGES[name]
    im = load_image(CORPUS / "images" / name)
    assert im.mode == "RGB" and im.size == size
    for xy, colour in points:
        assert near(im.getpixel(xy), colour), (name, xy, im.getpixel(xy))


def test_image_folder_import_skips_each_bad_file_and_stores_the_rest_upright(tmp_path):
    ds = Dataset.create(tmp_path / "ds", "keys")
    rep = ds.import_source(CORPUS / "images")
    skipped = {s["record"]: s for s in rep["skipped"]}
    for name, message in BAD_IMAGES:
        assert skipped[name]["code"] == "bad_image" and skipped[name]["reason"] == message
    # cmyk.jpg and animated.gif are both a plain red 16x16 picture: one stored image
    assert (skipped["cmyk.jpg"]["code"], rep["imported"], rep["duplicates"]) == ("duplicate", 6, 1)
    stored = [ds.load_image(r) for r in ds.records()]
    assert sorted(im.size for im in stored) == sorted(s for n, (s, _) in GOOD_IMAGES.items() if n != "cmyk.jpg")
    rotated = next(im for im in stored if im.size == (20, 40))
    assert near(rotated.getpixel((17, 2)), RED)  # stored upright: readers never see the EXIF tag again


def test_decompression_bomb_is_refused_from_its_header(big, tmp_path):
    t = time.perf_counter()
    with pytest.raises(StudioError) as e:
        load_image(big["bomb_20000x20000.png"])
    assert time.perf_counter() - t < 2.0  # refused before 400 Mpx were decoded
    assert e.value.message == ("Image 'bomb_20000x20000.png' is over the limit of 67,108,864 pixels "
                               "(400,000,000 pixels) (a possible decompression bomb).")
    assert "TRINITY_MAX_PIXELS" in e.value.hint
    folder = tmp_path / "shots"
    folder.mkdir()
    shutil.copy(big["bomb_20000x20000.png"], folder)
    shutil.copy(CORPUS / "images" / "cmyk.jpg", folder)
    ds = Dataset.create(tmp_path / "ds", "ui2sql")
    rep = ds.import_source(folder)
    assert rep["imported"] == 1 and rep["skipped"][0]["code"] == "too_large"
    assert not any(p.stat().st_size > 1_000_000 for p in (ds.path / "images").iterdir())


# ---- archives --------------------------------------------------------------------------------
ARCHIVES = [
    ("zip_slip.zip", {"../../outside.png": "path leads outside the archive folder (zip-slip)",
                      "shots/../../../etc/evil.png": "path leads outside the archive folder (zip-slip)"}),
    ("absolute_paths.zip", {"/tmp/trinity-evil.png": "absolute path in the archive",
                            "C:/Windows/evil.png": "absolute path in the archive"}),
    ("symlinks.zip", {"shots/passwd.png": "symbolic link in the archive (not followed)",
                      "shots/up.png": "symbolic link in the archive (not followed)"}),
]


@pytest.mark.parametrize("name, refused", ARCHIVES)
def test_unsafe_archive_entries_are_refused_and_the_good_image_imports(name, refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative escape would land here
    ds = Dataset.create(tmp_path / "a" / "b" / "ds", "ui2sql")
    rep = ds.import_source(CORPUS / "archives" / name)
    assert rep["imported"] == 1
    assert {s["record"]: s["reason"] for s in rep["skipped"]} == refused
    assert all(s["code"] == "unsafe_entry" for s in rep["skipped"])
    assert not Path("/tmp/trinity-evil.png").exists()
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == [ds.records()[0]["image"].split("/")[-1]]


def test_damaged_zip_names_itself(tmp_path):
    ds = Dataset.create(tmp_path / "ds", "ui2sql")
    with pytest.raises(StudioError) as e:
        ds.import_source(CORPUS / "archives" / "not_a_zip.zip")
    assert e.value.message == "not_a_zip.zip is not a readable zip archive (damaged, cut off, or another format)."
    assert ds.records() == []


@pytest.mark.parametrize("name, code, reason", [
    ("zip_bomb.zip", "unsafe_entry", "unpacks to 300 MB, over the 256 MB per-file limit"),
    # its headers claim 1 KB; reading stops there and the checksum gives it away
    ("lying_zip_bomb.zip", "corrupt_entry", "cannot be unpacked: Bad CRC-32 for file 'shots/bomb.png'"),
])
def test_zip_bombs_are_refused_without_unpacking(big, name, code, reason, tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the importer unpacks under here
    ds = Dataset.create(tmp_path / "ds", "ui2sql")
    rep = ds.import_source(big[name])
    assert rep["imported"] == 1
    assert [(s["record"], s["code"], s["reason"]) for s in rep["skipped"]] == [("shots/bomb.png", code, reason)]
    assert sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()) < 5_000_000


# ---- label files -----------------------------------------------------------------------------
GHOST_SKIPS = {  # record number, from 1 as the UI shows it -> (code, reason)
    2: ("invalid_label", "invalid label: SQL syntax error: Expected table name but got '(' near '('. [sql]"),
    3: ("bad_field", "'output' must be a string, got int"),
    4: ("bad_field", "image_path must be a string, got list"),
    5: ("missing_image", "image file 'images/missing.png' not found"),
    6: ("path_escapes", "image_path '../../etc/passwd' leads outside the folder of the label file"),
    7: ("path_escapes", "image_path '/etc/hostname' leads outside the folder of the label file"),
    8: ("duplicate", "duplicate: same image as record"),
    9: ("missing_label", "no 'output' (the SQL schema)"),
    11: ("invalid_label", "invalid label: Only CREATE TABLE statements are expected, found 'SELECT * FROM ...'."),
    12: ("bad_field", "entry is a str, not an object"),
    13: ("bad_field", "'domain' must be a string, got list"),
}


def test_ghost_file_every_bad_record_has_its_reason_and_good_ones_are_intact(tmp_path):
    ds = Dataset.create(tmp_path / "ds", "ui2sql")
    rep = ds.import_source(CORPUS / "ghost")
    got = {s["record"]: (s["code"], s["reason"]) for s in rep["skipped"]}
    assert set(got) == set(GHOST_SKIPS)
    for ref, (code, reason) in GHOST_SKIPS.items():
        assert got[ref][0] == code and got[ref][1].startswith(reason), (ref, got[ref])
    assert "<Token" not in got[2][1]  # no sqlglot internals in the user's message
    recs = {r["source"]["index"]: r for r in ds.records()}
    assert set(recs) == {0, 9}
    assert recs[0]["fields"]["sql"] == make_corpus.GOOD_SQL and recs[0]["fields"]["domain"] == "crm"
    assert recs[0]["source_extra"] == {"reviewer": "ana", "tags": ["login"]}  # unknown fields kept
    assert "Größe" in recs[9]["fields"]["sql"] and "名前" in recs[9]["fields"]["sql"]
    assert ds.task.validate(recs[9]) == []  # non-ASCII identifiers are fine


KEYLIKE_SKIPS = {  # line -> (code, reason)
    2: ("bad_json", "not valid JSON: Expecting ',' delimiter at column 74"),
    3: ("invalid_label", "invalid label: bitting position 2 is 0; depth digits are 1-9 (0 is not a cut depth on this scale). [bitting]"),
    4: ("invalid_label", "invalid label: bitting position 2 is 10; a depth is one digit 1-9. [bitting]"),
    5: ("bad_field", "'bittings' must hold whole numbers, got 'a'"),
    6: ("invalid_label", "invalid label: bitting has 3 positions; SC1 keys have 5. [bitting]"),
    7: ("invalid_label", "invalid label: bitting has 7 positions; SC1 keys have 5. [bitting]"),
    8: ("bad_field", "'keyway' must be a string, got int"),
    10: ("path_escapes", "image_path '../k0.png' leads outside the folder of the label file"),
    11: ("bad_field", "a list, not an object"),
    12: ("bad_json", "not UTF-8 text (byte 90 is 0xe4)"),
}


def test_keylike_jsonl_one_broken_line_among_good_ones(tmp_path):
    ds = Dataset.create(tmp_path / "ds", "keys")
    rep = ds.import_source(CORPUS / "keylike" / "labels.jsonl")
    got = {s["line"]: (s["code"], s["reason"]) for s in rep["skipped"]}
    assert got == KEYLIKE_SKIPS
    recs = {r["source"]["line"]: r for r in ds.records()}
    assert set(recs) == {1, 9, 13}
    assert recs[1]["fields"] == {"keyway": "SC1", "bitting": [3, 5, 2, 4, 6], "brand": "Schlage"}
    assert recs[1]["source_extra"] == {"photographer": "bo", "lighting": {"lux": 300}}
    assert recs[9]["fields"]["bitting"] == [2, 4, 6, 1, 3] and recs[9]["status"] == "labeled"


@pytest.mark.parametrize("name, message", [
    ("invalid_json.json", "invalid_json.json is not valid JSON: Expecting value at line 2, column 17."),
    ("not_a_list.json", "not_a_list.json is not a list of records."),
])
def test_unreadable_label_files_change_nothing(name, message, tmp_path):
    ds = Dataset.create(tmp_path / "ds", "ui2sql")
    ds.import_source(CORPUS / "ghost")
    before = (ds.path / "records.jsonl").read_bytes()
    with pytest.raises(StudioError) as e:
        ds.import_source(CORPUS / "labels" / name)
    assert e.value.message == message and e.value.hint
    assert (ds.path / "records.jsonl").read_bytes() == before


# ---- a records.jsonl edited by hand --------------------------------------------------------------
def test_hand_edited_records_are_reported_and_kept(tmp_path):
    shutil.copytree(CORPUS / "edited_dataset", tmp_path / "e")
    ds = Dataset.open(tmp_path / "e")
    rep = ds.validate()
    issues = {(i["record"], i["code"], i["reason"]) for i in rep["issues"]}
    expected = {
        ("records.jsonl line 4", "bad_line", "not a JSON object (kept as is): '{\"id\": \"half\", \"image\": \"images/'"),
        ("dup", "duplicate_id", "the id 'dup' is used by 2 records"),
        ("escapes", "bad_image_path", "Record 'escapes' points outside the dataset folder (../../outside.png)."),
        ("absolute", "bad_image_path", "Record 'absolute' has no valid image path ('/etc/passwd')."),
        ("missing", "missing_image", "image file images/0000000000000000.png is missing"),
        ("wrong_types", "bad_status", "unknown status 'done'"),
        ("wrong_types", "bad_split", "unknown split 'holdout'"),
        ("wrong_types", "label", "bitting is a str; it must be a list of depth digits 1-9 (e.g. [1, 2, 5, 3, 7]). [bitting]"),
    }
    assert expected <= issues, expected - issues
    # the studio reading an escaping record gets the message, never the file outside
    with pytest.raises(StudioError, match="points outside the dataset folder"):
        ds.load_image(next(r for r in ds.records() if r["id"] == "escapes"))
    # an edit rewrites the file: the broken line, both 'dup' rows and unknown keys survive
    ds.set_fields("good", {"bitting": [3, 5, 2, 4, 7]})
    text = (ds.path / "records.jsonl").read_text()
    assert '{"id": "half", "image": "images/' in text.splitlines()
    assert [r["id"] for r in ds.records()].count("dup") == 2
    assert ds.get("good")["reviewer_note"] == "kept on every rewrite"


# ---- labels typed into the annotator --------------------------------------------------------------
LABELS = [
    ("ui2sql", {"sql": "CREATE TABLE users (id INT PRIMARY KEY,, name TEXT);"}, "Empty item between two commas (',,')."),
    ("ui2sql", {"sql": "CREATE TABLE (id INT);"}, "SQL syntax error: Expected table name but got '(' near '('."),
    ("ui2sql", {"sql": make_corpus.one_mb_sql()},
     "The SQL is too long to check (1,048,576 characters; the limit is 100,000)."),
    ("keys", {"keyway": "SC1", "bitting": [3, 0, 2, 4, 6], "brand": "Schlage"}, "bitting position 2 is 0; depth digits are 1-9"),
    ("keys", {"keyway": "SC1", "bitting": [3, 10, 2, 4, 6], "brand": "Schlage"}, "bitting position 2 is 10; a depth is one digit 1-9."),
    ("keys", {"keyway": "SC1", "bitting": ["a", 5, 2, 4, 6], "brand": "Schlage"}, "bitting position 1 is 'a', not a digit 1-9"),
    ("keys", {"keyway": "SC1", "bitting": [3, 5, 2], "brand": "Schlage"}, "bitting has 3 positions; SC1 keys have 5."),
    ("keys", {"keyway": "KW1", "bitting": [1, 2, 3, 4, 5, 6, 7], "brand": "Kwikset"}, "bitting has 7 positions; KW1 keys have 5."),
]


@pytest.mark.parametrize("task, fields, message", LABELS, ids=[f"{t}-{m[:30]}" for t, _, m in LABELS])
def test_bad_label_is_saved_as_typed_and_explained(task, fields, message, tmp_path):
    """The annotator never loses what was typed: it is stored, and validate says what is wrong."""
    ds = Dataset.create(tmp_path / "ds", task)
    rec, _ = ds.add_image(CORPUS / "images" / "cmyk.jpg")
    t = time.perf_counter()
    saved = ds.set_fields(rec["id"], fields)
    issues = [i.message for i in ds.task.validate(saved) if i.severity == "error"]
    assert time.perf_counter() - t < 5.0
    assert any(m.startswith(message) for m in issues), issues
    assert ds.get(rec["id"])["fields"] == {**rec["fields"], **fields}
    report = ds.validate()
    assert any(message in i["reason"] for i in report["issues"]), report["issues"]


def test_non_ascii_identifiers_are_valid_labels(tmp_path):
    ds = Dataset.create(tmp_path / "ds", "ui2sql")
    rec, _ = ds.add_image(CORPUS / "images" / "cmyk.jpg")
    sql = 'CREATE TABLE "Kunden" ("Kundennummer" INT PRIMARY KEY, "Straße" TEXT, "住所" TEXT);'
    saved = ds.set_fields(rec["id"], {"sql": sql})
    assert saved["status"] == "labeled" and ds.task.validate(saved) == []
    assert json.loads((ds.path / "records.jsonl").read_text(encoding="utf-8").splitlines()[0])["fields"]["sql"] == sql
