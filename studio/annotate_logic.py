"""The Annotate tab's logic without Gradio: queue order, navigation, turning the editor's values
into task fields, saving (drafts, conflicts), and the live SQL / key checks."""
from __future__ import annotations

import threading

from core.dataset import Dataset
from core.errors import StudioError
from core.tasks.keys.catalog import all_keyways, brands, find_keyway, normalize_code
from core.tasks.ui2sql import parse as parse_sql
from studio.common import badge, esc
from core.tasks.ui2sql.er_diagram import er_svg

MAX_POSITIONS = 12
FILTERS = ("all", "unlabeled", "labeled", "reviewed")


# ---------------------------------------------------------------- queue and navigation
def queue(ds: Dataset, filter_: str = "all") -> list[dict]:
    recs = ds.records()
    return recs if filter_ in (None, "", "all") else [r for r in recs if r.get("status") == filter_]


def step(ids: list[str], current: str | None, delta: int) -> str | None:
    if not ids:
        return None
    if current not in ids:
        return ids[0]
    return ids[max(0, min(len(ids) - 1, ids.index(current) + delta))]


def next_unlabeled(records: list[dict], current: str | None) -> str | None:
    """The first unlabeled record after current, wrapping around; None when all are labeled."""
    ids = [r["id"] for r in records]
    start = ids.index(current) + 1 if current in ids else 0
    for r in records[start:] + records[:start]:
        if r.get("status") == "unlabeled" and r["id"] != current:
            return r["id"]
    return None


def progress_html(records: list[dict], current: str | None) -> str:
    total = len(records)
    done = sum(1 for r in records if r.get("status") in ("labeled", "reviewed"))
    pos = next((i for i, r in enumerate(records) if r["id"] == current), -1) + 1
    pct = 100 * done / total if total else 0
    return (f'<div class="ts-counter"><span><b>{pos}</b> / {total}</span>'
            f'<span class="ts-muted">{done} labeled ({pct:.0f}%) · {total - done} to go</span></div>'
            f'<div class="ts-progress"><div class="ts-progress-bar" style="width:{pct:.1f}%"></div></div>')


# ---------------------------------------------------------------- fields from the editor
def bitting_from_inputs(values: list) -> list[int]:
    """Per-position dropdown values -> digits. Trailing empty positions are fine (a keyway with a
    range of cut counts); an empty position before a filled one is an error."""
    vals = [str(v).strip() if v not in (None, "") else "" for v in values]
    while vals and vals[-1] == "":
        vals.pop()
    if "" in vals:
        k = vals.index("") + 1
        raise StudioError(f"Cut position {k} is empty but a later one is filled.",
                          "Fill the positions from the bow to the tip without gaps.")
    out = []
    for i, v in enumerate(vals, 1):
        if not v.isdigit() or not 1 <= int(v) <= 9:
            raise StudioError(f"Cut position {i} is '{v}', not a depth digit 1-9.", "Pick a digit from the list.")
        out.append(int(v))
    return out


def keys_fields(keyway: str | None, brand: str | None, bits: list) -> dict:
    return {"keyway": normalize_code(keyway), "bitting": bitting_from_inputs(bits), "brand": (brand or "").strip()}


def ui2sql_fields(sql: str | None, domain: str | None, old: dict | None = None) -> dict:
    fields = {"sql": sql or ""}
    if domain or (old or {}).get("domain"):
        fields["domain"] = (domain or "").strip()
    return fields


def same_fields(a: dict | None, b: dict | None) -> bool:
    norm = lambda f: {k: v for k, v in (f or {}).items() if v not in ("", None, [])}  # noqa: E731
    return norm(a) == norm(b)


# ---------------------------------------------------------------- saving
class StampBook:
    """The last `updated` stamp each session saw or wrote per record, kept on the server. Two
    events of one session (a blur autosave and a Next click) can carry the same stale stamp; only
    a stamp written by someone else is a conflict."""

    def __init__(self):
        self._stamps: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def get(self, session: str, path: str, rid: str, fallback: str | None) -> str | None:
        with self._lock:
            return self._stamps.get((session, path, rid), fallback)

    def put(self, session: str, path: str, rid: str, stamp: str | None) -> None:
        if stamp:
            with self._lock:
                if len(self._stamps) > 50_000:  # bounded: old sessions' stamps are only a convenience
                    self._stamps.clear()
                self._stamps[(session, path, rid)] = stamp


