"""The Task protocol: the only extension point that knows what a task's labels mean.

A record is a plain dict (see core/dataset.py): {"id", "image", "fields": {...}, "split", "status",
"updated", ...unknown keys kept}. A task reads and writes only record["fields"].

What each field kind stores in record["fields"] (the value the editor saves and the task reads):

    sql      str: SQL text
    choice   one of the field's choices' values (a str for a dropdown of labels)
    digits   list[int] ([1, 2, 5, 3, 7]); with as_string=True a str of digits ("004217", leading zeros
             kept). Each position is one character of the field's alphabet (default "0123456789"),
             min_length..max_length positions (default 1..12).
    text     str (trimmed)
    number   int when integer=True, else float; minimum..maximum when given
    boolean  bool
    list     list of item_kind values (text: str, number: int/float, boolean: bool, choice: a choice)
    object   dict of its subfields' values ({"name": "ACME", "city": "Oslo"}); subfields of simple kinds
    table    list of such dicts, one per row ([{"name": "tea", "qty": 2}, ...])

An empty value is None, "" or []; `required` says whether a labelled record must have it.

Everything outside core/tasks/ (studio, CLI, evaluate, export, model card, API) reads a task through
this protocol and never branches on its name. `BaseTask` gives the optional parts sensible defaults,
so a new task writes only what is its own (fields, prompt, target, parse, score).
"""
from __future__ import annotations

import html as _html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

# Field kinds live in fields.py; imported from here by every task, so re-exported.
from core.tasks.fields import DIGITS, FIELD_KINDS, MAX_DIGITS, NESTED_KINDS, Field, Issue  # noqa: F401

# How a metric's per-record values (Task.score) combine into a run's figure; "mean" unless declared.
AGGREGATES = ("mean", "median", "min", "max", "sum")
DEFAULT_SYSTEM = "You read the image and answer exactly in the requested format, with nothing else."
# Every bundled task decodes alike: greedily (do_sample False), as Compare, Evaluate, the API and the
# exported Modelfile do (core/decoding.py); temperature / top_p apply only when a caller asks to
# sample. A task sets only how long its answers may get (max_new_tokens).
SAMPLING = {"do_sample": False, "temperature": 0.3, "top_p": 0.9}


@dataclass(frozen=True)
class Metric:
    """How one of Task.score's metrics reads: which way is better, and how per-record values combine.

    better: "higher" (accuracies, F1) or "lower" (an absolute error, CER). aggregate: one of AGGREGATES,
    over the records whose score() has this key (a record without it is skipped, and so is a record whose
    image failed); "mean" by default. A metric the task does not declare is higher-better, mean.
    """
    name: str
    better: str = "higher"
    aggregate: str = "mean"
    help: str = ""

    def __post_init__(self):
        if self.better not in ("higher", "lower"):
            raise ValueError(f"Metric {self.name!r}: better must be 'higher' or 'lower', not {self.better!r}.")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"Metric {self.name!r}: aggregate {self.aggregate!r} is not one of {', '.join(AGGREGATES)}.")

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"


def metric_spec(task, name: str) -> Metric:
    """The task's declaration of a metric (Task.metrics: a list of Metric, or name -> Metric), or the
    default: higher is better, mean."""
    declared = getattr(task, "metrics", None) or []
    found = declared.get(name) if isinstance(declared, dict) else next((m for m in declared if m.name == name), None)
    return found or Metric(name)


@dataclass
class Parsed:
    """A model answer (or a label's target text) turned into structure. Never raised from parse().

    ok: the text parsed into the task's structure without errors.
    data: the structure (task-specific; JSON-serialisable).
    errors: what went wrong, with line/column where known.
    compliance: share of the expected answer fields that are present (0..1).
    """
    ok: bool
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[Issue] = field(default_factory=list)
    compliance: float = 1.0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "data": self.data, "errors": [e.to_dict() for e in self.errors],
                "compliance": self.compliance}

    def error_text(self) -> str | None:
        """The errors as one sentence (None when the answer parsed): the API's `error`."""
        if self.ok:
            return None
        problems = [e.message for e in self.errors if e.severity == "error"]
        return "The model's answer did not parse: " + ("; ".join(problems) or "no fields")


@dataclass
class View:
    """What a person sees of a parsed answer, with no gradio: self-contained HTML (may embed SVG),
    the structured JSON form, a one-line verdict, and optionally a table (headers + rows)."""
    html: str
    json: dict
    summary: str = ""
    headers: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)


@dataclass
class Route:
    """A task's own REST route, served under /api/v1 next to the generic /api/v1/tasks/{name}/analyze.

    build(parsed, meta) -> payload, where meta = {"text", "confidence", "model", "run", **params};
    it raises core.errors.StudioError for a bad parameter (the server answers 400).
    params: extra multipart form fields the route takes (name -> description), e.g. ui2sql's dialect;
    check_params(params), when given, refuses bad ones before the model runs.
    response_model: a pydantic BaseModel class describing the payload, for OpenAPI.
    """
    path: str
    summary: str
    response_model: type
    build: Callable[[Parsed, dict], dict]
    params: dict[str, str] = field(default_factory=dict)
    description: str = ""
    check_params: Callable[[dict], None] | None = None   # raises StudioError before the model runs


