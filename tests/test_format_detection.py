"""Which format a label file is in: every installed format gives a confidence and the best one reads it;
a tie is reported, and settled by the dataset's task (or --task). A zip keeps the label files of every
installed format (a meter CSV, once the meter task is installed), names what it ignored, and a format
may write its own kind of file (CSV). The default near-duplicate check no longer takes two different
meters for copies."""
from __future__ import annotations

import io
import json
import zipfile

import pytest

import core.tasks as tasks
from core.dataset import Dataset
from core.errors import StudioError
from core.importers import sniff, summary_lines
from core.tasks import BaseTask, Field, Format, Issue, Parsed
from task_install import EXAMPLES, installed


@pytest.fixture
def meter():
    with installed("meter"):
        yield tasks.get_task("meter")


def _png(im) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _meter_image(reading: str, kind: str = "gas"):
    import sys

    sys.path.insert(0, str(EXAMPLES))
    try:
        from meter.render import draw
    finally:
        sys.path.remove(str(EXAMPLES))
    return draw(kind, reading, "m3" if kind != "electricity" else "kWh", 1)


def test_a_jsonl_of_another_structure_is_not_taken_for_keys(tmp_path):
    """The keys importer used to claim any .jsonl: a meter-style file became a keys dataset with every line
    skipped ("no 'bittings' list")."""
    f = tmp_path / "meters.jsonl"
    f.write_text(json.dumps({"image_path": "a.png", "kind": "gas", "reading": "004217", "unit": "m3"}) + "\n")
    with pytest.raises(StudioError, match="not a folder, zip, image or a label file a task reads"):
        sniff(f)
    keylike = tmp_path / "keys.jsonl"   # Keylike's own key, or an unlabeled first key with Keylike's keys only
    keylike.write_text('{"image_path": "a.png", "keyway": "SC1"}\n{"image_path": "b.png", "bittings": [1, 2]}\n')
    assert sniff(keylike) == ("keylike", "keys")
    both = tmp_path / "both.jsonl"   # a Keylike line that also carries an "output": Keylike's key wins
    both.write_text('{"image_path": "a.png", "bittings": [1, 2], "output": {"n": 1}}\n')
    assert sniff(both) == ("keylike", "keys")
    js = tmp_path / "labels.jsonl"
    js.write_text('{"image_path": "a.png", "output": {"n": 1}}\n')
    assert sniff(js) == ("jsonl", "json")


class _Twin(BaseTask):
    """A throwaway task whose format claims any .twin file as surely as its twin's does."""
    fields = [Field("v", "text", "Value")]

    def __init__(self, name):
        self.name, self.title = name, f"twin {name}"
        self.formats = [Format(f"{name}-twin", f"Twin file of {name}", lambda p: p.suffix == ".twin",
                               lambda p: [], suffixes=(".twin",))]

    def prompt(self, record):
        return "?"

    def target(self, record):
        return str((record.get("fields") or {}).get("v", ""))

    def parse(self, text):
        return Parsed(bool(text), {"v": text}, [] if text else [Issue("error", "empty")])

    def score(self, parsed, record):
        return {"v_acc": float(parsed.data.get("v") == (record.get("fields") or {}).get("v"))}


def test_a_tie_is_reported_and_the_dataset_task_settles_it(tmp_path, monkeypatch):
    monkeypatch.setattr(tasks, "_EXTRA", {})
    tasks.reload()
    try:
        tasks.register(_Twin("alpha"))
        tasks.register(_Twin("beta"))
        f = tmp_path / "labels.twin"
        f.write_text("x")
        with pytest.raises(StudioError) as e:
            sniff(f)
        assert "Twin file of alpha (alpha task) or Twin file of beta (beta task)" in e.value.message
        assert "--task alpha or --task beta" in e.value.hint
        assert sniff(f, "beta") == ("beta-twin", "beta")
        ds = Dataset.create(tmp_path / "ds", "alpha")
        assert ds.import_source(f)["format"] == "alpha-twin"
    finally:
        monkeypatch.setattr(tasks, "_EXTRA", {})
        tasks.reload()


def _meter_zip(path, rows):
    with zipfile.ZipFile(path, "w") as zf:
        lines = ["image,kind,reading,unit"]
        for i, (kind, reading) in enumerate(rows):
            zf.writestr(f"photos/m{i}.png", _png(_meter_image(reading, kind)))
            lines.append(f"photos/m{i}.png,{kind},{reading},{'kWh' if kind == 'electricity' else 'm3'}")
        zf.writestr("meter.csv", "\n".join(lines) + "\n")
        zf.writestr("notes.txt", "taken on the 3rd floor")
    return path


def test_a_zip_keeps_the_label_files_of_every_installed_format(tmp_path, meter):
    archive = _meter_zip(tmp_path / "meters.zip", [("gas", "004217"), ("water", "000090"), ("electricity", "100200")])
    assert sniff(archive) == ("zip", "meter")
    ds = Dataset.create(tmp_path / "ds", "meter")
    rep = ds.import_source(archive)
    assert (rep["imported"], rep["labeled"], rep["skipped"], rep["label_file"]) == (3, 3, [], "meter.csv")
    assert sorted(r["fields"]["reading"] for r in ds.records()) == ["000090", "004217", "100200"]
    assert "1 non-image file ignored (notes.txt)" in " ".join(summary_lines(rep))
    # the format writes its own file: a CSV whose readings keep their zeros, which imports back
    res = ds.export("meter-csv", tmp_path / "out")
    text = (tmp_path / "out" / "meters.csv").read_text()
    assert res["out"].endswith("meters.csv") and text.splitlines()[0].startswith("image,kind,reading,unit")
    assert ",gas,004217,m3" in text and ",water,000090,m3" in text
    back = Dataset.create(tmp_path / "back", "meter")
    assert back.import_source(tmp_path / "out")["labeled"] == 3
    assert sorted(r["fields"]["reading"] for r in back.records()) == ["000090", "004217", "100200"]


def test_without_the_task_its_label_file_is_named_as_ignored(tmp_path):
    archive = _meter_zip(tmp_path / "meters.zip", [("gas", "004217"), ("water", "000090")])
    ds = Dataset.create(tmp_path / "ds", "keys")
    rep = ds.import_source(archive)
    assert (rep["imported"], rep["labeled"], rep["ignored"]) == (2, 0, 2)
    line = next(x for x in summary_lines(rep) if "ignored" in x)
    assert "2 non-image files ignored (meter.csv, notes.txt)" in line


def test_the_default_near_duplicate_check_tells_two_meters_apart(tmp_path, meter):
    """Two meters one digit apart were 2 bits apart in the old default's 8x8 hash, as close as a copy."""
    import numpy as np

    from core.dataset_report import _phash

    a, b = _meter_image("004217"), _meter_image("904217")
    assert meter.near_duplicate == BaseTask.near_duplicate == (32, 32)
    assert int(np.bitwise_count(_phash(a, 8) ^ _phash(b, 8)).sum()) <= 2   # what 8x8 saw
    ds = Dataset.create(tmp_path / "ds", "meter")
    ra, _ = ds.add_image(_png(a))
    ds.add_image(_png(b))
    ds.add_image(_png(_meter_image("004218")))
    buf = io.BytesIO()
    a.resize((160, 100)).save(buf, "JPEG", quality=75)
    copy, _ = ds.add_image(buf.getvalue())
    near = {(i["record"], i.get("duplicate_of")) for i in ds.validate()["issues"] if i["code"] == "near_duplicate"}
    assert near == {(copy["id"], ra["id"])}
