"""The Keylike phone app's JSON for one keys answer: the one builder behind
`POST /api/v1/keys/analyze` (core/api.py) and the studio's Compare tab.

    keys_app_json(answer_or_parsed, confidence=None) -> {"success", "keyway", "bitting", "brand",
        "confidence", <the catalog's four figures>, "error", "raw"}

The four figures (estimatedAnnualProduction, manufacturingComplexity, marketPenetration,
timeInMarket) come from the keyway catalog (assets/keyways.json) and are null for a keyway it does
not hold; they describe the keyway, not the photo.
"""
from __future__ import annotations

from core.errors import StudioError
from core.tasks.keys.catalog import FIGURE_KEYS, get_keyway


def keys_app_json(answer_or_parsed, confidence: float | None = None) -> dict:
    """answer_or_parsed: a core.infer.Answer (its parsed fields, text and confidence are used) or a
    core.tasks.Parsed (then pass confidence; raw is empty). success is false, with the reasons in
    error, when the answer did not parse into keyway + bitting + brand."""
    parsed = getattr(answer_or_parsed, "parsed", answer_or_parsed)
    raw = getattr(answer_or_parsed, "text", "") or ""
    if confidence is None:
        confidence = getattr(answer_or_parsed, "confidence", None)
    out = {"success": bool(parsed is not None and getattr(parsed, "ok", False)), "keyway": None, "bitting": None,
           "brand": None, "confidence": None if confidence is None else float(confidence),
           **{k: None for k in FIGURE_KEYS}, "error": None, "raw": raw}
    if not out["success"]:
        problems = [e.message for e in (getattr(parsed, "errors", None) or []) if e.severity == "error"]
        out["error"] = "The model's answer did not parse: " + ("; ".join(problems) or "no fields")
        return out
    data = parsed.data or {}
    keyway = data.get("keyway") or None
    try:
        kw = get_keyway(keyway) if keyway else None
    except StudioError:
        kw = None  # a keyway outside the catalog still answers; its figures stay null
    out.update(keyway=keyway, bitting=list(data.get("bitting") or []) or None,
               brand=data.get("brand") or (kw.brand if kw else None))
    if kw is not None:
        out.update(kw.api_figures())
    return out
