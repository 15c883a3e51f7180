"""The Annotate tab's logic without Gradio: queue order, navigation, the editor built from the task's
fields (Task.fields: one editor per field kind), turning the editor's values into task fields and
back, saving (drafts, conflicts), and the live check (Task.check, Task.target, Task.view)."""
from __future__ import annotations

import json
import threading

from core.dataset import Dataset
from core.errors import StudioError
from core.tasks import Field, Parsed, Task
from core.tasks.base import DIGITS, normalize_fields
from studio.common import badge, esc

MAX_POSITIONS = 12   # positions of the digits editor (core.tasks.base.MAX_DIGITS)
MAX_SLOTS = 12       # simple fields (text, number, choice, boolean, list) one task can show
SLOT_KINDS = ("text", "number", "choice", "boolean", "list", "multi", "table")
BLANK_ROWS = 1       # empty rows under a table's rows, to type a new one into (more: the table's row menu)
FILTERS = ("all", "unlabeled", "suggested", "labeled", "reviewed")
NO_PREVIEW = '<div class="ts-empty" id="ann-no-preview">The preview shows once the label is complete and valid.</div>'


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
def digits_from_inputs(values: list, field: Field) -> list[int] | str:
    """Per-position picker values -> the digits field's value: a list of ints, or a string of digits
    when the field keeps one (Field.as_string: "004217" stays "004217"). Each position must be one of
    the field's alphabet (Field.digit_alphabet). Trailing empty positions are fine (a field with a range
    of lengths); an empty position before a filled one is an error."""
    vals = [str(v).strip() if v not in (None, "") else "" for v in values]
    while vals and vals[-1] == "":
        vals.pop()
    if "" in vals:
        k = vals.index("") + 1
        raise StudioError(f"{field.label} position {k} is empty but a later one is filled.",
                          "Fill the positions from the first one on, without gaps.")
    alphabet = field.digit_alphabet
    for i, v in enumerate(vals, 1):
        if v not in alphabet:
            raise StudioError(f"{field.label} position {i} is '{v}', not a digit {field.alphabet_text()}.",
                              "Pick a digit from the list.")
    return "".join(vals) if field.as_string else [int(v) for v in vals]


def digits_to_inputs(value) -> list[str]:
    """A stored digits value ([1, 2, 5] or "004217") -> one picker value per position."""
    if isinstance(value, str):
        return list(value)
    return [str(d) for d in value] if isinstance(value, list) else []


# ---------------------------------------------------------------- the editor from Task.fields
def editor_plan(task: Task) -> dict:
    """Which editor shows each field: {"sql": Field | None, "digits": Field | None, "slots": [(Field,
    slot kind)]}. One sql and one digits editor exist; a second field of those kinds is a text box."""
    plan: dict = {"sql": None, "digits": None, "slots": []}
    for f in task.fields:
        if f.kind in ("sql", "digits") and plan[f.kind] is None:
            if f.kind == "digits" and f.length_range[1] > MAX_POSITIONS:
                raise StudioError(f"Task {task.name}'s field {f.name} has up to {f.length_range[1]} digits; the "
                                  f"editor shows {MAX_POSITIONS}.", f"Give it max_length {MAX_POSITIONS} or less.")
            plan[f.kind] = f
            continue
        kind = f.kind if f.kind in ("text", "number", "choice", "boolean") else "text"
        if f.kind in ("object", "table"):  # structured kinds: a table of their sub-fields (one row: an object)
            kind = "table"
        if f.kind == "list":
            kind = "multi" if f.item_kind == "choice" and f.choices else "list"
        if len(plan["slots"]) >= MAX_SLOTS:
            raise StudioError(f"Task {task.name} has more than {MAX_SLOTS} simple fields to edit.",
                              "Split the structure, or raise MAX_SLOTS in studio/annotate_logic.py.")
        plan["slots"].append((f, kind))
    return plan


def _empty(v) -> bool:
    return v is None or v == "" or v == [] or v == {}


def _item(field: Field, text: str, pos: int):
    kind = field.item_kind or "text"
    if kind == "number":
        try:
            num = float(text)
        except ValueError:
            raise StudioError(f"{field.label}: item {pos} is '{text}', not a number.", "One number per line.") from None
        return int(num) if field.integer and num.is_integer() else num
    if kind == "boolean":
        low = text.lower()
        if low not in ("true", "false", "yes", "no", "1", "0"):
            raise StudioError(f"{field.label}: item {pos} is '{text}', not true or false.", "One true/false per line.")
        return low in ("true", "yes", "1")
    return text


