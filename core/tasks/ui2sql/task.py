"""ui2sql: a screenshot of an application's UI -> the SQL schema behind it (CREATE TABLE ...).

The label is SQL text (fields["sql"]); the training target is that SQL in canonical form: one
CREATE TABLE per table, formatted by sqlglot in its generic dialect, comments dropped. Parsing
(model answers and labels alike) lives in parse.py, metrics and the diff in score.py.
"""
from __future__ import annotations

from core.errors import StudioError
from core.tasks.ui2sql.parse import (DIALECTS, MAX_CHARS, dialect_name, join_statements, parse_sql,
                                   render, sqlglot_dialect)
from core.tasks.ui2sql.score import schema_diff as _schema_diff
from core.tasks.ui2sql.score import score_schemas, type_family
from core.tasks.base import BaseTask, Field, Issue, Parsed, View
from core.tasks.ui2sql.route import ROUTE

__all__ = ["TASK", "Ui2SqlTask", "parse", "transpile", "schema_diff", "type_family", "DIALECTS",
           "MAX_CHARS"]

DEFAULT_PROMPT = (
    "This is a screenshot of an application's user interface. Write the relational database "
    "schema that stores the data shown in it, as SQL CREATE TABLE statements: one statement per "
    "table, each column with a type, a PRIMARY KEY for every table and FOREIGN KEY references "
    "between related tables. Answer with the SQL only.")


def parse(text, dialect: str | None = None) -> Parsed:
    """Model or label text -> Parsed (see parse.py). dialect None tries generic, then
    postgres, mysql and sqlite, keeping the reading with the fewest errors. Never raises."""
    return parse_sql(text, dialect)[0]


def _as_parsed(value) -> Parsed:
    return value if isinstance(value, Parsed) else parse(value)


def transpile(sql_or_parsed, dialect: str) -> str:
    """The schema as DDL for "postgres", "mysql", "sqlite" or "generic" (sqlglot's own).

    Takes SQL text or a Parsed. Raises StudioError for an unknown dialect or when no table
    parsed; statements that did not parse are left out (parse() reports them).
    """
    target = dialect_name(dialect)
    if target is None:
        raise StudioError(f"Unknown SQL dialect '{dialect}'.",
                          f"Choose one of: {', '.join(DIALECTS)}.")
    if isinstance(sql_or_parsed, Parsed):
        parsed, creates = parse_sql(sql_or_parsed.data.get("sql") or "", "generic")
    else:
        parsed, creates = parse_sql(sql_or_parsed)
    if not creates:
        first = parsed.errors[0].message if parsed.errors else "no CREATE TABLE statement"
        raise StudioError("There is no schema to convert.", f"Fix the SQL first: {first}")
    return join_statements([render(c, sqlglot_dialect(target)) for c in creates])


def schema_diff(pred, label) -> dict:
    """Missing/extra tables and columns, type and constraint mismatches, key differences.
    Arguments are Parsed objects or SQL text."""
    return _schema_diff(_as_parsed(pred), _as_parsed(label))


def _sql_of(record: dict) -> str:
    value = (record.get("fields") or {}).get("sql")
    return value if isinstance(value, str) else ""


