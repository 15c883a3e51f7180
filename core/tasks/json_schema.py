"""json: an image -> one JSON object, defined by a JSON Schema the user writes (meter readings,
receipts, forms, product labels). The schema lives in the dataset's dataset.json ("schema"); the
task is configured from it per dataset (`configure`), so a new structure costs no code at all.

Supported schemas: an object with "properties" of type string (optionally "enum"), integer or
number ("minimum"/"maximum"), boolean, and arrays of those; one level of nesting: an object of such
scalars, or an array of such objects (a receipt's line items, edited as a table of rows;
core/tasks/json_nested.py); "required" lists the fields that must be there. Validation is the
`jsonschema` package's, and its messages are shown as they are.
The target is canonical JSON (sorted keys, no spaces); score gives `<field>_acc` per field, `exact`,
`valid` and `format_compliance` (share of the schema's fields present in the answer), and for nested
fields `<field>.<sub>_acc` per sub-field plus `<field>_f1` (rows matched whole) for a list of objects.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache

import jsonschema
from jsonschema.exceptions import SchemaError

from core.errors import StudioError
from core.tasks import json_nested as N
from core.tasks.base import BaseTask, Field, Format, Issue, Parsed

SCALARS = ("string", "integer", "number", "boolean")
TOP_KEYWORDS = {"$schema", "$id", "type", "title", "description", "properties", "required",
                "additionalProperties", "$comment", "examples"}
FIELD_KEYWORDS = {"type", "title", "description", "enum", "minimum", "maximum", "exclusiveMinimum",
                  "exclusiveMaximum", "minLength", "maxLength", "pattern", "default", "examples", "$comment",
                  "items", "minItems", "maxItems", "uniqueItems", "multipleOf"}
ITEM_KEYWORDS = FIELD_KEYWORDS - {"items", "minItems", "maxItems", "uniqueItems"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_FENCE = re.compile(r"```(?:json)?\s*\n?(.*?)(?:```|$)", re.S | re.I)
BANDS = (("excellent", 0.90), ("good", 0.75))


def _bad(message: str, hint: str = "") -> StudioError:
    return StudioError(f"The JSON Schema is not usable: {message}", hint or
                       'Write an object schema, e.g. {"type": "object", "properties": {"reading": '
                       '{"type": "integer", "minimum": 0}}, "required": ["reading"]}.')


def _unsupported(node: dict, allowed: set, where: str) -> None:
    extra = sorted(set(node) - allowed)
    if extra:
        raise _bad(f"keyword '{extra[0]}' at {where} is not supported.",
                   f"Supported at {where}: {', '.join(sorted(allowed))}. Objects nested more than one level, $ref, "
                   "oneOf/anyOf/allOf and the like are not.")


def _scalar(node, where: str, allowed: set) -> str:
    if not isinstance(node, dict):
        raise _bad(f"{where} must be an object, not {type(node).__name__}.")
    _unsupported(node, allowed, where)
    kind = node.get("type")
    if kind not in SCALARS:
        shown = json.dumps(kind) if kind is not None else "missing"
        raise _bad(f"{where} has type {shown}; use one of {', '.join(SCALARS)}"
                   + (" or array" if "items" in allowed else "") + ".")
    if "enum" in node and (not isinstance(node["enum"], list) or not node["enum"]):
        raise _bad(f"{where}: enum must be a non-empty list.")
    return kind


def check_schema(schema) -> dict:
    """The schema, checked: StudioError naming what is wrong (not an object, empty, an unsupported
    keyword or type, or what jsonschema's meta-schema check says)."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except json.JSONDecodeError as e:
            raise _bad(f"it is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}).") from None
    if not isinstance(schema, dict):
        raise _bad(f"it must be a JSON object, not {type(schema).__name__}.")
    if not schema:
        raise _bad("it is empty ({}); it must list the fields to read.")
    _unsupported(schema, TOP_KEYWORDS, "the top level")
    if schema.get("type") != "object":
        raise _bad(f'the top level must have "type": "object", not {json.dumps(schema.get("type"))}.')
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        raise _bad('it has no "properties"; list at least one field.')
    for name, node in props.items():
        if not _NAME.match(name):
            raise _bad(f"field name '{name}' is not usable; use letters, digits and _ (starting with a letter).")
        where = f"properties.{name}"
        if N.is_object(node):
            N.check_object(node, where, _bad, _unsupported, _scalar, ITEM_KEYWORDS, _NAME)
        elif N.is_table(node):
            _unsupported(node, FIELD_KEYWORDS, where)
            N.check_object(node["items"], f"{where}.items", _bad, _unsupported, _scalar, ITEM_KEYWORDS, _NAME)
        elif isinstance(node, dict) and node.get("type") == "array":
            _unsupported(node, FIELD_KEYWORDS, where)
            _scalar(node.get("items"), f"{where}.items", ITEM_KEYWORDS)
        else:
            _scalar(node, where, FIELD_KEYWORDS)
    req = schema.get("required", [])
    if not isinstance(req, list) or any(r not in props for r in req):
        missing = [r for r in req if r not in props] if isinstance(req, list) else req
        raise _bad(f"required names fields that are not in properties: {missing}.")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except SchemaError as e:
        path = ".".join(str(p) for p in e.path) or "the top level"
        raise _bad(f"{e.message} (at {path}).") from None
    return schema


def _field(name: str, node: dict, required: bool) -> Field:
    label, helptext = node.get("title") or name.replace("_", " ").capitalize(), node.get("description", "")
    if N.is_object(node):
        return Field(name, "object", label, helptext, required, subfields=N.subfields(node, _field))
    if N.is_table(node):
        return Field(name, "table", label, helptext or "One row per item.", required,
                     subfields=N.subfields(node["items"], _field))
    if node.get("type") == "array":
        items = node["items"]
        kind = "choice" if "enum" in items else ("number" if items["type"] in ("integer", "number") else
                                                 "boolean" if items["type"] == "boolean" else "text")
        return Field(name, "list", label, helptext or "One item per line.", required,
                     choices=[str(c) for c in items.get("enum", [])] or None, item_kind=kind,
                     minimum=items.get("minimum"), maximum=items.get("maximum"), integer=items["type"] == "integer")
    kind = node["type"]
    if "enum" in node:
        return Field(name, "choice", label, helptext, required, choices=list(node["enum"]))
    if kind in ("integer", "number"):
        return Field(name, "number", label, helptext, required, minimum=node.get("minimum"),
                     maximum=node.get("maximum"), integer=kind == "integer")
    return Field(name, "boolean" if kind == "boolean" else "text", label, helptext, required)


def _describe(name: str, node: dict, required: bool) -> str:
    kind = node["type"]
    if N.is_object(node) or N.is_table(node):
        kind = N.describe_nested(node)
    elif kind == "array":
        kind = f"list of {node['items']['type']}" + (f" from {node['items']['enum']}" if "enum" in node["items"] else "")
    bits = [kind]
    if "enum" in node:
        bits.append("one of " + ", ".join(json.dumps(v) for v in node["enum"]))
    if "minimum" in node or "maximum" in node:
        bits.append(f"{node.get('minimum', '')}..{node.get('maximum', '')}")
    bits.append("required" if required else "optional")
    return f"- {name} ({'; '.join(bits)})" + (f": {node['description']}" if node.get("description") else "")


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _located(e, text: str | None = None) -> Issue:
    """A jsonschema error as an Issue at its field, in the schema's own words."""
    path = list(e.absolute_path)
    field = str(path[0]) if path else None
    where = "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(path))
    message = f"{where}: {e.message}" if where else e.message
    return Issue("error", message, field)


class JsonTask(BaseTask):
    name = "json"
    title = "Image -> JSON (fields from your JSON Schema)"
    headline_metric = "exact"
    bands = {"format_compliance": BANDS}
    # near_duplicate: the default 32x32 hash within 32 bits suits documents of one template too (40
    # generated receipts >= 42 bits apart, a re-saved copy <= 30; tests/test_near_duplicates.py).
    # Per-dataset settings (stored in dataset.json), asked for when a dataset is created.
    settings = {"schema": "JSON Schema of the answer: an object whose properties are strings (optionally enum), "
                          "integers/numbers (minimum/maximum), booleans or arrays of those"}
    example_settings = {"schema": {"type": "object", "title": "parcel label", "properties": {
        "count": {"type": "integer", "minimum": 0, "maximum": 20}, "colour": {"type": "string", "enum": ["red", "blue"]},
        "fragile": {"type": "boolean"}}, "required": ["count", "colour"]}}

    def __init__(self, schema: dict | None = None):
        self.schema = schema
        self._validator = jsonschema.validators.validator_for(schema)(schema) if schema else None

    # ---- configuration
    def configure(self, meta: dict) -> "JsonTask":
        schema = (meta or {}).get("schema")
        if schema is None:
            raise StudioError(f"Dataset '{(meta or {}).get('name', '?')}' is a json dataset without a schema.",
                              'Add "schema": {...} (a JSON Schema of an object) to its dataset.json, or create the '
                              "dataset with --schema SCHEMA.json.")
        return _configured(json.dumps(schema, ensure_ascii=False, separators=(",", ":")))  # keeps field order

    @property
    def props(self) -> dict:
        return (self.schema or {}).get("properties") or {}

    @property
    def required(self) -> set:
        return set((self.schema or {}).get("required") or [])

    @property
    def fields(self) -> list[Field]:
        return [_field(n, node, n in self.required) for n, node in self.props.items()]

    @property
    def max_new_tokens(self) -> int:
        return 64 + 32 * len(self.props)

    @property
    def system_prompt(self) -> str:
        names = ", ".join(self.props) or "the requested fields"
        return f"You read the image and answer with one JSON object with the fields {names}, and nothing else."

    formats = property(lambda self: FORMATS)

    # ---- the task
    def prompt(self, record: dict) -> str:
        schema = self.schema or {}
        head = schema.get("description") or (f"Read this image: {schema['title']}." if schema.get("title") else
                                             "Read this image.")
        lines = [head,
                 "Answer with one JSON object with these fields:",
                 *(_describe(n, node, n in self.required) for n, node in self.props.items()),
                 "Answer with the JSON object only."]
        return "\n".join(lines)

    def _clean(self, fields: dict) -> dict:
        """The label as the schema sees it: empty optional fields are absent."""
        out = {}
        for k, v in (fields or {}).items():
            if k in self.props:
                v = N.clean_nested(v, self.props[k])
            if v is None or (k not in self.required and v in ("", [], {})):
                continue
            out[k] = v
        return out

    def validate(self, record: dict) -> list[Issue]:
        fields = self._clean(record.get("fields") or {})
        if self._validator is None:
            return [Issue("error", "This json task has no schema.", None)]
        issues = [_located(e) for e in sorted(self._validator.iter_errors(fields), key=lambda e: list(e.path))]
        for name in sorted(self.required):
            if fields.get(name) == "":
                issues.append(Issue("error", f"{name}: is empty.", name))
        return issues

    def is_labeled(self, record: dict) -> bool:
        return bool(self.schema) and not self.validate(record)

    def target(self, record: dict) -> str:
        errors = self.validate(record)
        if errors:
            raise StudioError(f"Record {record.get('id', '?')}'s label does not fit the schema: {errors[0].message}",
                              "Fix the label in Annotate (or leave the record unlabeled).")
        return canonical(self._clean(record.get("fields") or {}))

    def parse(self, text) -> Parsed:
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        body, offset_line = text, 0
        fence = _FENCE.search(text)
        if fence:
            body, offset_line = fence.group(1), text.count("\n", 0, fence.start(1))
        start = body.find("{")
        if start < 0:
            msg = "The answer is empty." if not text.strip() else "The answer has no JSON object ('{' not found)."
            return Parsed(False, {}, [Issue("error", msg, None, 1, 1)], 0.0)
        try:
            obj, _end = json.JSONDecoder().raw_decode(body, start)
        except json.JSONDecodeError as e:
            return Parsed(False, {}, [Issue("error", f"Not valid JSON: {e.msg}.", None, e.lineno + offset_line,
                                            e.colno)], 0.0)
        if not isinstance(obj, dict):
            return Parsed(False, {}, [Issue("error", "The JSON is not an object.", None)], 0.0)
        errors = ([_located(e) for e in sorted(self._validator.iter_errors(obj), key=lambda e: list(e.path))]
                  if self._validator else [])
        present = sum(1 for k in self.props if k in obj)
        return Parsed(not errors, obj, errors, present / len(self.props) if self.props else 1.0)

    def score(self, parsed: Parsed, record: dict) -> dict[str, float]:
        truth = self._clean(record.get("fields") or {})
        pred = parsed.data if parsed else {}
        out = {f"{k}_acc": float(canonical(truth.get(k)) == canonical(pred.get(k))) for k in self.props}
        for k, node in self.props.items():
            if N.is_object(node) or N.is_table(node):
                out.update(N.nested_scores(k, node, truth.get(k), pred.get(k)))
        out["exact"] = float(bool(parsed and parsed.ok) and all(v == 1.0 for v in out.values()))
        out["valid"] = float(bool(parsed and parsed.ok))
        out["format_compliance"] = float(parsed.compliance) if parsed else 0.0
        return out

    def fields_from_parsed(self, parsed: Parsed) -> dict:
        data = parsed.data if parsed else {}
        return {k: data[k] for k in self.props if k in data}

    def samples(self, n: int = 2) -> list[dict]:
        """Records that fit the schema, each on an image that shows its values as text."""
        from PIL import Image, ImageDraw, ImageFont

        out, font = [], ImageFont.load_default(size=16)
        for i in range(n if self.schema else 0):
            fields = {k: v for k, node in self.props.items() if (v := _sample_value(node, i)) is not None}
            im = Image.new("RGB", (256, 24 + 20 * len(fields)), (250, 250, 245))
            ImageDraw.Draw(im).multiline_text((8, 8), "\n".join(f"{k}: {v}" for k, v in fields.items()),
                                              fill=(20, 20, 20), font=font)
            out.append({"id": f"sample-{i}", "image_obj": im, "fields": fields})
        return out

    def field_spans(self, text: str, parsed: Parsed) -> dict:
        """Where each field's value (and each nested sub-field's, `items.name`) is written in the
        answer's JSON, for per-field confidence; the generic search when the text cannot be scanned."""
        text = text if isinstance(text, str) else ""
        fence = _FENCE.search(text)
        start = text.find("{", fence.start(1) if fence else 0)
        try:
            spans = N.json_spans(text, start) if start >= 0 else {}
        except (ValueError, IndexError):
            return super().field_spans(text, parsed)
        names = set(self.props) | {f"{f.name}.{s.name}" for f in self.fields for s in (f.subfields or [])}
        return {k: v for k, v in spans.items() if k in names}

    def view(self, parsed: Parsed):
        view = super().view(parsed)
        view.html += N.tables_html(self.fields, parsed.data if parsed else {})
        if parsed and parsed.ok:
            view.summary = f"valid · {len(parsed.data)} field{'s' * (len(parsed.data) != 1)}"
        elif parsed and parsed.errors:
            view.summary = f"invalid · {sum(e.severity == 'error' for e in parsed.errors)} error(s)"
        return view


def _sample_value(node: dict, i: int):
    """The i-th example value of a schema property (enum values in turn, numbers from the minimum up)."""
    kind = node.get("type")
    if "enum" in node:
        return node["enum"][i % len(node["enum"])]
    if kind in ("integer", "number"):
        lo, hi = node.get("minimum", 0), node.get("maximum", 10 ** 6)
        return min(hi, lo + i + 1)
    if kind == "boolean":
        return i % 2 == 0
    if kind == "string":
        return f"sample {i + 1}"
    if kind == "object":  # a nested object (or a table's row): a value for each of its properties
        return {k: v for k, sub in (node.get("properties") or {}).items() if (v := _sample_value(sub, i)) is not None}
    if kind == "array" and isinstance(node.get("items"), dict):
        item = _sample_value(node["items"], i)
        return [] if item is None else [item]
    return None


@lru_cache(maxsize=64)
def _configured(schema_text: str) -> JsonTask:
    return JsonTask(check_schema(json.loads(schema_text)))


# ---- import/export: JSONL lines {"image_path": "...", "output": {...}} ---------------------------
def _detect(path) -> float:
    """Its lines are {"image_path", "output": {...}}: both on the first line and nothing else 1.0, with
    other keys too 0.8, an "output" object without image_path 0.5; anything else (or a first line that
    does not parse) is not this format."""
    if path.suffix.lower() != ".jsonl":
        return 0.0
    from core.importers import first_jsonl_object

    try:
        obj = first_jsonl_object(path)
    except (OSError, ValueError):
        return 0.0
    if not (isinstance(obj, dict) and isinstance(obj.get("output"), dict)):
        return 0.0
    if "image_path" not in obj:
        return 0.5
    return 1.0 if set(obj) <= {"image_path", "output"} else 0.8


def _read(path) -> list:
    from core.importers import jsonl_items, resolve_image, source_extra

    base, items = path.parent.resolve(), []
    for it, obj, n in jsonl_items(path):
        items.append(it)
        if obj is None:
            continue
        raw = obj.get("image_path")
        it.image_path = raw if isinstance(raw, str) else repr(raw)
        it.extra = source_extra("jsonl", path, it.ref - 1, obj, {"image_path", "output"}, line=n)
        if not isinstance(obj.get("output"), dict):
            it.code, it.reason = "bad_field", "'output' must be a JSON object of the schema's fields"
            continue
        it.fields = obj["output"]
        resolve_image(base, it)
    return items


def _write(ds, record: dict, image_rel: str) -> dict:
    return {"image_path": image_rel, "output": json.loads(ds.task.target(record))}


FORMATS = [Format("jsonl", "JSON lines {image_path, output}", _detect, _read, _write, suffixes=(".jsonl",),
                  files=("*.jsonl",), default_name="labels.jsonl", lines=True)]
TASK = JsonTask()
