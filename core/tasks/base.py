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

An empty value is None, "" or []; `required` says whether a labelled record must have it.

Everything outside core/tasks/ (studio, CLI, evaluate, export, model card, API) reads a task through
this protocol and never branches on its name. `BaseTask` gives the optional parts sensible defaults,
so a new task writes only what is its own (fields, prompt, target, parse, score).
"""
from __future__ import annotations

import html as _html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

# What an annotator can edit; the studio has one editor per kind (value types: the module doc).
FIELD_KINDS = ("sql", "choice", "digits", "text", "number", "boolean", "list")
DIGITS = "0123456789"
MAX_DIGITS = 12                # positions a digits field may have (the editor's pickers)
# How a metric's per-record values (Task.score) combine into a run's figure; "mean" unless declared.
AGGREGATES = ("mean", "median", "min", "max", "sum")
DEFAULT_SYSTEM = "You read the image and answer exactly in the requested format, with nothing else."
# Every bundled task samples alike; a task sets only how long its answers may get (max_new_tokens).
SAMPLING = {"temperature": 0.3, "top_p": 0.9}


@dataclass
class Field:
    """One thing the annotator edits; its value type per kind is in the module doc.

    kind: one of FIELD_KINDS. choices: the options of a "choice" (or of a list's items): values, or
    (label, value) pairs.
    minimum/maximum: bounds of a "number" (or a list's number items); integer: whole numbers only.
    item_kind: for kind "list", the kind of its items ("text", "number", "boolean", "choice").
    alphabet / min_length / max_length / as_string: a "digits" field's digit characters (default
    "0123456789"; with as_string False they must be 0-9, since each becomes an int), how many positions
    it has (default 1..MAX_DIGITS) and whether its value is a string ("004217") or a list of ints.
    """
    name: str
    kind: str
    label: str
    help: str = ""
    required: bool = True
    choices: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    item_kind: str | None = None
    integer: bool = False
    alphabet: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    as_string: bool = False

    def __post_init__(self):
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"Field {self.name!r}: kind {self.kind!r} is not one of {', '.join(FIELD_KINDS)}.")
        if self.kind == "list" and self.item_kind not in (None, *FIELD_KINDS):
            raise ValueError(f"Field {self.name!r}: item_kind {self.item_kind!r} is not a field kind.")
        if self.kind == "digits":
            alphabet = self.digit_alphabet
            if not alphabet or len(set(alphabet)) != len(alphabet):
                raise ValueError(f"Field {self.name!r}: alphabet {alphabet!r} must list distinct characters.")
            if not self.as_string and not set(alphabet) <= set(DIGITS):
                raise ValueError(f"Field {self.name!r}: alphabet {alphabet!r} has characters other than 0-9; "
                                 "a list-of-ints digits field takes 0-9 only (use as_string=True).")
            lo, hi = self.length_range
            if not 1 <= lo <= hi <= MAX_DIGITS:
                raise ValueError(f"Field {self.name!r}: length {lo}..{hi} must lie within 1..{MAX_DIGITS}.")

    @property
    def digit_alphabet(self) -> str:
        """A digits field's characters: `alphabet`, else minimum..maximum (the older way), else 0-9."""
        if self.alphabet:
            return self.alphabet
        lo = int(self.minimum) if self.minimum is not None else 0
        hi = int(self.maximum) if self.maximum is not None else 9
        return "".join(str(d) for d in range(lo, hi + 1))

    @property
    def length_range(self) -> tuple[int, int]:
        return (self.min_length or 1, self.max_length or MAX_DIGITS)

    def alphabet_text(self) -> str:
        """The alphabet for people: "0-9" for a run of digits, "0, 2, 4" when it is not one."""
        a = self.digit_alphabet
        run = len(a) > 2 and all(ord(b) - ord(x) == 1 for x, b in zip(a, a[1:]))
        return f"{a[0]}-{a[-1]}" if run else ", ".join(a)

    def value_type(self) -> str:
        """What this field stores, in words (the module doc's table, for this field)."""
        if self.kind == "digits":
            lo, hi = self.length_range
            n = f"{lo}" if lo == hi else f"{lo}-{hi}"
            each = f"{n} digits from {self.alphabet_text()}"
            return f"str of {each}" if self.as_string else f"list of int, {each}"
        if self.kind == "number":
            rng = "" if self.minimum is None and self.maximum is None else \
                f" in {'' if self.minimum is None else self.minimum}..{'' if self.maximum is None else self.maximum}"
            return ("int" if self.integer else "float") + rng
        if self.kind == "list":
            return f"list of {self.item_kind or 'text'}"
        return {"sql": "str (SQL)", "choice": "one of the choices", "text": "str", "boolean": "bool"}[self.kind]

    def choice_values(self) -> list:
        return [c[1] if isinstance(c, (list, tuple)) else c for c in (self.choices or [])]

    def check(self, value) -> list["Issue"]:
        """The value against its kind (type, choices, range, alphabet, length); [] for an empty value,
        which `required` covers. BaseTask.validate runs it for every field."""
        if value in (None, "", []):
            return []
        bad = lambda text: [Issue("error", f"{self.label} {text}", self.name)]  # noqa: E731
        if self.kind == "digits":
            return self._check_digits(value, bad)
        if self.kind == "number":
            return self._check_number(value, bad)
        if self.kind == "boolean":
            return [] if isinstance(value, bool) else bad(f"is {value!r}, not true or false.")
        if self.kind == "choice":
            ok = value in self.choice_values() if self.choices else isinstance(value, str)
            return [] if ok else bad(f"is {value!r}, not one of the choices.")
        if self.kind == "list":
            if not isinstance(value, list):
                return bad(f"is a {type(value).__name__}, not a list.")
            item = Field(self.name, self.item_kind or "text", self.label, choices=self.choices,
                         minimum=self.minimum, maximum=self.maximum, integer=self.integer)
            return [i for v in value for i in item.check(v)][:1]
        return [] if isinstance(value, str) else bad(f"is a {type(value).__name__}, not text.")

    def _check_digits(self, value, bad) -> list["Issue"]:
        alphabet, (lo, hi) = self.digit_alphabet, self.length_range
        if self.as_string:
            if not isinstance(value, str):
                return bad(f"is a {type(value).__name__}; it is stored as a string of digits, e.g. \"0042\".")
            chars = list(value)
        else:
            if not isinstance(value, list) or any(isinstance(d, bool) or not isinstance(d, int) for d in value):
                return bad(f"is {value!r}; it is stored as a list of whole digits, e.g. [1, 2, 5].")
            chars = [str(d) for d in value]
        for i, c in enumerate(chars, 1):
            if c not in alphabet:
                return bad(f"position {i} is '{c}', not a digit {self.alphabet_text()}.")
        if not lo <= len(chars) <= hi:
            want = str(lo) if lo == hi else f"{lo}-{hi}"
            return bad(f"has {len(chars)} digits; it takes {want}.")
        return []

    def _check_number(self, value, bad) -> list["Issue"]:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad(f"is {value!r}, not a number.")
        if self.integer and not float(value).is_integer():
            return bad(f"is {value}, not a whole number.")
        if self.minimum is not None and value < self.minimum:
            return bad(f"is {value}, below the minimum {self.minimum}.")
        if self.maximum is not None and value > self.maximum:
            return bad(f"is {value}, above the maximum {self.maximum}.")
        return []

    def to_dict(self) -> dict:
        # `is not False`, not `not in (None, False)`: 0 == False would drop "minimum": 0
        return {k: v for k, v in asdict(self).items() if k == "required" or (v is not None and v is not False)}


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
class Issue:
    """A problem with a label or a model answer. severity: "error" | "warning"."""
    severity: str
    message: str
    field: str | None = None
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


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


@runtime_checkable
class Task(Protocol):
    name: str                      # registry key, e.g. "ui2sql"
    title: str                     # shown in the UI
    fields: list[Field]            # what the annotator edits
    generation: dict               # generation preset: max_new_tokens, temperature, top_p
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