def table_columns(field: Field) -> dict:
    """The table editor's shape for an object / table field: headers (the sub-fields' names),
    per-column datatypes, and how many rows it may have."""
    # numbers are typed as text and checked here: a "number" column shows an emptied cell as 0
    types = {"boolean": "bool"}
    return {"headers": [s.name for s in field.subfields or []],
            "datatype": [types.get(s.kind, "str") for s in field.subfields or []],
            "fixed_rows": 1 if field.kind == "object" else None}


def _cell(field: Field, sub: Field, raw, row: int | None):
    """One table cell -> the sub-field's value (None when empty)."""
    where = f"{field.label}, {sub.name}" + (f" in row {row}" if row else "")
    if raw is None or (isinstance(raw, float) and raw != raw) or (isinstance(raw, str) and not raw.strip()):
        return None  # empty (a NaN is what an emptied number cell reads as)
    if sub.kind == "number":
        try:
            num = float(raw)
        except (TypeError, ValueError):
            raise StudioError(f"{where}: '{raw}' is not a number.", "Type digits, e.g. 2 or 3.50.") from None
        return int(num) if sub.integer and num.is_integer() else num
    if sub.kind == "boolean":
        if isinstance(raw, bool):
            return raw
        low = str(raw).strip().lower()
        if low not in ("true", "false", "yes", "no", "1", "0"):
            raise StudioError(f"{where}: '{raw}' is not true or false.", "Tick the box, or type true / false.")
        return low in ("true", "yes", "1")
    if sub.kind == "list":
        return [x.strip() for x in str(raw).split(",") if x.strip()]
    return str(raw).strip()


def _table_rows(raw) -> list[list]:
    if raw is None:
        return []
    if hasattr(raw, "values") and hasattr(raw, "columns"):  # a pandas DataFrame
        return raw.values.tolist()
    if isinstance(raw, dict):
        return list(raw.get("data") or [])
    return [list(r) for r in raw]


def table_value(field: Field, raw):
    """The table editor's rows -> an object (kind "object": its one row) or a list of row objects
    (kind "table"; wholly empty rows are left out). Empty cells are left out of their row."""
    subs = field.subfields or []
    rows = []
    for n, cells in enumerate(_table_rows(raw), 1):
        cells = list(cells) + [None] * (len(subs) - len(cells))
        row = {}
        for sub, cell in zip(subs, cells):
            value = _cell(field, sub, cell, n if field.kind == "table" else None)
            if value not in (None, "", []):
                row[sub.name] = value
        rows.append(row)
    if field.kind == "object":
        return rows[0] if rows else {}
    # a row of empty cells and unticked boxes is the blank row under the table, not an item
    return [r for r in rows if any(v is not False for v in r.values())]


