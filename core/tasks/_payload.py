"""REST payloads for any task: the task's own Route.build when it has one, else a generic payload.

The server (core/api/tasks_routes.py) serves `POST /api/v1/tasks/{name}/analyze` for every installed task and,
for a task with a Route, that route's path too; both answer `api_payload(task, parsed, meta)`.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from core.tasks.base import Parsed

SUCCESS = ("true iff the model's answer parsed into the task's structure with no errors; "
           "otherwise `error` says why")


CONFIDENCE = ("How sure the model is of a valid answer (0-1): the mean probability of the tokens spelling the "
              "parsed fields; 0 when the answer did not parse")


class TaskAnalysis(BaseModel):
    """The generic answer of a task without a route of its own."""
    success: bool = Field(description=SUCCESS)
    error: str | None = Field(None, description="Why the answer did not parse (null when success is true)")
    task: str = Field(description="The task that read the image")
    data: dict = Field(default_factory=dict, description="The parsed structure (the task's fields)")
    errors: list[dict] = Field(default_factory=list, description="Problems, with line/column where known")
    summary: str = Field("", description="One-line verdict")
    format_compliance: float = Field(1.0, ge=0, le=1, description="Share of the expected fields present")
    confidence: float | None = Field(None, ge=0, le=1, description=CONFIDENCE)
    field_confidence: dict[str, float] = Field(default_factory=dict,
                                               description="The same, per field (the tokens spelling its value)")
    raw: str = Field("", description="The model's answer text")


def api_model(task) -> type:
    """The pydantic model of the task's payload (for OpenAPI)."""
    route = getattr(task, "route", None)
    return route.response_model if route is not None else TaskAnalysis


def api_payload(task, parsed: Parsed, meta: dict | None = None) -> dict:
    """meta: {"text", "confidence", "model", "run", **route params}."""
    meta = dict(meta or {})
    route = getattr(task, "route", None)
    if route is not None:
        return route.build(parsed, meta)
    conf = meta.get("confidence")
    try:
        summary = task.view(parsed).summary
    except Exception:  # noqa: BLE001 - a view that fails must not lose the answer
        summary = ""
    return {"success": parsed.ok, "error": parsed.error_text(), "task": task.name, "data": parsed.data,
            "errors": [e.to_dict() for e in parsed.errors], "summary": summary,
            "format_compliance": float(parsed.compliance),
            "confidence": None if conf is None else min(1.0, max(0.0, float(conf))),
            "field_confidence": {k: min(1.0, max(0.0, float(v))) for k, v in (meta.get("field_confidence") or {}).items()},
            "raw": meta.get("text") or ""}
