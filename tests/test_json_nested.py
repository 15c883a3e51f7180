"""Issue 27, peer feature c: nested objects and arrays of objects in the json task. A receipt schema
with `items: [{name, qty, price}]`: its fields (a table of rows), prompt, checks, canonical target,
per-field metrics of the nested values (items.<column>_acc by position, items_f1 by whole rows), where
each value is written (per-field confidence), the Annotate editor's table conversions, and the CLI
end to end: import receipts, a few demo steps of training, eval --json with the nested metrics."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import StudioError
from core.tasks import task_for_dataset
from receipt_images import RECEIPT_SCHEMA, receipt_fields, receipt_image

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = {**RECEIPT_SCHEMA, "properties": {**RECEIPT_SCHEMA["properties"],
                                           "shop": {"type": "object", "properties": {
                                               "city": {"type": "string"}, "open": {"type": "boolean"}},
                                               "required": ["city"]}}}


def task(schema=SCHEMA):
    return task_for_dataset({"task": "json", "name": "receipts", "schema": schema})


def test_fields_prompt_and_describe():
    t = task()
    kinds = [(f.name, f.kind, [(s.name, s.kind, s.required) for s in f.subfields or []]) for f in t.fields]
    assert kinds == [("vendor", "text", []),
                     ("items", "table", [("name", "text", True), ("qty", "number", True), ("price", "number", True)]),
                     ("total", "number", []),
                     ("shop", "object", [("city", "text", True), ("open", "boolean", False)])]
    qty = t.fields[1].subfields[1]
    assert qty.integer and qty.minimum == 1
    prompt = t.prompt({"fields": {}})
    assert ("- items (list of objects, each with name (string; required), qty (integer; 1..; required), "
            "price (number; 0..; required); required): one row per line item") in prompt
    assert "- shop (object with city (string; required), open (boolean; optional); optional)" in prompt
    described = t.describe()["fields"][1]
    assert [s["name"] for s in described["subfields"]] == ["name", "qty", "price"]


@pytest.mark.parametrize("node,says", [
    ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}},
     "nesting goes one level deep"),
    ({"type": "array", "items": {"type": "object", "properties": {"t": {"type": "array", "items": {"type": "string"}}}}},
     "nesting goes one level deep"),
    ({"type": "object", "properties": {"b": {"type": "string"}}, "required": ["c"]}, "names fields that are not"),
    ({"type": "object", "properties": {"9x": {"type": "string"}}}, "field name '9x'"),
    ({"type": "object", "properties": {"b": {"type": "date"}}}, 'properties.x.properties.b has type "date"'),
    ({"type": "object", "properties": {"b": {"type": "string"}}, "oneOf": []}, "keyword 'oneOf' at properties.x"),
])
def test_bad_nested_schemas_are_refused_naming_the_problem(node, says):
    with pytest.raises(StudioError, match="The JSON Schema is not usable") as e:
        task({"type": "object", "properties": {"x": node}})
    assert says in e.value.message


def test_target_drops_blank_rows_and_checks_rows_with_the_schemas_messages():
    t = task()
    fields = {"vendor": "Corner Cafe", "total": 7.0, "shop": {"city": "Oslo", "open": None},
              "items": [{"name": "Tea", "qty": 2, "price": 3.5}, {"name": "", "qty": None, "price": None}]}
    assert t.validate({"fields": fields}) == []
    assert t.target({"fields": fields}) == ('{"items":[{"name":"Tea","price":3.5,"qty":2}],"shop":{"city":"Oslo"},'
                                            '"total":7.0,"vendor":"Corner Cafe"}')
    bad = {"fields": {**fields, "items": [{"name": "Tea", "qty": 0, "price": 3.5}, {"name": "Bun", "price": 1}]}}
    assert [(i.field, i.message) for i in t.validate(bad)] == [
        ("items", "items[0].qty: 0 is less than the minimum of 1"), ("items", "items[1]: 'qty' is a required property")]


def test_nested_metrics_by_position_and_by_whole_rows():
    t = task()
    label = {"fields": {"vendor": "Corner Cafe", "total": 7.0, "shop": {"city": "Oslo"},
                        "items": [{"name": "Tea", "qty": 2, "price": 3.5}, {"name": "Bun", "qty": 1, "price": 2.0}]}}
    same = t.parse(t.target(label))
    scores = t.score(same, label)
    assert scores["exact"] == 1.0 and scores["items_f1"] == 1.0
    assert {k for k in scores if "." in k} == {"items.name_acc", "items.qty_acc", "items.price_acc",
                                               "shop.city_acc", "shop.open_acc"}
    # one row right, one with the wrong qty, one row too many; the shop's city wrong
    pred = t.parse('{"vendor":"Corner Cafe","total":7.0,"shop":{"city":"Bergen"},"items":['
                   '{"name":"Tea","qty":2,"price":3.5},{"name":"Bun","qty":3,"price":2.0},{"name":"Jam","qty":1,"price":1}]}')
    s = t.score(pred, label)
    assert (s["items.name_acc"], s["items.qty_acc"], s["items.price_acc"]) == (pytest.approx(2 / 3),
                                                                               pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert s["items_f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))  # 1 of 3 predicted, 1 of 2 labelled
    assert (s["shop.city_acc"], s["shop.open_acc"], s["items_acc"], s["vendor_acc"], s["exact"]) == (0, 1, 0, 1, 0)
    # order of rows: the row F1 does not care, position accuracy does
    swapped = t.parse('{"vendor":"Corner Cafe","total":7.0,"shop":{"city":"Oslo"},"items":['
                      '{"name":"Bun","qty":1,"price":2.0},{"name":"Tea","qty":2,"price":3.5}]}')
    s = t.score(swapped, label)
    assert s["items_f1"] == 1.0 and s["items.name_acc"] == 0.0


def test_field_spans_locate_nested_values_in_the_answer():
    t = task()
    text = 'Sure:\n```json\n{"items": [{"name": "Tea", "qty": 2, "price": 3.5}, {"name": "Bun", "qty": 1, "price": 2}], "total": 9.0, "vendor": "Corner Cafe"}\n```'
    spans = t.field_spans(text, t.parse(text))
    pick = lambda k: [text[a:b] for a, b in spans[k]]  # noqa: E731
    assert pick("items.name") == ['"Tea"', '"Bun"'] and pick("items.qty") == ["2", "1"] and pick("total") == ["9.0"]
    assert pick("vendor") == ['"Corner Cafe"'] and pick("items")[0].startswith('[{"name": "Tea"')
    assert set(spans) == {"items", "items.name", "items.qty", "items.price", "total", "vendor"}


def test_the_annotate_editor_is_a_table_of_rows():
    from studio import annotate_logic as L

    t = task()
    plan = L.editor_plan(t)
    assert [(f.name, k) for f, k in plan["slots"]] == [("vendor", "text"), ("items", "table"), ("total", "number"),
                                                       ("shop", "table")]
    items, shop = t.fields[1], t.fields[3]
    assert L.table_columns(items) == {"headers": ["name", "qty", "price"], "datatype": ["str", "str", "str"],
                                      "fixed_rows": None}
    assert L.table_columns(shop)["datatype"] == ["str", "bool"] and L.table_columns(shop)["fixed_rows"] == 1
    stored = [{"name": "Tea", "qty": 2, "price": 3.5}]
    cells = L.to_editor(items, "table", stored)
    assert cells == [["Tea", 2, 3.5], ["", "", ""]]  # the rows, then an empty one to type into
    typed = cells[:1] + [["Bun", "1", "2.50"], ["", None, float("nan")]]  # a new row, and a blank one
    assert L.from_editor(items, "table", typed) == stored + [{"name": "Bun", "qty": 1, "price": 2.5}]
    with pytest.raises(StudioError, match="Items, qty in row 2: 'two' is not a number"):
        L.from_editor(items, "table", [["Tea", 2, 3.5], ["Bun", "two", 1]])
    assert L.to_editor(shop, "table", {"city": "Oslo", "open": True}) == [["Oslo", True]]
    assert L.from_editor(shop, "table", [["Oslo", "false"]]) == {"city": "Oslo", "open": False}
    assert L.from_editor(items, "table", [["", "", "", False]]) == []  # the blank row under a table
    values = {"vendor": "Corner Cafe", "items": typed, "total": 6.5, "shop": [["Oslo", None]]}
    fields = L.fields_from_editor(t, values)
    assert fields["items"][1] == {"name": "Bun", "qty": 1, "price": 2.5} and fields["shop"] == {"city": "Oslo"}
    assert L.live_check(t, fields)["status"].count("valid") == 1


def _cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_a_receipt_dataset_trains_and_evaluates_with_nested_metrics(tmp_path):
    (tmp_path / "imgs").mkdir()
    rows = []
    for seed in range(6):
        receipt_image(seed).save(tmp_path / "imgs" / f"r{seed}.png")
        rows.append({"image_path": f"imgs/r{seed}.png", "output": receipt_fields(seed)})
    rows.append({"image_path": "imgs/r0.png", "output": {**receipt_fields(0), "items": [{"name": "Tea", "qty": 0,
                                                                                          "price": 1}]}})
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "schema.json").write_text(json.dumps(RECEIPT_SCHEMA))
    ds_dir = tmp_path / "receipts"
    out = _cli("dataset", "import", str(tmp_path / "labels.jsonl"), "--into", str(ds_dir), "--task", "json",
               "--schema", str(tmp_path / "schema.json"), "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    assert rep["imported"] == 6 and [s["reason"] for s in rep["skipped"]] == [
        "invalid label: items[0].qty: 0 is less than the minimum of 1 [items]"]
    assert _cli("dataset", "split", str(ds_dir), "--val", "0.34", "--min-records", "2").returncode == 0
    run, env = tmp_path / "run", {"TRINITY_WORKSPACE": str(tmp_path / "ws")}
    out = _cli("train", "--dataset", str(ds_dir), "--set", "max_steps=2", "--set", "save_steps=2", "--out", str(run),
               "--no-progress", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    out = _cli("eval", "--run", str(run), "--json", "--max-new-tokens", "24", env=env)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["task"] == "json" and summary["n"] >= 2
    assert {"items.name_acc", "items.qty_acc", "items.price_acc", "items_f1", "items_acc", "vendor_acc",
            "total_acc", "exact", "valid"} <= set(summary["metrics"])
    assert all(0.0 <= v <= 1.0 for v in summary["metrics"].values())