def table_cells(field: Field, value) -> list[list]:
    """A stored object / list of objects -> the table editor's rows (plus BLANK_ROWS empty rows to
    type a new one into, for a list)."""
    subs = field.subfields or []
    show = lambda v: "" if v is None else (", ".join(map(str, v)) if isinstance(v, list) else v)  # noqa: E731
    if field.kind == "object":
        obj = value if isinstance(value, dict) else {}
        return [[show(obj.get(s.name)) for s in subs]]
    rows = [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []
    return [[show(r.get(s.name)) for s in subs] for r in rows] + [["" for _ in subs] for _ in range(BLANK_ROWS)]


def from_editor(field: Field, kind: str, raw):
    """An editor component's value -> the field's value (StudioError when it cannot be one)."""
    if kind == "table":
        return table_value(field, raw)
    if field.kind == "digits" and kind == "digits":
        return digits_from_inputs(list(raw or []), field)
    if kind == "number":
        if raw in (None, ""):
            return None
        num = float(raw)
        return int(num) if field.integer and num.is_integer() else num
    if kind == "boolean":
        return bool(raw)
    if kind == "multi":
        return list(raw or [])
    if kind == "list":
        lines = [x.strip() for x in str(raw or "").splitlines()]
        return [_item(field, x, i) for i, x in enumerate((x for x in lines if x), 1)]
    if kind == "choice":
        return raw if raw not in (None, "") else ""
    return str(raw or "") if kind == "sql" else str(raw or "").strip()


def to_editor(field: Field, kind: str, value):
    """A stored field value -> what its editor component shows."""
    if kind == "table":
        return table_cells(field, value)
    if kind == "number":
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    if kind == "boolean":
        return bool(value)
    if kind == "multi":
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
    if kind == "list":
        return "\n".join(json.dumps(v) if isinstance(v, (dict, list)) else str(v).lower() if isinstance(v, bool)
                         else str(v) for v in value) if isinstance(value, list) else ""
    if kind == "choice":
        return value if value not in (None, "") else None
    return value if isinstance(value, str) else ("" if value is None else json.dumps(value))


def range_hint(field: Field) -> str:
    """A number field's bounds in words for its hint: "0–99999", "at least 0", "at most 9", or ""."""
    num = lambda v: f"{v:g}" if isinstance(v, float) else str(v)  # noqa: E731
    lo, hi = field.minimum, field.maximum
    if lo is not None and hi is not None:
        return f"{num(lo)}–{num(hi)}"
    if lo is not None:
        return f"at least {num(lo)}"
    return f"at most {num(hi)}" if hi is not None else ""


def fields_from_editor(task: Task, values: dict, old: dict | None = None) -> dict:
    """{field name: editor value} -> the record's fields. An empty field is left out unless the record
    had it (then it is cleared)."""
    plan, old = editor_plan(task), old or {}
    kinds = {f.name: k for f, k in plan["slots"]}
    for which in ("sql", "digits"):
        if plan[which] is not None:
            kinds[plan[which].name] = which
    out = {}
    for f in task.fields:
        value = from_editor(f, kinds[f.name], values.get(f.name))
        if _empty(value) and f.name not in old:
            continue
        out[f.name] = value
    return out


def digit_setup(task: Task, name: str, fields: dict) -> dict:
    """How many positions the digits editor shows and which digits each takes (Task.editor_setup;
    without one, the field's own alphabet and length)."""
    setup = (task.editor_setup(fields) if hasattr(task, "editor_setup") else {}).get(name) or {}
    field = next((f for f in task.fields if f.name == name), None)
    lo, hi = field.length_range if field is not None else (0, MAX_POSITIONS)
    alphabet = field.digit_alphabet if field is not None else DIGITS
    return {"positions": int(setup.get("positions", hi)), "min_positions": int(setup.get("min_positions", lo)),
            "digits": [str(d) for d in setup.get("digits", alphabet)]}


def shown_values(task: Task, fields: dict | None) -> dict:
    """{field name: editor value} as the editor shows a stored label: what the page sends back
    when nobody touched it. The digits editor shows only the digits its keyway takes."""
    plan, fields = editor_plan(task), fields or {}
    out = {f.name: to_editor(f, kind, fields.get(f.name)) for f, kind in plan["slots"]}
    if plan["sql"]:
        out[plan["sql"].name] = fields.get(plan["sql"].name) or ""
    dig = plan["digits"]
    if dig is not None:
        allowed = digit_setup(task, dig.name, fields)["digits"]
        out[dig.name] = [d if d in allowed else "" for d in digits_to_inputs(fields.get(dig.name))]
    return out


def _normalized(task: Task, fields: dict) -> dict:
    return (getattr(task, "normalize_fields", None) or normalize_fields)(fields)


def unchanged(task: Task, values: dict, stored: dict | None) -> bool:
    """Whether the editor's values (read from the page) are the stored label, as the task compares
    labels (Task.normalize_fields) after both went through the editor: the page's editors drop a
    trailing newline, show no boolean as unticked, a whole number as 3.0. Only a changed label is
    saved, so looking at a record (opening it, paging past it) never rewrites it. Raises StudioError
    when the values cannot be a label at all (and differ from what was shown)."""
    stored = stored or {}
    shown = shown_values(task, stored)
    if all(_same_raw(values.get(k), v) for k, v in shown.items()):
        return True
    now = fields_from_editor(task, values, stored)
    try:
        then = fields_from_editor(task, shown, stored)
    except StudioError:  # a stored label the editor cannot show as is: compare with it directly
        then = {k: v for k, v in stored.items() if k in now}
    return _normalized(task, now) == _normalized(task, then)


def _same_raw(a, b) -> bool:
    blank = (None, "", [])
    if hasattr(a, "columns") or isinstance(a, dict):  # a table editor's value (DataFrame / {"data": rows})
        a = _table_rows(a)
    if a in blank and b in blank:
        return True
    if isinstance(a, list) and isinstance(b, list):  # the digit pickers: trailing blanks are no digits
        strip = lambda xs: [str(x) for x in xs][:max((i + 1 for i, x in enumerate(xs) if x not in blank), default=0)]  # noqa: E731
        return strip(a) == strip(b)
    return a == b


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
         reviewed: bool = False, force: bool = False, shown_suggestion: str | None = None) -> tuple[dict, str]:
    """Saves fields. Labels with errors are kept as a draft (status unlabeled) so nothing is lost.
    Raises StudioError when someone else saved the record since expected_updated (unless force).
    shown_suggestion: the run whose suggestion the editor showed (the label records what was kept).
    Returns (record, message)."""
    probe = {**ds.get(rid), "fields": {**(ds.get(rid).get("fields") or {}), **fields}}
    errors = [i for i in ds.task.validate(probe) if i.severity == "error"]
    status = "unlabeled" if errors else ("reviewed" if reviewed else "labeled")
    rec = ds.set_fields(rid, fields, status=status, expected_updated=None if force else expected_updated,
                        shown_suggestion=shown_suggestion)
    if errors:
        first = errors[0]
        where = f" (line {first.line}, column {first.column})" if first.line else ""
        return rec, f"Saved as a draft ({rec.get('status')}): {first.message}{where}"
    return rec, f"Saved as {status}."


