"""The meter task's own REST route, `POST /api/v1/meter/read`: the reading as the string the meter
shows, with its kind and unit. `success` means what it means for every task: the answer parsed with
no errors; `error` says why not."""
from __future__ import annotations

from pydantic import BaseModel, Field

from core.tasks import Parsed, Route


class MeterReading(BaseModel):
    success: bool = Field(description="true iff the answer parsed into kind, reading and unit with no errors")
    error: str | None = Field(None, description="Why the answer did not parse (null when success is true)")
    kind: str | None = Field(None, description="electricity, gas or water")
    reading: str | None = Field(None, description='Every digit shown, leading zeros kept: "004217"')
    unit: str | None = Field(None, description="kWh, m3 or l")
    confidence: float | None = Field(None, ge=0, le=1, description="Mean probability (0-1) of the answer's tokens")
    raw: str = Field("", description="The model's answer text")


def build(parsed: Parsed, meta: dict) -> dict:
    data = parsed.data if parsed.ok else {}
    conf = meta.get("confidence")
    return {"success": parsed.ok, "error": parsed.error_text(), "kind": data.get("kind"),
            "reading": data.get("reading"), "unit": data.get("unit"),
            "confidence": None if conf is None else min(1.0, max(0.0, float(conf))), "raw": meta.get("text") or ""}


ROUTE = Route(path="/meter/read", summary="Read a utility meter: kind, reading and unit", response_model=MeterReading,
              build=build, description="Reads a meter photo; the reading keeps its leading zeros.")