@dataclass
class Format:
    """A seed import/export format of a task's labels.

    detect(path) -> confidence 0..1 that the label file is in this format (True/False read as 1/0):
    1.0 for the format's own marks (keys it alone uses), around 0.5 for a plausible file, 0.1 for
    "the suffix fits but the content cannot be read" (read() then names the problem), 0 for not this
    format. The importer asks every installed format and takes the highest; a tie between formats of
    different tasks is reported to the user (`--task` or the dataset's task settles it).
    read(path) -> list[core.importers.Item] (core.importers.jsonl_items / csv_items do the line work).
    write(dataset, record, image_rel) -> one output row (None: import only). The rows go out as
    JSON lines (lines=True) or one JSON list, or through dump(rows) -> str | bytes, the file's whole
    content, for any other kind of file (CSV, ...). Rows carry the record's unknown source keys back
    out (source_extra), so dump takes the union of their keys.
    suffixes: label-file suffixes it reads (what zip extraction keeps and the upload box accepts);
    files: globs that find the label file inside an imported folder or zip; default_name: the file an
    export writes into a folder.
    """
    name: str
    title: str
    detect: Callable[[Path], float | bool]
    read: Callable[..., list]
    write: Callable[..., dict] | None = None
    suffixes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    default_name: str = ""
    lines: bool = True
    dump: Callable[[list[dict]], str | bytes] | None = None


def _spellings(value) -> list[str]:
    """Ways a field value may be spelled in an answer, longest first."""
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
        return [s for s in (", ".join(items), ",".join(items), "-".join(items), " ".join(items),
                            "".join(items)) if s]
    s = str(value).strip() if value is not None else ""
    return [s] if s else []


def value_spans(text: str, fields: dict) -> dict[str, list[tuple[int, int]]]:
    """{field: [(start, end)]}: the first place each field's value is spelled in text (a list as
    "1,2,5", "1, 2, 5", ...); a value not found gets no span."""
    out = {}
    for name, value in (fields or {}).items():
        for s in _spellings(value):
            at = text.find(s)
            if at >= 0:
                out[name] = [(at, at + len(s))]
                break
    return out


@runtime_checkable
class Task(Protocol):
    name: str                      # registry key, e.g. "ui2sql"
    title: str                     # shown in the UI
    fields: list[Field]            # what the annotator edits
    generation: dict               # generation preset: max_new_tokens, do_sample, temperature, top_p
    system_prompt: str             # for exported models (model card, Modelfile)
    headline_metric: str           # the metric a run is summarised by
    bands: dict                    # metric -> ((band name, floor), ...), best first
    formats: list[Format]          # seed import/export formats
    route: Route | None            # its own REST route, if any
    metrics: list[Metric]          # direction and aggregation of score()'s metrics (undeclared: higher, mean)
    settings: dict                 # per-dataset settings asked for at creation: name -> what it is
    example_settings: dict         # a working value of each setting (example datasets, the contract tests)
    demo_recipe: dict              # TrainConfig overrides of the demo base's recipe for this task
    near_duplicate: tuple          # the dataset report's perceptual hash: (side, bits)

    def configure(self, meta: dict) -> "Task": ...
    def check(self, fields: dict) -> list[Issue]: ...
    def prompt(self, record: dict) -> str: ...
    def target(self, record: dict) -> str: ...
    def parse(self, text: str) -> Parsed: ...
    def validate(self, record: dict) -> list[Issue]: ...
    def score(self, parsed: Parsed, record: dict) -> dict[str, float]: ...
    def view(self, parsed: Parsed) -> View: ...
    def samples(self, n: int = 2) -> list[dict]: ...
    def fields_from_parsed(self, parsed: Parsed) -> dict: ...
    def is_labeled(self, record: dict) -> bool: ...


def normalize_fields(fields: dict) -> dict:
    """The default of Task.normalize_fields: the label in the form two labels are compared in. The
    same form means the same label, so the studio saves a record only when this changes (looking at
    a record never rewrites it). Empty values (None, "", []) are dropped, and text loses its
    surrounding whitespace and its line-ending style ("a\r\n" and "a" are one label); numbers
    compare as numbers (1 == 1.0)."""
    def norm(v):
        if isinstance(v, str):
            return v.replace("\r\n", "\n").strip()
        if isinstance(v, list):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return normalize_fields(v)
        return v
    return {k: norm(v) for k, v in (fields or {}).items() if v not in (None, "", [])}


