"""Model suggestions on records (model-assisted labeling): how a run's answer sits on a record
until a person accepts or corrects it, and what that says about the run.

A suggestion never touches `fields` (the human label): it lives beside it, so nothing that reads
labels (training, evaluation, export, the live check) can take it for one.

    "suggestions":  {run: {"fields", "confidence": {field: p}, "dropped": {field: why}, "overall", "text", "at"}}
                    every pass's answer on this record (the disagreement between two runs)
    "suggested_by": the run whose suggestion the editor shows (the latest pass that parsed a field)
    "prelabel":     once a shown suggestion is saved as a label: {"run", "fields" (as suggested),
                    "confidence", "edited" (the fields the person changed: theirs), "accepted"
                    (the fields saved as suggested), "at"}; kept up to date by later saves

The status is "suggested" while a record holds a suggestion with fields and no complete label;
saving a label ends it (core/dataset.py calls `finish` on every write).
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

SUGGESTIONS, SHOWN, PROVENANCE = "suggestions", "suggested_by", "prelabel"
LOW_CONFIDENCE = 0.8  # a field whose least sure token the model wrote with less probability is doubtful
LABELED = ("labeled", "reviewed")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _empty(v) -> bool:
    return v is None or v == "" or v == [] or v == {}


def same_value(a, b) -> bool:
    """Field values compare as a person reads them: empty is empty, strings without outer spaces."""
    if _empty(a) and _empty(b):
        return True
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


# ---------------------------------------------------------------- reading a record
def suggestion(record: dict, run: str | None = None) -> tuple[str, dict] | None:
    """(run, suggestion) the editor shows (or run's own), None when there is none with fields."""
    sugs = record.get(SUGGESTIONS) if isinstance(record.get(SUGGESTIONS), dict) else {}
    name = run or record.get(SHOWN)
    sug = sugs.get(name) if name else None
    if isinstance(sug, dict) and sug.get("fields"):
        return name, sug
    if run is None:  # the shown one is gone: the newest with fields
        for name, sug in reversed(list(sugs.items())):
            if isinstance(sug, dict) and sug.get("fields"):
                return name, sug
    return None


def has_suggestion(record: dict) -> bool:
    return suggestion(record) is not None


def editor_fields(task, record: dict) -> tuple[dict, str | None, dict]:
    """What the editor opens a record with: (fields, the run suggesting, {field: confidence} of
    the fields filled from its suggestion). A person's own values, even a draft's, always win; a
    labeled record shows its label only."""
    own = dict(record.get("fields") or {})
    found = None if record.get("status") in LABELED else suggestion(record)
    if found is None:
        return own, None, {}
    run, sug = found
    filled, conf = dict(own), {}
    for f in task.fields:
        value = (sug.get("fields") or {}).get(f.name)
        if _empty(own.get(f.name)) and not _empty(value):
            filled[f.name] = value
            conf[f.name] = float((sug.get("confidence") or {}).get(f.name, sug.get("overall") or 0.0))
    return filled, run, conf


def doubtful(conf: dict, threshold: float = LOW_CONFIDENCE) -> list[str]:
    """The fields written with less confidence than threshold."""
    return [name for name, p in conf.items() if p < threshold]


def record_confidence(record: dict, run: str | None = None) -> float | None:
    """The shown (or run's) suggestion's least sure field: a record is as doubtful as its worst field,
    and one whose answer had a field the task's check refused (left empty for the person) is 0."""
    found = suggestion(record, run)
    if found is None:
        return None
    _, sug = found
    if sug.get("dropped"):
        return 0.0
    values = [float(v) for k, v in (sug.get("confidence") or {}).items() if k in (sug.get("fields") or {})]
    return min(values) if values else float(sug.get("overall") or 0.0)


def disagreement(record: dict, a: str, b: str) -> int | None:
    """How many fields two runs' suggestions on the record answer differently (None: not both answered)."""
    sugs = record.get(SUGGESTIONS) if isinstance(record.get(SUGGESTIONS), dict) else {}
    sa, sb = sugs.get(a), sugs.get(b)
    if not isinstance(sa, dict) or not isinstance(sb, dict):
        return None
    fa, fb = sa.get("fields") or {}, sb.get("fields") or {}
    return sum(1 for k in set(fa) | set(fb) if not same_value(fa.get(k), fb.get(k)))


# ---------------------------------------------------------------- queue order
ORDERS = ("dataset", "confidence", "disagreement")


def order(records: list[dict], by: str = "dataset", runs: tuple[str, str] | None = None) -> list[dict]:
    """The annotation queue in an order that asks about doubtful records first.

    confidence: records holding a suggestion, least sure first; the rest after, as they were.
    disagreement: records both runs answered, those with the most differing fields first (ties: least
    sure first); then the rest."""
    if by in (None, "", "dataset"):
        return list(records)
    if by == "confidence":
        keyed = [(record_confidence(r), i, r) for i, r in enumerate(records)]
        first = sorted((k for k in keyed if k[0] is not None), key=lambda k: (k[0], k[1]))
        return [k[2] for k in first] + [k[2] for k in keyed if k[0] is None]
    if by == "disagreement":
        if not runs or len(runs) != 2:
            from core.errors import StudioError
            raise StudioError("Sorting by disagreement needs two runs.", "Pre-label with two runs first.")
        keyed = [(disagreement(r, *runs), record_confidence(r) or 0.0, i, r) for i, r in enumerate(records)]
        both = sorted((k for k in keyed if k[0] is not None), key=lambda k: (-k[0], k[1], k[2]))
        return [k[3] for k in both] + [k[3] for k in keyed if k[0] is None]
    from core.errors import StudioError
    raise StudioError(f"Unknown queue order '{by}'.", f"Use one of: {', '.join(ORDERS)}.")


def runs_with_suggestions(records: list[dict]) -> list[str]:
    """Every run that answered some record, oldest pass first."""
    first: dict[str, str] = {}
    for r in records:
        for run, sug in (r.get(SUGGESTIONS) or {}).items() if isinstance(r.get(SUGGESTIONS), dict) else ():
            at = str((sug or {}).get("at") or "")
            first[run] = min(first.get(run, at), at)
        prov = r.get(PROVENANCE)
        if isinstance(prov, dict) and prov.get("run"):
            at = str(prov.get("suggested_at") or prov.get("at") or "")
            first[prov["run"]] = min(first.get(prov["run"], at), at)
    return sorted(first, key=lambda run: (first[run], run))


# ---------------------------------------------------------------- writing (called under the dataset's lock)
def put(record: dict, run: str, sug: dict) -> None:
    """Adds one run's suggestion to an unlabeled record (the caller has checked it has no label)."""
    sugs = dict(record.get(SUGGESTIONS) or {}) if isinstance(record.get(SUGGESTIONS), dict) else {}
    sugs[run] = sug
    record[SUGGESTIONS] = sugs
    if sug.get("fields"):
        record[SHOWN] = run


def finish(task, stored: dict | None, new: dict, shown: str | None = None) -> dict:
    """Called by every write after the new status is set. A record that became a label drops its
    pending suggestions; when the person saved the suggestion they were shown (`shown`: its run),
    what they kept and what they changed is written to "prelabel". A settled record's later saves
    keep "edited" true to what is stored now."""
    if new.get("status") not in LABELED:
        return new
    sugs = new.pop(SUGGESTIONS, None)
    new.pop(SHOWN, None)
    sug = (sugs or {}).get(shown) if shown and isinstance(sugs, dict) else None
    if isinstance(sug, dict) and sug.get("fields"):
        new[PROVENANCE] = {"run": shown, "fields": dict(sug["fields"]), "confidence": dict(sug.get("confidence") or {}),
                           "suggested_at": sug.get("at"), "at": _now()}
    prov = new.get(PROVENANCE)
    if isinstance(prov, dict):
        fields, suggested = new.get("fields") or {}, prov.get("fields") or {}
        names = [f.name for f in task.fields]
        prov["accepted"] = [n for n in names if n in suggested and same_value(fields.get(n), suggested[n])]
        # the person's: a suggested value they changed, or a field the suggestion left empty they filled
        prov["edited"] = [n for n in names if n not in prov["accepted"]
                          and (n in suggested or not _empty(fields.get(n)))]
    return new


# ---------------------------------------------------------------- what the suggestions were worth
def stats(task, records: list[dict]) -> dict:
    """{"pending": records holding a suggestion, "settled": suggestions saved as labels, "by_run":
    {run: {"settled", "unchanged" (records saved exactly as suggested), "unchanged_rate",
    "fields": {field: {"suggested", "accepted", "rate"}}}}} in the order the runs first answered.
    A field's rate is the run's precision on the user's own data: of the values it suggested, the
    share the person kept."""
    names = [f.name for f in task.fields]
    by_run: dict[str, dict] = {}
    pending = 0
    for r in records:
        if r.get("status") not in LABELED and has_suggestion(r):
            pending += 1
        prov = r.get(PROVENANCE)
        if r.get("status") not in LABELED or not isinstance(prov, dict) or not prov.get("run"):
            continue
        s = by_run.setdefault(prov["run"], {"settled": 0, "unchanged": 0,
                                            "fields": {n: {"suggested": 0, "accepted": 0} for n in names}})
        s["settled"] += 1
        s["unchanged"] += int(not prov.get("edited"))
        for n in names:
            if n in (prov.get("fields") or {}):
                s["fields"][n]["suggested"] += 1
                s["fields"][n]["accepted"] += int(n in (prov.get("accepted") or []))
    order_ = {run: i for i, run in enumerate(runs_with_suggestions(records))}
    out = {}
    for run in sorted(by_run, key=lambda x: order_.get(x, len(order_))):
        s = by_run[run]
        s["unchanged_rate"] = round(s["unchanged"] / s["settled"], 4) if s["settled"] else None
        for f in s["fields"].values():
            f["rate"] = round(f["accepted"] / f["suggested"], 4) if f["suggested"] else None
        out[run] = s
    return {"pending": pending, "settled": sum(s["settled"] for s in out.values()), "by_run": out}


def format_stats(st: dict) -> list[str]:
    """The report's lines about suggestions (none when no run ever suggested anything)."""
    if not st.get("pending") and not st.get("by_run"):
        return []
    lines = [f"Suggestions: {st['pending']} waiting for review, {st['settled']} saved as labels."]
    for run, s in st["by_run"].items():
        fields = ", ".join(f"{n} {f['accepted']}/{f['suggested']} ({f['rate']:.0%})"
                           for n, f in s["fields"].items() if f["suggested"])
        lines.append(f"  {run}: {s['unchanged']}/{s['settled']} accepted unchanged"
                     + (f" ({s['unchanged_rate']:.0%})" if s["unchanged_rate"] is not None else "")
                     + (f"; per field: {fields}" if fields else ""))
    return lines
