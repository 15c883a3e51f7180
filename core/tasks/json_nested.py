"""Nested structures of the json task: a property that is an object of scalars (`vendor: {name,
city}`), or an array of such objects (a receipt's `items: [{name, qty, price}]`). One level deep:
the nested properties are scalars (string, optionally enum; integer / number; boolean).

What lives here, used by core/tasks/json_schema.py:
- checking a nested object schema (`check_object`);
- the annotator's fields: kind "object" (one row of sub-fields) and "table" (rows of sub-fields);
- the prompt's description of a nested property;
- dropping empty optional values inside nested values (what the editor leaves blank);
- per-field metrics of nested values (see `nested_scores`);
- where each value is written in a JSON answer (`json_spans`), for per-field confidence.
"""
from __future__ import annotations

import json
import re
from collections import Counter

OBJECT_KEYWORDS = {"type", "title", "description", "properties", "required", "additionalProperties", "$comment",
                   "examples"}
_WS = re.compile(r"\s*")


def is_object(node) -> bool:
    return isinstance(node, dict) and node.get("type") == "object"


def is_table(node) -> bool:
    """An array of objects: the editor's table of rows."""
    return isinstance(node, dict) and node.get("type") == "array" and is_object(node.get("items"))


def check_object(node: dict, where: str, bad, unsupported, scalar, item_keywords: set, name_re) -> None:
    """A nested object's schema: known keywords, a non-empty "properties" of scalars with usable names,
    "required" naming its own properties. bad / unsupported / scalar are json_schema's checkers."""
    unsupported(node, OBJECT_KEYWORDS, where)
    props = node.get("properties")
    if not isinstance(props, dict) or not props:
        raise bad(f'{where} is an object without "properties"; list its fields (e.g. "name": {{"type": "string"}}).')
    for name, sub in props.items():
        if not name_re.match(name):
            raise bad(f"field name '{name}' at {where} is not usable; use letters, digits and _ (starting with a letter).")
        inner = f"{where}.properties.{name}"
        if isinstance(sub, dict) and sub.get("type") in ("object", "array"):
            raise bad(f"{inner} has type {json.dumps(sub.get('type'))}: nesting goes one level deep.",
                      "Inside a nested object (or a row of a list of objects) use strings, numbers, integers and "
                      "booleans; flatten deeper structures into more columns.")
        scalar(sub, inner, item_keywords)
    req = node.get("required", [])
    if not isinstance(req, list) or any(r not in props for r in req):
        missing = [r for r in req if r not in props] if isinstance(req, list) else req
        raise bad(f"required at {where} names fields that are not in its properties: {missing}.")


def subfields(node: dict, make_field) -> list:
    """The sub-fields of a nested object (or of each row of a table), in the schema's order."""
    req = set(node.get("required") or [])
    return [make_field(n, sub, n in req) for n, sub in (node.get("properties") or {}).items()]


def describe_nested(node: dict) -> str:
    """'object with name (string; required), city (string; optional)' for the prompt."""
    obj = node["items"] if is_table(node) else node
    req = set(obj.get("required") or [])
    parts = []
    for n, sub in obj["properties"].items():
        bits = [sub["type"]]
        if "enum" in sub:
            bits.append("one of " + ", ".join(json.dumps(v) for v in sub["enum"]))
        if "minimum" in sub or "maximum" in sub:
            bits.append(f"{sub.get('minimum', '')}..{sub.get('maximum', '')}")
        bits.append("required" if n in req else "optional")
        parts.append(f"{n} ({'; '.join(bits)})")
    return ("list of objects, each with " if is_table(node) else "object with ") + ", ".join(parts)


def _clean_object(obj: dict, node: dict):
    req = set(node.get("required") or [])
    if not isinstance(obj, dict):
        return obj
    return {k: v for k, v in obj.items() if not (v is None or (k not in req and v in ("", [])))}


def clean_nested(value, node: dict):
    """A nested value as the schema sees it: empty optional sub-values are absent, and rows left
    wholly empty in a table are dropped."""
    if is_object(node):
        return _clean_object(value, node)
    if is_table(node) and isinstance(value, list):
        blank = lambda r: isinstance(r, dict) and all(v in (None, "", []) for v in r.values())  # noqa: E731
        return [_clean_object(r, node["items"]) if isinstance(r, dict) else r for r in value if not blank(r)]
    return value


