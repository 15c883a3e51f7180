"""Import through the CLI (issue 2's acceptance) and the API: bad records are skipped with their
record and reason, good ones import, nothing already in the dataset is lost."""
from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.__main__ import main
from core.dataset import Dataset

ROOT = Path(__file__).resolve().parent.parent
GOOD_SQL = "CREATE TABLE users (id INT PRIMARY KEY, name TEXT NOT NULL);"
SHOP_SQL = ("CREATE TABLE products (id INT PRIMARY KEY, title TEXT);\n"
            "CREATE TABLE orders (id INT PRIMARY KEY, product_id INT REFERENCES products(id));")


def save_png(path: Path, seed: int, size=(48, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def corrupt_png(path: Path, seed: int) -> Path:
    save_png(path, seed)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def run_cli(capsys, *argv) -> tuple[int, dict | str]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, (json.loads(out) if "--json" in argv else out)


def by_record(report: dict) -> dict:
    return {s["record"]: s for s in report["skipped"]}


def test_ghost_acceptance(tmp_path, capsys):
    # the dataset already holds one labeled record (from a plain image folder + a label edit)
    save_png(tmp_path / "old" / "screen.png", 1)
    into = tmp_path / "ds"
    code, rep = run_cli(capsys, "dataset", "import", str(tmp_path / "old"), "--into", str(into),
                        "--task", "ui2sql", "--json")
    assert code == 0 and rep["imported"] == 1
    ds = Dataset.open(into)
    old = ds.set_fields(ds.records()[0]["id"], {"sql": GOOD_SQL}, status="reviewed")

    src = tmp_path / "ghost"
    save_png(src / "images" / "a.png", 10)
    save_png(src / "images" / "b.png", 11)
    save_png(src / "images" / "c.png", 12)
    corrupt_png(src / "images" / "broken.png", 13)
    save_png(tmp_path / "outside.png", 14)
    (src / "images" / "old.png").write_bytes((tmp_path / "old" / "screen.png").read_bytes())
    rows = [
        {"image_path": "images/a.png", "instruction": "Schema?", "output": GOOD_SQL, "domain": "crm"},
        {"image_path": "images/broken.png", "instruction": "Schema?", "output": GOOD_SQL, "domain": "crm"},
        {"image_path": "images/b.png", "instruction": "Schema?", "output": SHOP_SQL, "domain": "shop"},
        {"image_path": "images/a.png", "instruction": "Schema?", "output": GOOD_SQL, "domain": "crm"},
        {"image_path": "../outside.png", "instruction": "Schema?", "output": GOOD_SQL, "domain": "crm"},
        {"image_path": "images/c.png", "instruction": "Schema?", "output": "CREATE TABLE t (id INT,, x TEXT)"},
        {"image_path": "images/old.png", "output": "CREATE TABLE replaced (id INT PRIMARY KEY);"},
        {"image_path": str(tmp_path / "outside.png"), "output": GOOD_SQL},
        {"image_path": 5, "output": GOOD_SQL},
    ]
    (src / "dataset_vision.json").write_text(json.dumps(rows))
    code, rep = run_cli(capsys, "dataset", "import", str(src / "dataset_vision.json"), "--into", str(into), "--json")
    assert code == 0
    assert rep["imported"] == 2 and rep["total"] == 3
    skipped = by_record(rep)
    skipped = {k - 1: v for k, v in skipped.items()}  # items count from 1; the list above from 0
    assert set(skipped) == {1, 3, 4, 5, 6, 7, 8}
    assert "truncated" in skipped[1]["reason"] and skipped[1]["image_path"] == "images/broken.png"
    assert skipped[3]["code"] == "duplicate" and "same image" in skipped[3]["reason"]
    assert skipped[4]["code"] == "path_escapes" and "outside" in skipped[4]["reason"]
    assert skipped[5]["code"] == "invalid_label" and "',,'" in skipped[5]["reason"]
    assert skipped[6]["code"] == "duplicate" and "different labels" in skipped[6]["reason"]
    assert skipped[7]["code"] == "path_escapes"
    assert skipped[8]["code"] == "bad_field" and "string" in skipped[8]["reason"]
    assert rep["labeled"] == 2 and rep["split"] == {"train": 3, "val": 0, "test": 0, "none": 0}
    assert {r["split"] for r in Dataset.open(into).records()} == {"train"}  # ready to train at once
    # nothing already in the dataset was lost or overwritten
    kept = Dataset.open(into).get(old["id"])
    assert kept["fields"]["sql"] == GOOD_SQL and kept["status"] == "reviewed"
    imported = {r["fields"].get("domain"): r for r in Dataset.open(into).records() if r["id"] != old["id"]}
    assert imported["shop"]["fields"]["sql"] == SHOP_SQL and imported["crm"]["status"] == "labeled"
    assert imported["crm"]["fields"]["instruction"] == "Schema?"


def test_keylike_acceptance_via_subprocess(tmp_path):
    src = tmp_path / "keylike"
    for i in range(3):
        save_png(src / "img" / f"k{i}.png", 20 + i)
    corrupt_png(src / "img" / "broken.png", 30)
    save_png(tmp_path / "secret.png", 31)
    lines = [
        json.dumps({"image_path": "img/k0.png", "bittings": [1, 2, 5, 3, 7], "keyway": "SC1",
                    "brand": "Schlage", "shot": "desk"}),
        '{"image_path": "img/k1.png", "bittings": [1, 2,',
        json.dumps({"image_path": "img/broken.png", "bittings": [1, 2, 5, 3, 7], "keyway": "SC1"}),
        json.dumps({"image_path": "img/k0.png", "bittings": [1, 2, 5, 3, 7], "keyway": "SC1"}),
        json.dumps({"image_path": "../secret.png", "bittings": [1, 2, 5, 3, 7], "keyway": "SC1"}),
        json.dumps({"image_path": "img/k1.png", "bittings": [1, 0, 5, 3, 7], "keyway": "SC1"}),
        json.dumps({"image_path": "img/k2.png", "bittings": [2, 4, 6, 4, 2, 1], "keyway": "KW1",
                    "brand": "Kwikset"}),
        json.dumps({"image_path": "img/k1.png", "bittings": ["a", 2]}),
    ]
    (src / "keys.jsonl").write_text("\n".join(lines) + "\n")
    into = tmp_path / "keys-ds"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "core", "dataset", "import", str(src / "keys.jsonl"),
                          "--into", str(into), "--json"], capture_output=True, text=True, cwd=ROOT, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["imported"] == 1 and rep["task"] == "keys"
    skipped = {s["line"]: s for s in rep["skipped"]}
    assert set(skipped) == {2, 3, 4, 5, 6, 7, 8}
    assert "not valid JSON" in skipped[2]["reason"]
    assert "truncated" in skipped[3]["reason"] or "corrupt" in skipped[3]["reason"]
    assert skipped[4]["code"] == "duplicate"
    assert skipped[5]["code"] == "path_escapes"
    assert skipped[6]["code"] == "invalid_label" and "is 0" in skipped[6]["reason"]
    assert skipped[7]["code"] == "invalid_label" and "positions" in skipped[7]["reason"]  # KW1 has 5 cuts
    assert skipped[8]["code"] == "bad_field" and "'a'" in skipped[8]["reason"]
    rec = Dataset.open(into).records()[0]
    assert rec["fields"] == {"keyway": "SC1", "bitting": [1, 2, 5, 3, 7], "brand": "Schlage"}
    assert rep["labeled"] == 1 and rec["split"] == "train"  # labeled on import, so it trains
    assert rec["source_extra"] == {"shot": "desk"}  # unknown fields kept

    # the human form: one line per skipped record, exit 0
    out = subprocess.run([sys.executable, "-m", "core", "dataset", "import", str(src / "keys.jsonl"),
                          "--into", str(into)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0 and "line 6" in out.stdout and "Imported 0 new images." in out.stdout
    assert "Skipped 8 items:" in out.stdout and "(s)" not in out.stdout
    assert len(Dataset.open(into).records()) == 1


def test_unusable_sources_exit_2_and_create_nothing(tmp_path, capsys):
    bad = tmp_path / "dataset_vision.json"
    bad.write_text('[{"image_path": "a.png", "output": "x"},,]')
    code, rep = run_cli(capsys, "dataset", "import", str(bad), "--into", str(tmp_path / "new"), "--json")
    assert code == 2 and "not valid JSON" in rep["error"] and "line 1" in rep["error"]
    assert not (tmp_path / "new").exists()
    code, rep = run_cli(capsys, "dataset", "import", str(tmp_path / "missing"), "--into", str(tmp_path / "n"), "--json")
    assert code == 2 and "does not exist" in rep["error"]
    save_png(tmp_path / "pics" / "a.png", 1)
    code, rep = run_cli(capsys, "dataset", "import", str(tmp_path / "pics"), "--into", str(tmp_path / "n"), "--json")
    assert code == 2 and "--task" in rep["hint"]
    keys = Dataset.create(tmp_path / "keysds", "keys")
    bad.write_text(json.dumps([{"image_path": "pics/a.png", "output": GOOD_SQL}]))
    code, rep = run_cli(capsys, "dataset", "import", str(bad), "--into", str(keys.path), "--json")
    assert code == 2 and "ui2sql" in rep["error"]
    (tmp_path / "obj.json").write_text('{"a": 1}')
    code, rep = run_cli(capsys, "dataset", "import", str(tmp_path / "obj.json"), "--into", str(tmp_path / "n2"), "--json")
    assert code == 2 and "not a list" in rep["error"] and not (tmp_path / "n2").exists()


def _zip_with(path: Path, entries: list[tuple[str, bytes]], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def _png_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    arr = np.random.default_rng(seed).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def test_zip_refuses_unsafe_entries(tmp_path, capsys):
    z = _zip_with(tmp_path / "shots.zip", [
        ("shots/a.png", _png_bytes(1)),
        ("shots/sub/b.jpg", _png_bytes(2)),            # wrong extension: still an image
        ("../evil.png", _png_bytes(3)),
        ("/abs/evil.png", _png_bytes(4)),
        ("shots/notes.png", b"this is text\n"),
        ("shots/bomb.png", b"\0" * (30 * 1024 ** 2)),  # 30 MB of zeros: ratio ~1000:1
        ("shots/readme.txt", b"hello"),
    ], symlink="shots/link.png")
    code, rep = run_cli(capsys, "dataset", "import", str(z), "--into", str(tmp_path / "ds"),
                        "--task", "ui2sql", "--json")
    assert code == 0 and rep["imported"] == 2 and rep["ignored"] == 1
    sk = by_record(rep)
    assert "zip-slip" in sk["../evil.png"]["reason"]
    assert "absolute" in sk["/abs/evil.png"]["reason"]
    assert "symbolic link" in sk["shots/link.png"]["reason"]
    assert "zip bomb" in sk["shots/bomb.png"]["reason"]
    assert "text file" in sk["shots/notes.png"]["reason"]
    assert not (tmp_path / "evil.png").exists()
    assert {r["status"] for r in Dataset.open(tmp_path / "ds").records()} == {"unlabeled"}


def test_zip_of_ghost_folder_and_folder_symlinks(tmp_path, capsys):
    rows = [{"image_path": "images/a.png", "instruction": "i", "output": GOOD_SQL, "domain": "crm"}]
    z = _zip_with(tmp_path / "ghost.zip", [("ghost/dataset_vision.json", json.dumps(rows).encode()),
                                           ("ghost/images/a.png", _png_bytes(5))])
    code, rep = run_cli(capsys, "dataset", "import", str(z), "--into", str(tmp_path / "g"), "--json")
    assert code == 0 and rep["imported"] == 1 and rep["task"] == "ui2sql"

    folder = tmp_path / "pics"
    save_png(folder / "x" / "y" / "deep.png", 6)
    save_png(tmp_path / "private.png", 7)
    (folder / "leak.png").symlink_to(tmp_path / "private.png")
    ds = Dataset.create(tmp_path / "f", "keys")
    rep = ds.import_source(folder)
    assert rep["imported"] == 1 and by_record(rep)["leak.png"]["code"] == "path_escapes"


def test_export_round_trips(tmp_path, capsys):
    src = tmp_path / "ghost"
    save_png(src / "images" / "a.png", 40)
    save_png(src / "images" / "b.png", 41)
    rows = [{"image_path": "images/a.png", "instruction": "Schema?", "output": GOOD_SQL, "domain": "crm"},
            {"image_path": "images/b.png", "instruction": "Schema?", "output": SHOP_SQL, "domain": "shop",
             "author": "me"}]
    (src / "dataset_vision.json").write_text(json.dumps(rows))
    ds_dir = tmp_path / "ds"
    assert run_cli(capsys, "dataset", "import", str(src / "dataset_vision.json"), "--into", str(ds_dir))[0] == 0

    out = tmp_path / "out-ghost"
    code, rep = run_cli(capsys, "dataset", "export", str(ds_dir), "--format", "ghost", "--out", str(out), "--json")
    assert code == 0 and rep["records"] == 2
    back = json.loads((out / "dataset_vision.json").read_text())
    assert sorted((r["output"], r["domain"]) for r in back) == sorted((r["output"], r["domain"]) for r in rows)
    assert any(r.get("author") == "me" for r in back) and all((out / r["image_path"]).is_file() for r in back)
    code, rep = run_cli(capsys, "dataset", "import", str(out / "dataset_vision.json"), "--into",
                        str(tmp_path / "ds2"), "--json")
    assert rep["imported"] == 2 and rep["skipped"] == []
    assert code == 0 and run_cli(capsys, "dataset", "export", str(ds_dir), "--format", "ghost", "--out", str(out))[0] == 2
    assert run_cli(capsys, "dataset", "export", str(ds_dir), "--format", "keylike", "--out", str(tmp_path / "k"))[0] == 2

    hf = tmp_path / "out-hf"
    code, rep = run_cli(capsys, "dataset", "export", str(ds_dir), "--format", "hf", "--out", str(hf), "--json")
    assert code == 0 and rep["records"] == 2
    import datasets
    d = datasets.load_from_disk(str(hf))
    assert set(d.column_names) >= {"images", "messages"} and len(d) == 2
    ds = Dataset.open(ds_dir)
    row = d[0]
    rec = ds.get(row["id"])
    assert row["messages"][0] == {"role": "user", "content": ds.task.prompt(rec)}
    assert row["messages"][1] == {"role": "assistant", "content": ds.task.target(rec)}
    assert row["images"][0].size == (48, 32)


def test_validate_and_split_cli(tmp_path, capsys):
    for i in range(25):
        save_png(tmp_path / "pics" / f"{i}.png", 200 + i)
    ds_dir = tmp_path / "ds"
    run_cli(capsys, "dataset", "import", str(tmp_path / "pics"), "--into", str(ds_dir), "--task", "ui2sql")
    ds = Dataset.open(ds_dir)
    for r in ds.records()[:22]:
        ds.set_fields(r["id"], {"sql": GOOD_SQL})
    code, rep = run_cli(capsys, "dataset", "validate", str(ds_dir), "--json")
    assert code == 0 and rep["records"] == 25
    assert sum(1 for i in rep["issues"] if i["code"] == "missing_labels") == 3
    code, text = run_cli(capsys, "dataset", "validate", str(ds_dir))
    assert code == 0 and "25 records" in text and "not labeled yet" in text
    code, rep = run_cli(capsys, "dataset", "split", str(ds_dir), "--json")
    assert code == 0 and rep["split"] == {"train": 19, "val": 3, "test": 0, "none": 3}
    code, rep = run_cli(capsys, "dataset", "split", str(ds_dir), "--val", "0.2", "--test", "0.1", "--json")
    assert rep["split"] == {"train": 14, "val": 5, "test": 3, "none": 3}
    assert run_cli(capsys, "dataset", "validate", str(tmp_path / "pics"))[0] == 2


def test_validate_exits_1_when_the_dataset_has_errors(tmp_path, capsys):
    """Scripts and CI fail on `dataset validate`: 0 = no errors (warnings are fine), 1 = errors found,
    2 = the folder is not a dataset (issue 27: it exited 0 with errors)."""
    for i in range(3):
        save_png(tmp_path / "pics" / f"{i}.png", 300 + i)
    ds_dir = tmp_path / "ds"
    run_cli(capsys, "dataset", "import", str(tmp_path / "pics"), "--into", str(ds_dir), "--task", "ui2sql")
    ds = Dataset.open(ds_dir)
    recs = ds.records()
    ds.set_fields(recs[0]["id"], {"sql": GOOD_SQL})
    code, rep = run_cli(capsys, "dataset", "validate", str(ds_dir), "--json")
    assert (code, rep["errors"]) == (0, 0) and rep["warnings"] == 2   # two unlabeled records: warnings only
    ds.image_path(recs[1]).unlink()                                     # an error: its image is gone
    code, rep = run_cli(capsys, "dataset", "validate", str(ds_dir), "--json")
    assert code == 1 and rep["errors"] == 1 and rep["by_code"]["missing_image"] == 1
    code, text = run_cli(capsys, "dataset", "validate", str(ds_dir))
    assert code == 1 and "is missing" in text
    with pytest.raises(SystemExit):
        main(["dataset", "validate", "--help"])
    assert "exit status: 0 no errors" in " ".join(capsys.readouterr().out.split())


def test_a_label_file_without_its_images_says_what_to_upload(tmp_path):
    """dataset_vision.json uploaded on its own: every item misses its image, and the report says to
    upload a zip or give the folder, instead of only failing item by item."""
    from core.importers import item_name, summary_lines

    rows = [{"image_path": f"images/{i}.png", "instruction": "i", "output": GOOD_SQL} for i in range(2)]
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "dataset_vision.json").write_text(json.dumps(rows))
    ds = Dataset.create(tmp_path / "ds", "ui2sql")
    rep = ds.import_source(tmp_path / "up" / "dataset_vision.json")
    assert rep["imported"] == 0 and [item_name(s) for s in rep["skipped"]] == ["item 1", "item 2"]
    assert "Upload a zip that holds dataset_vision.json and its images" in rep["hint"] and "path box" in rep["hint"]
    assert summary_lines({"imported": 2, "labeled": 2}) == ["Imported 2 new images, all labeled."]
    assert summary_lines({"imported": 1, "labeled": 0, "duplicates": 1}) == [
        "Imported 1 new image, not labeled yet.", "1 duplicate image skipped (already in the dataset)."]
