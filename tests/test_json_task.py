"""The json task: image -> a JSON object defined by the user's JSON Schema. Schema checks, the fields
and prompt it implies, parse/score/target, and the CLI end to end (import with bad records refused
and named, a few demo training steps, eval --json with <field>_acc)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from core.dataset import Dataset
from core.errors import StudioError
from core.tasks import get_task, task_for_dataset

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = {"type": "object", "title": "water meter",
          "properties": {"reading": {"type": "integer", "minimum": 0, "maximum": 99999, "description": "digits shown"},
                         "unit": {"type": "string", "enum": ["m3", "l"]},
                         "ok": {"type": "boolean"},
                         "serial": {"type": "string"},
                         "dials": {"type": "array", "items": {"type": "number"}}},
          "required": ["reading", "unit"]}


def task(schema=SCHEMA):
    return task_for_dataset({"task": "json", "name": "meters", "schema": schema})


@pytest.mark.parametrize("schema,says", [
    ([{"type": "object"}], "must be a JSON object, not list"),
    ("not json", "not valid JSON"),
    ({}, "it is empty"),
    ({"type": "object", "properties": {}}, 'no "properties"'),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "oneOf": []}, "keyword 'oneOf' at the top level"),
    ({"type": "object", "properties": {"a": {"type": "string", "format": "date"}}},
     "keyword 'format' at properties.a is not supported"),
    ({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, "keyword '$ref' at properties.a"),
    ({"type": "object", "properties": {"a": {"type": "object"}}}, 'properties.a is an object without "properties"'),
    ({"type": "array", "items": {"type": "string"}}, "keyword 'items' at the top level"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]}, "not in properties"),
    ({"type": "object", "properties": {"a": {"type": "integer", "minimum": "zero"}}},
     "'zero' is not of type 'number' (at properties.a.minimum)"),   # jsonschema's meta-schema check
])
def test_bad_schemas_are_refused_naming_the_problem(schema, says, tmp_path):
    with pytest.raises(StudioError, match="The JSON Schema is not usable") as e:
        task(schema)
    assert says in e.value.message
    with pytest.raises(StudioError):
        Dataset.create(tmp_path / "d", "json", config={"schema": schema})
    assert not (tmp_path / "d").exists()  # nothing written


def test_a_json_dataset_without_a_schema_says_so(tmp_path):
    with pytest.raises(StudioError, match="json dataset without a schema"):
        Dataset.create(tmp_path / "d", "json")


def test_fields_follow_the_schema_in_its_order():
    t = task()
    got = [(f.name, f.kind, f.required, f.choices, f.integer, f.minimum, f.maximum, f.item_kind) for f in t.fields]
    assert got == [("reading", "number", True, None, True, 0, 99999, None),
                   ("unit", "choice", True, ["m3", "l"], False, None, None, None),
                   ("ok", "boolean", False, None, False, None, None, None),
                   ("serial", "text", False, None, False, None, None, None),
                   ("dials", "list", False, None, False, None, None, "number")]
    prompt = t.prompt({"fields": {}})
    assert "- reading (integer; 0..99999; required): digits shown" in prompt
    assert '- unit (string; one of "m3", "l"; required)' in prompt and "- dials (list of number; optional)" in prompt


def test_target_is_canonical_json_and_labels_are_checked_with_the_schemas_messages():
    t = task()
    rec = {"id": "r1", "fields": {"unit": "m3", "reading": 42, "serial": "", "ok": None, "dials": [1.5, 2]}}
    assert t.validate(rec) == [] and t.is_labeled(rec)
    assert t.target(rec) == '{"dials":[1.5,2],"reading":42,"unit":"m3"}'  # sorted keys, no spaces, empties out
    bad = {"id": "r2", "fields": {"unit": "kg", "reading": "42", "dials": ["x"]}}
    assert [(i.message, i.field) for i in t.validate(bad)] == [
        ("dials[0]: 'x' is not of type 'number'", "dials"), ("reading: '42' is not of type 'integer'", "reading"),
        ("unit: 'kg' is not one of ['m3', 'l']", "unit")]
    assert [i.message for i in t.validate({"fields": {"unit": "l"}})] == ["'reading' is a required property"]
    assert not t.is_labeled(bad)
    with pytest.raises(StudioError, match="does not fit the schema"):
        t.target(bad)


def test_parse_locates_errors_and_score_gives_field_accuracies():
    t = task()
    label = {"fields": {"reading": 42, "unit": "m3"}}
    good = t.parse('Here you go:\n```json\n{"unit": "m3", "reading": 42}\n```')
    assert good.ok and good.data == {"unit": "m3", "reading": 42} and good.compliance == pytest.approx(2 / 5)
    assert t.score(good, label) == {"reading_acc": 1.0, "unit_acc": 1.0, "ok_acc": 1.0, "serial_acc": 1.0,
                                    "dials_acc": 1.0, "exact": 1.0, "valid": 1.0,
                                    "format_compliance": pytest.approx(0.4)}
    broken = t.parse('{\n  "reading": 42,\n  "unit": m3\n}')
    assert not broken.ok and [(e.line, e.column) for e in broken.errors] == [(3, 11)]
    assert broken.errors[0].message.startswith("Not valid JSON")
    wrong = t.parse('{"reading": 41, "unit": "gallons"}')
    assert [(e.field, e.message) for e in wrong.errors] == [("unit", "unit: 'gallons' is not one of ['m3', 'l']")]
    scores = t.score(wrong, label)
    assert scores["reading_acc"] == 0.0 and scores["unit_acc"] == 0.0 and scores["valid"] == 0.0
    none = t.parse("I cannot read this meter.")
    assert not none.ok and none.compliance == 0.0 and t.score(none, label)["format_compliance"] == 0.0
    assert get_task("json").parse('{"a": 1}').ok  # unconfigured: any object


def _images(folder: Path, n: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        im = Image.new("RGB", (96, 64), (235, 235, 235))
        ImageDraw.Draw(im).rectangle([4, 4, 8 + 9 * i, 40], fill=(30, 60, 200 - 10 * i))
        im.save(folder / f"m{i}.png")
        names.append(f"imgs/m{i}.png")
    return names


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_cli_import_refuses_bad_records_then_trains_and_evaluates(tmp_path):
    names = _images(tmp_path / "imgs", 8)
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    good = [{"image_path": n, "output": {"reading": 11 * i, "unit": ["m3", "l"][i % 2]}} for i, n in enumerate(names)]
    bad = [{"image_path": names[0], "output": {"reading": "12", "unit": "m3"}},   # wrong type
           {"image_path": names[1], "output": {"reading": 3, "unit": "kg"}},      # enum value outside the list
           {"image_path": names[2], "output": {"unit": "l"}},                     # missing required field
           {"image_path": names[3], "output": "12 m3"}]                           # not an object
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(x) + "\n" for x in good + bad))
    ds_dir = tmp_path / "meters"
    out = _cli("dataset", "import", str(tmp_path / "labels.jsonl"), "--into", str(ds_dir), "--task", "json",
               "--schema", str(tmp_path / "schema.json"), "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["imported"] == 8 and rep["format"] == "jsonl"
    assert [(s["line"], s["reason"]) for s in rep["skipped"]] == [
        (9, "invalid label: reading: '12' is not of type 'integer' [reading]"),
        (10, "invalid label: unit: 'kg' is not one of ['m3', 'l'] [unit]"),
        (11, "invalid label: 'reading' is a required property"),
        (12, "'output' must be a JSON object of the schema's fields")]
    meta = json.loads((ds_dir / "dataset.json").read_text())
    assert meta["task"] == "json" and meta["schema"] == SCHEMA
    ds = Dataset.open(ds_dir)
    assert all(r["status"] == "labeled" for r in ds.records())

    # a bad schema: exit 2 with the reason, and no dataset folder left behind
    (tmp_path / "bad.json").write_text(json.dumps({"type": "object", "properties": {"a": {"type": "date"}}}))
    out = _cli("dataset", "import", str(tmp_path / "labels.jsonl"), "--into", str(tmp_path / "nope"), "--task",
               "json", "--schema", str(tmp_path / "bad.json"), "--json")
    assert out.returncode == 2 and 'properties.a has type "date"' in json.loads(out.stdout)["error"]
    assert not (tmp_path / "nope").exists()

    # export and import back: the same labels
    out = _cli("dataset", "export", str(ds_dir), "--format", "jsonl", "--out", str(tmp_path / "exp"), "--json")
    assert out.returncode == 0, out.stderr
    back = [json.loads(x) for x in (tmp_path / "exp" / "labels.jsonl").read_text().splitlines()]
    assert sorted(json.dumps(b["output"], sort_keys=True) for b in back) == \
        sorted(json.dumps(g["output"], sort_keys=True) for g in good)

    # a few demo steps, then eval --json with the per-field metrics
    assert _cli("dataset", "split", str(ds_dir), "--val", "0.25", "--min-records", "2").returncode == 0
    run = tmp_path / "run"
    env = {"TRINITY_WORKSPACE": str(tmp_path / "ws")}
    out = _cli("train", "--dataset", str(ds_dir), "--set", "max_steps=2", "--set", "save_steps=2", "--out", str(run),
               "--no-progress", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    out = _cli("eval", "--run", str(run), "--json", "--max-new-tokens", "16", env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["task"] == "json" and summary["n"] == 2
    assert set(summary["metrics"]) == {"reading_acc", "unit_acc", "ok_acc", "serial_acc", "dials_acc", "exact",
                                       "valid", "format_compliance"}
    assert summary["headline"]["metric"] == "exact" and summary["format_compliance"]["band"] in (
        "excellent", "good", "needs work")