class BaseTask:
    """Defaults for the optional parts of the protocol; a task overrides what it knows better."""
    name = ""
    title = ""
    fields: list[Field] = []
    max_new_tokens = 256          # the answer length cap; `generation` adds SAMPLING
    system_prompt = DEFAULT_SYSTEM
    headline_metric = "format_compliance"
    bands: dict = {}               # metric -> ((band, bound), ...), best first: floors for a higher-better
                                   # metric, ceilings for a lower-better one (Task.metrics says which)
    formats: list[Format] = []
    route: Route | None = None
    metrics: list[Metric] = []
    settings: dict = {}            # per-dataset settings it takes (name -> what it is), e.g. the json schema
    example_settings: dict = {}    # a working value of each setting, e.g. a small schema
    demo_recipe: dict = {}         # TrainConfig overrides of the demo base's recipe for this task
    # The dataset report's perceptual hash: side, and the bits within which two images count as "nearly
    # identical" (a re-saved copy). At 8x8 two meters one digit apart were 0-2 bits apart, like a copy;
    # at 32x32 they were 48 or more and a resized JPEG copy 28 or fewer (bench/near_duplicate.py).
    near_duplicate = (32, 32)

    @property
    def generation(self) -> dict:
        """The generation preset: the shared sampling settings with this task's answer length cap."""
        return {"max_new_tokens": self.max_new_tokens, **SAMPLING}

    def configure(self, meta: dict) -> "BaseTask":
        """The task for one dataset (its dataset.json as meta). Tasks with per-dataset settings,
        such as the json task's schema, return a configured copy; raise StudioError when bad."""
        return self

    def check(self, fields: dict) -> list[Issue]:
        """The live check while a person types: the label's issues."""
        return self.validate({"id": "", "image": "", "fields": dict(fields or {})})

    def validate(self, record: dict) -> list[Issue]:
        """Every field: empty when required, else its value against its kind (Field.check)."""
        out = []
        f = record.get("fields") or {}
        for fld in self.fields:
            if fld.required and f.get(fld.name) in (None, "", []):
                out.append(Issue("error", f"{fld.label} is empty.", fld.name))
            else:
                out += fld.check(f.get(fld.name))
        return out

    def is_labeled(self, record: dict) -> bool:
        return not any(i.severity == "error" for i in self.validate(record))

    def normalize_fields(self, fields: dict) -> dict:
        """The label in the form two labels are compared in (see normalize_fields above)."""
        return normalize_fields(fields)

    def fields_from_parsed(self, parsed: Parsed) -> dict:
        data = parsed.data if parsed else {}
        return {f.name: data.get(f.name) for f in self.fields if f.name in data}

    def view(self, parsed: Parsed) -> View:
        data = parsed.data if parsed else {}
        problems = [e.message for e in (parsed.errors if parsed else [])]
        body = _html.escape(json.dumps(data, indent=2, ensure_ascii=False))
        notes = "".join(f"<li>{_html.escape(p)}</li>" for p in problems)
        page = f"<pre class='task-view'>{body}</pre>" + (f"<ul class='task-issues'>{notes}</ul>" if notes else "")
        verdict = "parsed" if parsed and parsed.ok else f"{len(problems)} problem(s)"
        rows = [[k, v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v, ensure_ascii=False)]
                for k, v in data.items()]
        return View(html=page, json=dict(data), summary=verdict, headers=["field", "value"], rows=rows)

    def samples(self, n: int = 2) -> list[dict]:
        """Records with a PIL image under "image_obj" to check an export on; none by default."""
        return []

    def field_spans(self, text: str, parsed: Parsed) -> dict[str, list[tuple[int, int]]]:
        """Where each field's value is written in a parsed answer: {field: [(start, end) character
        spans]}. core.infer turns them into per-field confidences (the model's probabilities of the
        tokens spelling the field). By default each value is found by its spelling (value_spans)."""
        try:
            fields = self.fields_from_parsed(parsed)
        except Exception:  # noqa: BLE001 - a task that can't rebuild fields from a half answer: no spans
            return {}
        return value_spans(text, fields)

    def editor_setup(self, fields: dict) -> dict:
        """Editor settings that follow the label being typed: {digits field: {"positions",
        "min_positions", "digits"}}. By default a digits field offers its own alphabet on its
        max_length positions."""
        out = {}
        for f in self.fields:
            if f.kind == "digits":
                lo, hi = f.length_range
                out[f.name] = {"positions": hi, "min_positions": lo, "digits": list(f.digit_alphabet)}
        return out

    def prefill(self, changed: str, fields: dict) -> dict:
        """Values to put into other fields when the user changes `changed` (none by default)."""
        return {}

    def describe(self) -> dict:
        """The task as plain data (for the CLI and API listings)."""
        return {"name": self.name, "title": self.title,
                "fields": [{**f.to_dict(), "value_type": f.value_type()} for f in self.fields],
                "headline_metric": self.headline_metric,
                "metrics": [{"name": m.name, "better": m.better, "aggregate": m.aggregate} for m in self.metrics],
                "route": self.route.path if self.route else None}
