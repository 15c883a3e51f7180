"""The ui2sql task's REST payload (`POST /api/v1/ui2sql`): the schema, its validity and its tables.

`success` means what it means for every task: the answer parsed into the task's structure (valid
CREATE TABLE statements) with no errors; `error` says why not. `valid` is the same value, kept for
clients of the seed's field name.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from core.errors import StudioError
from core.tasks.base import Parsed, Route
from core.tasks.ui2sql.parse import DIALECTS, dialect_name


class Ui2SqlResult(BaseModel):
    success: bool = Field(description="true iff the answer parsed as CREATE TABLE statements with no errors; "
                                      "otherwise `error` says why")
    error: str | None = Field(None, description="Why the answer did not parse (null when success is true)")
    sql: str = Field(description="The SQL schema the model wrote")
    valid: bool = Field(description="Same as success (the seed's name)")
    errors: list[dict] = Field(default_factory=list, description="Problems with line/column where known")
    tables: list[dict] = Field(default_factory=list, description="Tables with columns, primary and foreign keys")
    transpiled: str | None = Field(None, description="The schema in the requested dialect (null without one)")
    dialect: str | None = Field(None, description="The dialect transpiled to: generic, postgres, mysql or sqlite")
    confidence: float | None = Field(None, ge=0, le=1, description="How sure the model is of a valid answer (0-1): "
                                     "the mean probability of the schema's tokens; 0 when it did not parse")


def check_params(params: dict) -> None:
    """A bad dialect is refused before the model runs."""
    dialect = (params or {}).get("dialect")
    if dialect and dialect_name(dialect) is None:
        raise StudioError(f"Unknown SQL dialect '{dialect}'.", f"Use one of: {', '.join(DIALECTS)}.")


def build(parsed: Parsed, meta: dict | None = None) -> dict:
    from core.tasks.ui2sql.task import transpile

    meta = meta or {}
    check_params(meta)
    text = meta.get("text")
    text = text if isinstance(text, str) else (parsed.data.get("sql") or "")
    target = dialect_name(meta["dialect"]) if meta.get("dialect") else None
    conf = meta.get("confidence")
    out = {"success": parsed.ok, "error": parsed.error_text(), "sql": text.strip(), "valid": parsed.ok,
           "errors": [e.to_dict() for e in parsed.errors], "tables": parsed.data.get("tables") or [],
           "transpiled": None, "dialect": target,
           "confidence": None if conf is None else min(1.0, max(0.0, float(conf)))}
    if target:
        try:
            out["transpiled"] = transpile(text, target)
        except StudioError as e:
            out["errors"].append({"severity": "error", "message": f"Not converted to {target}: {e.message}"})
    return out


ROUTE = Route(path="/ui2sql", summary="Write the SQL schema behind a UI screenshot", response_model=Ui2SqlResult,
              build=build, params={"dialect": "generic, postgres, mysql or sqlite"}, check_params=check_params,
              description="Writes the SQL schema behind a UI screenshot, checks it, and converts it to a dialect.")
