"""The Keylike phone app's JSON for one keys answer: the one builder behind the keys task's REST route
(`POST /api/v1/keys/analyze`), its view in Compare, and the generic task route.

    {"success": true, "keyway": "SC1", "bitting": "1,2,5,3,7", "brand": "Schlage", "confidence": 0.87,
     <the catalog's four figures>, "figuresProvidedBy": "catalog", "figuresSource": null,
     "error": null, "raw": "KEYWAY: SC1 ..."}

The field names and types are the seed's: bitting is a comma-separated string, confidence 0-1.
`success` means what it means for every task: the answer parsed into the task's structure (a keyway
and a bitting that pass the catalog's rules) with no errors; `error` says why not.
The four figures (estimatedAnnualProduction, manufacturingComplexity, marketPenetration,
timeInMarket) come from the keyway catalog (assets/keyways.json, user-editable) and describe the
keyway, not the photo: `figuresProvidedBy` is "catalog" whenever they are filled, and
`figuresSource` names the catalog's source for them, or is null when the catalog gives none (then
they are the shipped illustrative values, not measurements). All four are null for a keyway the
catalog does not hold.
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from core.tasks.base import Parsed, Route
from core.tasks.keys.catalog import FIGURE_KEYS, find_keyway

CATALOG_NOTE = ("Catalog figure for the keyway (assets/keyways.json), not measured from the photo; "
                "see figuresSource. Null when the keyway is not in the catalog.")


class KeysAnalysis(BaseModel):
    """The Keylike phone app's JSON."""
    success: bool = Field(description="true iff the model's answer parsed into a keyway and a bitting that pass "
                                      "the catalog's rules, with no errors; otherwise `error` says why")
    keyway: str | None = Field(None, description="Keyway code, e.g. SC1")
    bitting: str | None = Field(None, description='Cut depths from bow to tip, digits 1-9, comma-separated: "1,2,5,3,7"')
    brand: str | None = Field(None, description="Key brand, e.g. Schlage")
    confidence: float | None = Field(None, ge=0, le=1, description="Mean probability (0-1) the model gave the "
                                                                   "tokens of its answer's fields; 0 when the "
                                                                   "answer did not parse")
    estimatedAnnualProduction: int | None = Field(None, description=CATALOG_NOTE + " Keys per year.")
    manufacturingComplexity: str | None = Field(None, description=CATALOG_NOTE + " low | medium | high.")
    marketPenetration: float | None = Field(None, description=CATALOG_NOTE + " Share of the market, 0-1.")
    timeInMarket: int | None = Field(None, description=CATALOG_NOTE + " Years.")
    figuresProvidedBy: str | None = Field(None, description='"catalog" when the four figures are filled (they '
                                                            'come from the keyway catalog), else null')
    figuresSource: str | None = Field(None, description="The source the catalog names for the four figures; null "
                                                        "when it names none (illustrative values, not measurements)")
    error: str | None = Field(None, description="Why the answer did not parse (null when success is true)")
    raw: str = Field("", description="The model's answer text")


def _confidence(value) -> float | None:
    if value is None:
        return None
    return min(1.0, max(0.0, float(value)))


def app_json(parsed: Parsed | None, meta: dict | None = None) -> dict:
    """Parsed answer + meta {"text", "confidence", ...} -> the phone app's JSON (see the module doc)."""
    meta = meta or {}
    out = {"success": bool(parsed is not None and parsed.ok), "keyway": None, "bitting": None, "brand": None,
           "confidence": _confidence(meta.get("confidence")), **{k: None for k in FIGURE_KEYS},
           "figuresProvidedBy": None, "figuresSource": None, "error": None, "raw": meta.get("text") or ""}
    if not out["success"]:
        out["error"] = parsed.error_text() if parsed is not None else "There is no answer."
        return out
    data = parsed.data or {}
    keyway = data.get("keyway") or None
    kw = find_keyway(keyway) if keyway else None  # a keyway outside the catalog still answers; no figures
    bitting = [int(d) for d in data.get("bitting") or []]
    out.update(keyway=keyway, bitting=",".join(str(d) for d in bitting) or None,
               brand=data.get("brand") or (kw.brand if kw else None))
    if kw is not None:
        figures = kw.api_figures()
        out.update(figures)
        if any(v is not None for v in figures.values()):
            out.update(figuresProvidedBy="catalog", figuresSource=kw.source)
    return out


ROUTE = Route(path="/keys/analyze", summary="Read a key photo: keyway, bitting and brand (Keylike app JSON)",
              response_model=KeysAnalysis, build=app_json,
              description="Reads a key photo: keyway, bitting and brand, plus the keyway catalog's figures.")