def _canon(v) -> str:
    return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_f1(truth: list, pred: list) -> float:
    """Rows matched whole (every column equal), as multisets: F1 of precision (predicted rows that
    are in the label) and recall (label rows that were predicted). Both empty: 1."""
    t, p = Counter(map(_canon, truth)), Counter(map(_canon, pred))
    if not t and not p:
        return 1.0
    hit = sum((t & p).values())
    if not hit:
        return 0.0
    precision, recall = hit / sum(p.values()), hit / sum(t.values())
    return 2 * precision * recall / (precision + recall)


def nested_scores(name: str, node: dict, truth, pred) -> dict[str, float]:
    """Per-field metrics of a nested property:
    - object `vendor`: `vendor.<sub>_acc` (1 when that sub-value equals the label's);
    - table `items`: `items.<column>_acc`, the column's accuracy over rows aligned by position
      (rows missing on either side count as wrong; both lists empty: 1), and `items_f1`, the
      row-matched F1 (a row counts only when all its columns are right; order does not matter)."""
    out: dict[str, float] = {}
    if is_object(node):
        t = truth if isinstance(truth, dict) else {}
        p = pred if isinstance(pred, dict) else {}
        for sub in node["properties"]:
            out[f"{name}.{sub}_acc"] = float(_canon(t.get(sub)) == _canon(p.get(sub)))
        return out
    t = [r for r in truth if isinstance(r, dict)] if isinstance(truth, list) else []
    p = [r for r in pred if isinstance(r, dict)] if isinstance(pred, list) else []
    n = max(len(t), len(p))
    for sub in node["items"]["properties"]:
        same = sum(_canon(a.get(sub)) == _canon(b.get(sub)) for a, b in zip(t, p))
        out[f"{name}.{sub}_acc"] = same / n if n else 1.0
    out[f"{name}_f1"] = row_f1(t, p)
    return out


def json_spans(text: str, start: int) -> dict[str, list[tuple[int, int]]]:
    """{path: [(start, end)]}: where each value of the JSON object at text[start] is written; a
    top-level key's path is its name, a nested one `parent.key` (every row of a list shares one
    path: `items.name` holds each row's name). ValueError / IndexError when the text is not JSON."""
    out: dict[str, list[tuple[int, int]]] = {}
    dec = json.JSONDecoder()

    def ws(i: int) -> int:
        return _WS.match(text, i).end()

    def value(i: int, path: str) -> int:
        i = ws(i)
        if text[i] == "{":
            j = ws(i + 1)
            if text[j] == "}":
                return j + 1
            while True:
                key, j = dec.raw_decode(text, j)
                j = ws(j)
                if text[j] != ":":
                    raise ValueError("':' expected")
                j = ws(j + 1)
                at = j
                key_path = f"{path}.{key}" if path else str(key)
                j = value(j, key_path)
                out.setdefault(key_path, []).append((at, j))
                j = ws(j)
                if text[j] == ",":
                    j = ws(j + 1)
                    continue
                if text[j] == "}":
                    return j + 1
                raise ValueError("',' or '}' expected")
        if text[i] == "[":
            j = ws(i + 1)
            if text[j] == "]":
                return j + 1
            while True:
                j = ws(value(j, path))  # the rows share their list's path
                if text[j] == ",":
                    j = ws(j + 1)
                    continue
                if text[j] == "]":
                    return j + 1
                raise ValueError("',' or ']' expected")
        return dec.raw_decode(text, i)[1]

    value(start, "")
    return out


def tables_html(fields: list, data: dict) -> str:
    """The answer's lists of objects as HTML tables (one per table field), for the task's view."""
    import html

    out = []
    for f in fields:
        rows = data.get(f.name) if f.kind == "table" else None
        if not isinstance(rows, list) or not rows:
            continue
        cols = [s.name for s in f.subfields]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape('' if not isinstance(r, dict) or r.get(c) is None else str(r.get(c)))}</td>"
                                        for c in cols) + "</tr>" for r in rows)
        out.append(f"<table class='task-table'><caption>{html.escape(f.label)}</caption><thead><tr>{head}</tr></thead>"
                   f"<tbody>{body}</tbody></table>")
    return "".join(out)