class Ui2SqlTask(BaseTask):
    name = "ui2sql"
    title = "UI screenshot -> SQL schema"
    # A schema of a dozen tables is ~600-900 tokens; the stop at <end_of_turn> ends it earlier.
    max_new_tokens = 1024
    # Screens of one app share their layout, which is all an 8x8 perceptual hash sees (different
    # screens of the demo's pages were 0-2 bits apart); at 16x16 the labels show: a resized, JPEG'd
    # copy of a screen stays within 10 of 256 bits, another screen was 12 or more away.
    near_duplicate = (16, 10)
    # No demo_recipe override: the demo dataset's train/val are one-table pages (~40-token answers;
    # the long mock-ups are its test split), so the shared recipe fits (bench/RESULTS.md, "ui2sql").
    system_prompt = ("You turn a screenshot of an application's user interface into the SQL schema behind it: "
                     "answer only with CREATE TABLE statements.")
    headline_metric = "column_f1"
    route = ROUTE
    check_api = "check_sql"   # the studio's gradio endpoint that checks SQL text (parse().to_dict())

    @property
    def formats(self):
        from core.tasks.ui2sql.formats import FORMATS

        return FORMATS

    @property
    def fields(self) -> list[Field]:
        return [
            Field("sql", "sql", "SQL schema",
                  help="CREATE TABLE statements for the data this screen shows, one per table, "
                       "with types, primary keys and REFERENCES. PostgreSQL, MySQL or SQLite."),
            Field("domain", "text", "Domain", required=False,
                  help="What kind of app this is (shop, CRM, booking...). For filtering only."),
            Field("instruction", "text", "Instruction", required=False,
                  help="A prompt for this image only; empty uses the standard prompt."),
        ]

    def prompt(self, record: dict) -> str:
        instruction = (record.get("fields") or {}).get("instruction")
        if isinstance(instruction, str) and instruction.strip():
            return instruction.strip()
        return DEFAULT_PROMPT

    def target(self, record: dict) -> str:
        """Canonical SQL; a label that does not parse is kept as written (validate flags it)."""
        sql = _sql_of(record)
        parsed = parse(sql)
        return parsed.data["sql"] if parsed.ok else sql.strip()

    def parse(self, text, dialect: str | None = None) -> Parsed:
        return parse(text, dialect)

    def normalize_fields(self, fields: dict) -> dict:
        """Whitespace at the end of a line is no part of a schema: the code editor drops the SQL's
        trailing newline, and a label that differs only there is the one stored."""
        out = super().normalize_fields(fields)
        if isinstance(out.get("sql"), str):
            out["sql"] = "\n".join(line.rstrip() for line in out["sql"].splitlines())
        return out

    def validate(self, record: dict) -> list[Issue]:
        sql = _sql_of(record)
        if not sql.strip():
            return [Issue("error", "The SQL schema is empty.", field="sql")]
        parsed = parse(sql)
        issues = list(parsed.errors)
        tables = parsed.data.get("tables") or []
        if not tables:
            if not issues:
                issues.append(Issue("error", "The SQL has no CREATE TABLE statement.", "sql"))
            return issues
        by_name: dict[str, dict] = {}
        for t in tables:
            key = t["name"].lower()
            if key in by_name:
                issues.append(Issue("error", f"Table '{t['name']}' is defined twice.", "sql"))
            else:
                by_name[key] = t
        for t in tables:
            issues.extend(_table_issues(t, by_name))
        return issues

    def score(self, parsed: Parsed, record: dict) -> dict[str, float]:
        return score_schemas(parsed, parse(_sql_of(record)))

    def fields_from_parsed(self, parsed: Parsed) -> dict:
        return {"sql": parsed.data.get("sql") or ""}

    def diff(self, parsed: Parsed, record: dict) -> dict:
        """Against the label: missing/extra tables and columns, type and key differences."""
        return schema_diff(parsed, _sql_of(record))

    def view(self, parsed: Parsed) -> View:
        """The ER diagram (SVG) and the parsed tables."""
        from core.tasks.ui2sql.er_diagram import er_svg

        tables = (parsed.data.get("tables") if parsed else None) or []
        n_err = sum(e.severity == "error" for e in (parsed.errors if parsed else []))
        summary = (f"valid · {len(tables)} table{'s' * (len(tables) != 1)}" if parsed and parsed.ok
                   else f"invalid · {n_err} error{'s' * (n_err != 1)}")
        return View(html=er_svg(tables, "No table parsed from this answer"), json={"tables": tables},
                    summary=summary, headers=list(TABLE_HEADERS), rows=table_rows(tables))

    def samples(self, n: int = 2) -> list[dict]:
        """The bundled demo screenshots with their labels."""
        from core.workspace import ASSETS
        from PIL import Image
        import json

        folder = ASSETS / "demo" / "ui2sql"
        out = []
        try:
            lines = (folder / "records.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        for line in lines:
            if len(out) >= n:
                break
            try:
                rec = json.loads(line)
                with Image.open(folder / rec["image"]) as im:
                    out.append({"id": rec["id"], "image_obj": im.convert("RGB"), "fields": rec.get("fields") or {}})
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return out

    def is_labeled(self, record: dict) -> bool:
        # SQL that does not parse is a draft: it is kept, but the record stays unlabeled.
        sql = _sql_of(record)
        return bool(sql.strip()) and self.parse(sql).ok


TABLE_HEADERS = ("table", "column", "type", "key", "references", "not null")


def table_rows(tables: list[dict]) -> list[list]:
    """One compact row per column: table, column, type, PK/FK/UQ, what it references, not null."""
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
    return rows


def _table_issues(t: dict, by_name: dict[str, dict]) -> list[Issue]:
    name, issues = t["name"], []
    cols: set[str] = set()
    for c in t["columns"]:
        if c["name"].lower() in cols:
            issues.append(Issue("error", f"Column '{c['name']}' appears twice in table '{name}'.",
                                "sql"))
        cols.add(c["name"].lower())
    for c in t["primary_key"]:
        if c.lower() not in cols:
            issues.append(Issue("error", f"PRIMARY KEY of '{name}' names a missing column '{c}'.",
                                "sql"))
    if not t["primary_key"]:
        issues.append(Issue("warning", f"Table '{name}' has no primary key.", "sql"))
    for fk in t["foreign_keys"]:
        here = f"Foreign key {name}({', '.join(fk['columns'])})"
        for c in fk["columns"]:
            if c.lower() not in cols:
                issues.append(Issue("error", f"{here} uses a missing column '{c}'.", "sql"))
        ref = by_name.get(fk["ref_table"].lower())
        if ref is None:
            issues.append(Issue("error", f"{here} references a missing table "
                                         f"'{fk['ref_table']}'.", "sql"))
            continue
        ref_cols = {c["name"].lower() for c in ref["columns"]}
        if not fk["ref_columns"]:
            issues.append(Issue("error", f"{here} references '{ref['name']}' without naming a "
                                         "column, and that table's primary key does not match.",
                                "sql"))
        for c in fk["ref_columns"]:
            if c.lower() not in ref_cols:
                issues.append(Issue("error", f"{here} references a missing column "
                                             f"'{ref['name']}.{c}'.", "sql"))
        if fk["ref_columns"] and len(fk["ref_columns"]) != len(fk["columns"]):
            issues.append(Issue("error", f"{here} has {len(fk['columns'])} column(s) but "
                                         f"references {len(fk['ref_columns'])}.", "sql"))
    return issues


TASK = Ui2SqlTask()
