"""The Task protocol: the only extension point that knows what a task's labels mean.

A record is a plain dict (see core/dataset.py): {"id", "image", "fields": {...}, "split", "status",
"updated", ...unknown keys kept}. A task reads and writes only record["fields"].

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

# What an annotator can edit; the studio has one editor per kind.
FIELD_KINDS = ("sql", "choice", "digits", "text", "number", "boolean", "list")
DEFAULT_SYSTEM = "You read the image and answer exactly in the requested format, with nothing else."
# Every bundled task samples alike; a task sets only how long its answers may get (max_new_tokens).
SAMPLING = {"temperature": 0.3, "top_p": 0.9}


@dataclass
class Field:
    """One thing the annotator edits.

    kind: one of FIELD_KINDS. choices: the options of a "choice" (or of a list's items): values, or
    (label, value) pairs.
    minimum/maximum: bounds of a "number" (or a list's number items); integer: whole numbers only.
    item_kind: for kind "list", the kind of its items ("text", "number", "boolean", "choice").
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

    def __post_init__(self):
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"Field {self.name!r}: kind {self.kind!r} is not one of {', '.join(FIELD_KINDS)}.")
        if self.kind == "list" and self.item_kind not in (None, *FIELD_KINDS):
            raise ValueError(f"Field {self.name!r}: item_kind {self.item_kind!r} is not a field kind.")

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v not in (None, False) or k == "required"}


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

    detect(path) -> bool: the label file is in this format. read(path) -> list[core.importers.Item].
    write(dataset, record, image_rel) -> one output row (None: import only); rows go out as JSON lines
    (lines=True) or one JSON list, into default_name. files: globs that find the label file inside an
    imported folder or zip; suffixes: label-file suffixes it reads.
    """
    name: str
    title: str
    detect: Callable[[Path], bool]
    read: Callable[..., list]
    write: Callable[..., dict] | None = None
    suffixes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    default_name: str = ""
    lines: bool = True


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
    bands: dict = {}
    formats: list[Format] = []
    route: Route | None = None
    settings: dict = {}            # per-dataset settings it takes (name -> what it is), e.g. the json schema
    demo_recipe: dict = {}         # TrainConfig overrides of the demo base's recipe for this task
    near_duplicate = (8, 4)        # the dataset report's perceptual hash: side, and the bits within
                                   # which two images count as "nearly identical" (a re-saved photo)

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
        out = []
        f = record.get("fields") or {}
        for fld in self.fields:
            if fld.required and f.get(fld.name) in (None, "", []):
                out.append(Issue("error", f"{fld.label} is empty.", fld.name))
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

    def editor_setup(self, fields: dict) -> dict:
        """Editor settings that follow the label being typed: {digits field: {"positions",
        "min_positions", "digits"}}. By default a digits field offers its minimum..maximum digits
        (0-9) on up to 12 positions."""
        out = {}
        for f in self.fields:
            if f.kind == "digits":
                lo = int(f.minimum if f.minimum is not None else 0)
                hi = int(f.maximum if f.maximum is not None else 9)
                out[f.name] = {"positions": 12, "min_positions": 1, "digits": [str(d) for d in range(lo, hi + 1)]}
        return out

    def prefill(self, changed: str, fields: dict) -> dict:
        """Values to put into other fields when the user changes `changed` (none by default)."""
        return {}

    def describe(self) -> dict:
        """The task as plain data (for the CLI and API listings)."""
        return {"name": self.name, "title": self.title, "fields": [f.to_dict() for f in self.fields],
                "headline_metric": self.headline_metric,
                "route": self.route.path if self.route else None}
