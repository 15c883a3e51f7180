"""The Task protocol: the only extension point that knows what a task's labels mean.

A record is a plain dict (see core/dataset.py): {"id", "image", "fields": {...}, "split", "status",
"updated", ...unknown keys kept}. A task reads and writes only record["fields"].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class Field:
    """One thing the annotator edits. kind: "sql" | "text" | "choice" | "digits"."""
    name: str
    kind: str
    label: str
    help: str = ""
    required: bool = True
    choices: list[str] | None = None


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


@runtime_checkable
class Task(Protocol):
    name: str                      # registry key, e.g. "ui2sql"
    title: str                     # shown in the UI
    fields: list[Field]            # what the annotator edits

    def prompt(self, record: dict) -> str: ...
    def target(self, record: dict) -> str: ...
    def parse(self, text: str) -> Parsed: ...
    def validate(self, record: dict) -> list[Issue]: ...
    def score(self, parsed: Parsed, record: dict) -> dict[str, float]: ...
    def fields_from_parsed(self, parsed: Parsed) -> dict: ...
    def is_labeled(self, record: dict) -> bool: ...
