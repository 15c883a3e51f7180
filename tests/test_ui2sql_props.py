"""Property tests for the ui2sql parser: it never raises, and canonical SQL is a fixed point."""
from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.tasks.ui2sql import TASK, parse, schema_diff

SETTINGS = settings(max_examples=80, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Fragments that push the parser into its corners: quotes, fences, keywords, odd separators.
FRAGMENTS = ["CREATE", "TABLE", "create table", "(", ")", ",", ";", "`", '"', "'", "[", "]",
             "INT", "VARCHAR(", "REFERENCES", "PRIMARY KEY", "FOREIGN KEY", "NOT NULL",
             "DEFAULT", "```sql\n", "```", "\n", " ", "x", "users", "--", "/*", "*/", "é", "名",
             "\x00", "\\", "$$", "1e999", "CHECK", "AS SELECT", "INDEX", "UNIQUE"]

sqlish = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map(" ".join)
arbitrary = st.one_of(st.text(max_size=400), sqlish, st.binary(max_size=200))


def _check(p):
    assert isinstance(p.ok, bool) and 0.0 <= p.compliance <= 1.0
    assert p.ok == (not p.errors)
    if p.ok:
        assert p.data["tables"] and p.compliance == 1.0
    json.dumps(p.to_dict())


@SETTINGS
@given(arbitrary)
def test_parse_never_raises(text):
    _check(parse(text))


@SETTINGS
@given(arbitrary)
def test_validate_target_and_score_never_raise(text):
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    record = {"fields": {"sql": text}}
    TASK.validate(record)
    TASK.target(record)
    scores = TASK.score(parse(text), {"fields": {"sql": "CREATE TABLE a (id INT PRIMARY KEY)"}})
    assert all(0.0 <= v <= 1.0 for v in scores.values())


# ------------------------------------------------------------------ generated schemas

LETTERS = "abcdefghijklmnopqrstuvwxyzéüß名前"
names = st.text(alphabet=LETTERS, min_size=1, max_size=8)
TYPES = ["INT", "INTEGER", "BIGINT", "SMALLINT", "TEXT", "VARCHAR(40)", "CHAR(2)",
         "DECIMAL(10, 2)", "NUMERIC", "FLOAT", "REAL", "DOUBLE PRECISION", "BOOLEAN", "DATE",
         "TIMESTAMP", "TIME", "JSON", "UUID", "BLOB"]
DEFAULTS = [None, "0", "'x'", "CURRENT_TIMESTAMP", "TRUE", "NULL"]


@st.composite
def schemas(draw):
    table_names = draw(st.lists(names, min_size=1, max_size=4, unique_by=str.lower))
    statements = []
    for i, tname in enumerate(table_names):
        cols = draw(st.lists(names, min_size=1, max_size=5, unique_by=str.lower))
        lines = []
        for col in cols:
            parts = [f'"{col}"', draw(st.sampled_from(TYPES))]
            if draw(st.booleans()):
                parts.append("NOT NULL")
            if draw(st.integers(0, 4)) == 0:
                parts.append("UNIQUE")
            default = draw(st.sampled_from(DEFAULTS))
            if default:
                parts.append(f"DEFAULT {default}")
            lines.append(" ".join(parts))
        pk = draw(st.lists(st.sampled_from(cols), max_size=2, unique=True))
        if pk:
            lines.append("PRIMARY KEY (" + ", ".join(f'"{c}"' for c in pk) + ")")
        if len(cols) > 1 and draw(st.booleans()):
            lines.append(f'CONSTRAINT "uq_{i}" UNIQUE ("{cols[0]}", "{cols[1]}")')
        if draw(st.booleans()):
            lines.append(f'CHECK (LENGTH("{cols[-1]}") > 0)')
        if i > 0 and draw(st.booleans()):
            ref = draw(st.sampled_from(table_names[:i]))
            action = draw(st.sampled_from(["", " ON DELETE CASCADE", " ON UPDATE SET NULL"]))
            lines.append(f'FOREIGN KEY ("{cols[0]}") REFERENCES "{ref}" ("x"){action}')
        exists = draw(st.sampled_from(["", "IF NOT EXISTS "]))
        statements.append(f'CREATE TABLE {exists}"{tname}" (' + ", ".join(lines) + ");")
    sep = draw(st.sampled_from(["\n", "\n\n", " "]))
    return sep.join(statements)


@SETTINGS
@given(schemas())
def test_target_parse_target_is_stable(sql):
    record = {"fields": {"sql": sql}}
    first = parse(sql)
    assert first.ok, (sql, first.errors)
    target = TASK.target(record)
    again = parse(target)
    assert again.ok, (target, again.errors)
    assert again.data["tables"] == first.data["tables"]
    assert TASK.target({"fields": {"sql": target}}) == target
    assert schema_diff(again, first)["identical"]
    assert TASK.score(again, record)["exact"] == 1.0


@SETTINGS
@given(schemas(), st.sampled_from(["Here you go:\n```sql\n{}\n```\nHope it helps (a lot).",
                                    "{}", "Sure! {}\n\nThat is the schema.",
                                    "```\n{}"]))
def test_chatter_around_a_schema_changes_nothing(sql, wrapper):
    assert parse(wrapper.format(sql)).data["tables"] == parse(sql).data["tables"]