def save(ds: Dataset, rid: str, fields: dict, expected_updated: str | None,
         reviewed: bool = False, force: bool = False) -> tuple[dict, str]:
    """Saves fields. Labels with errors are kept as a draft (status unlabeled) so nothing is lost.
    Raises StudioError when someone else saved the record since expected_updated (unless force).
    Returns (record, message)."""
    probe = {**ds.get(rid), "fields": {**(ds.get(rid).get("fields") or {}), **fields}}
    errors = [i for i in ds.task.validate(probe) if i.severity == "error"]
    status = "unlabeled" if errors else ("reviewed" if reviewed else "labeled")
    rec = ds.set_fields(rid, fields, status=status, expected_updated=None if force else expected_updated)
    if errors:
        first = errors[0]
        where = f" (line {first.line}, column {first.column})" if first.line else ""
        return rec, f"Saved as a draft ({rec.get('status')}): {first.message}{where}"
    return rec, f"Saved as {status}."


# ---------------------------------------------------------------- live checks
TABLE_HEADERS = ["table", "column", "type", "key", "references", "not null"]


def sql_check(sql: str | None) -> tuple[str, list[list], str]:
    """(status HTML with errors at line/column, compact table rows, ER diagram SVG)."""
    sql = sql or ""
    if not sql.strip():
        return (f'<div class="ts-check">{badge("empty", "neutral")} Write CREATE TABLE statements; they are '
                "checked as you type.</div>", [], er_svg([]))
    parsed = parse_sql(sql)
    tables = parsed.data.get("tables") or []
    from core.tasks import get_task
    issues = get_task("ui2sql").validate({"fields": {"sql": sql}})
    errors = [i for i in issues if i.severity == "error"]
    warnings = [i for i in issues if i.severity != "error"]
    if errors:
        head = badge(f"{len(errors)} error{'s' * (len(errors) != 1)}", "err")
    else:
        head = badge("valid", "ok") + f' {len(tables)} table{"s" * (len(tables) != 1)}'
    items = "".join(
        f'<li class="ts-issue-{"err" if i.severity == "error" else "warn"}">'
        + (f'<span class="ts-loc">line {i.line}, col {i.column}</span> ' if i.line else "")
        + f"{esc(i.message)}</li>" for i in errors + warnings)
    html_ = f'<div class="ts-check" id="ann-sql-check">{head}' + (f"<ul>{items}</ul>" if items else "") + "</div>"
    rows = []
    for t in tables:
        pk = {c.lower() for c in t.get("primary_key") or []}
        refs = {c.lower(): f"{fk['ref_table']}({', '.join(fk.get('ref_columns') or [])})"
                for fk in t.get("foreign_keys") or [] for c in fk["columns"]}
        for c in t["columns"]:
            n = c["name"].lower()
            key = "PK" if n in pk else ("FK" if n in refs else ("UQ" if c.get("unique") else ""))
            rows.append([t["name"], c["name"], c.get("type") or "", key, refs.get(n, ""),
                         "yes" if c.get("not_null") or n in pk else ""])
    return html_, rows, er_svg(tables)


def keyway_choices() -> list[tuple[str, str]]:
    out = []
    for code, kw in all_keyways().items():
        cuts = kw.positions if kw.positions is not None else f"{kw.min_positions}-{kw.max_positions}"
        out.append((f"{code} · {kw.brand} · {cuts} cuts", code))
    return out


def keyway_setup(code: str | None) -> dict:
    """How many position inputs to show, which digits each takes, and the catalog brand."""
    kw = find_keyway(code) if code else None
    if kw is None:
        return {"positions": 0, "min_positions": 0, "digits": [str(d) for d in range(1, 10)], "brand": ""}
    return {"positions": kw.max_positions, "min_positions": kw.min_positions,
            "digits": [str(d) for d in range(kw.min_depth, kw.max_depth + 1)], "brand": kw.brand}


def prefilled_brand(current: str | None, new_code: str | None) -> str:
    """The keyway's catalog brand, unless the user typed a brand of their own."""
    cur = (current or "").strip()
    if not cur or cur in brands():
        return keyway_setup(new_code)["brand"] or cur
    return cur


def keys_check(keyway, brand, bits) -> tuple[str, str]:
    """(status HTML, rendered target text)."""
    from core.tasks import get_task

    task = get_task("keys")
    try:
        fields = keys_fields(keyway, brand, bits)
    except StudioError as e:
        return f'<div class="ts-check">{badge("incomplete", "warn")} {esc(e.message)}</div>', ""
    rec = {"fields": fields}
    issues = task.validate(rec)
    errors = [i for i in issues if i.severity == "error"]
    head = badge(f"{len(errors)} error{'s' * (len(errors) != 1)}", "err") if errors else badge("valid", "ok")
    items = "".join(f'<li class="ts-issue-{"err" if i.severity == "error" else "warn"}">{esc(i.message)}</li>'
                    for i in issues)
    try:
        target = task.target(rec)
    except StudioError:
        target = ""
    return f'<div class="ts-check" id="ann-keys-check">{head}' + (f"<ul>{items}</ul>" if items else "") + "</div>", target