# ---------------------------------------------------------------- live check
def _issue_items(issues) -> str:
    return "".join(
        f'<li class="ts-issue-{"err" if i.severity == "error" else "warn"}">'
        + (f'<span class="ts-loc">line {i.line}, col {i.column}</span> ' if i.line else "")
        + f"{esc(i.message)}</li>" for i in issues)


def live_check(task: Task, fields: dict) -> dict:
    """What the editor shows while a person types: {"status" (HTML), "target" (the training text),
    "preview" (the task's view HTML), "headers", "rows" (its table)}."""
    if all(_empty(v) or v is False for v in (fields or {}).values()):
        view = task.view(Parsed(ok=False))  # only its table's headers: an empty label is no failed answer
        return {"status": f'<div class="ts-check" id="ann-check-box">{badge("empty", "neutral")} Fill in the '
                          "fields; they are checked as you type.</div>",
                "target": "", "preview": NO_PREVIEW, "headers": view.headers, "rows": []}
    issues = task.check(fields)
    errors = [i for i in issues if i.severity == "error"]
    warnings = [i for i in issues if i.severity != "error"]
    try:
        target = task.target({"id": "", "image": "", "fields": fields})
    except Exception:  # noqa: BLE001 - an incomplete label has no target yet; check() says why
        target = ""
    view = task.view(task.parse(target)) if target else task.view(Parsed(ok=False))
    # A label with errors is the annotator's, not a model's answer that "did not parse": the preview
    # waits for a valid label (the check says what to fix; the table keeps what already parses)
    preview = NO_PREVIEW if errors or not target else view.html
    if errors:
        head = badge(f"{len(errors)} error{'s' * (len(errors) != 1)}", "err")
    else:
        summary = view.summary[len("valid · "):] if view.summary.startswith("valid · ") else view.summary
        head = badge("valid", "ok") + (f' <span class="ts-muted">{esc(summary)}</span>' if summary else "")
    items = _issue_items(errors + warnings)
    status = f'<div class="ts-check" id="ann-check-box">{head}' + (f"<ul>{items}</ul>" if items else "") + "</div>"
    return {"status": status, "target": target, "preview": preview, "headers": view.headers, "rows": view.rows}


def sql_check(task: Task, sql: str, name: str = "sql", others: dict | None = None) -> tuple[str, list, str]:
    """The live check of a task's SQL field: (status HTML with line/column, table rows, preview HTML)."""
    out = live_check(task, {**(others or {}), name: sql or ""})
    return out["status"], out["rows"], out["preview"]
