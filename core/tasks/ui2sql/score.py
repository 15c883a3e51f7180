"""Comparing two parsed schemas: the ui2sql metrics and the human-readable diff.

Names are compared case-insensitively; quoting never reaches here (the parser strips it) and
schema qualifiers (public.users) are dropped by the parser, so `users` == `"Users"`.

Types are compared by family, a decision documented here because it shapes every score: a
screenshot shows what a field holds, never its storage size, so VARCHAR(255) == VARCHAR == TEXT
(family "text"), INT == INTEGER == BIGINT == SERIAL ("integer"), TIMESTAMP == DATETIME ==
TIMESTAMPTZ ("timestamp"). Families that change meaning stay apart: DECIMAL (exact money) vs
FLOAT, DATE vs TIMESTAMP, BOOLEAN vs INTEGER, JSON, UUID, binary, enum, array.
"""
from __future__ import annotations

import functools

from sqlglot import exp

_T = exp.DataType.Type
_FAMILIES: list[tuple[str, set]] = [
    ("integer", set(exp.DataType.INTEGER_TYPES)),
    ("decimal", {_T.DECIMAL, _T.BIGDECIMAL, _T.DECIMAL32, _T.DECIMAL64, _T.DECIMAL128,
                 _T.DECIMAL256, _T.DECFLOAT, _T.MONEY, _T.SMALLMONEY, _T.UDECIMAL}),
    ("float", {_T.FLOAT, _T.DOUBLE, _T.UDOUBLE}),
    ("text", set(exp.DataType.TEXT_TYPES)),
    ("boolean", {_T.BOOLEAN}),
    ("date", {_T.DATE, _T.DATE32}),
    ("time", {_T.TIME, _T.TIMETZ}),
    ("timestamp", {_T.DATETIME, _T.DATETIME2, _T.DATETIME64, _T.SMALLDATETIME, _T.TIMESTAMP,
                   _T.TIMESTAMPTZ, _T.TIMESTAMPLTZ, _T.TIMESTAMPNTZ, _T.TIMESTAMP_S,
                   _T.TIMESTAMP_MS, _T.TIMESTAMP_NS}),
    ("json", {_T.JSON, _T.JSONB}),
    ("uuid", {_T.UUID}),
    ("binary", set(exp.DataType.BINARY_TYPES)),
    ("array", set(exp.DataType.ARRAY_TYPES)),
    ("enum", {_T.ENUM, _T.ENUM8, _T.ENUM16, _T.SET}),
]
# Names sqlglot keeps as user-defined types in its generic dialect.
_UDT = {"SERIAL": "integer", "SMALLSERIAL": "integer", "BIGSERIAL": "integer", "SERIAL4": "integer",
        "SERIAL8": "integer", "INT2": "integer", "INT4": "integer", "INT8": "integer",
        "MONEY": "decimal", "CITEXT": "text", "CLOB": "text", "STRING": "text",
        "FLOAT4": "float", "FLOAT8": "float", "UNIQUEIDENTIFIER": "uuid", "BOOL": "boolean"}


@functools.lru_cache(maxsize=4096)
def type_family(type_sql: str) -> str:
    """'VARCHAR(255)' -> 'text'; unknown types fall back to their upper-cased base name."""
    raw = (type_sql or "").strip()
    if not raw:
        return ""
    base = raw.split("(")[0].strip().upper()
    if base in _UDT:
        return _UDT[base]
    try:
        dt = exp.DataType.build(raw, udt=True)
    except Exception:  # noqa: BLE001 - an odd type name is compared by its text
        return base
    if dt.this == _T.USERDEFINED:
        name = str(dt.args.get("kind") or base).split("(")[0].strip().upper()
        return _UDT.get(name, name)
    for family, members in _FAMILIES:
        if dt.this in members:
            return family
    return dt.this.name


def _key(name: str) -> str:
    return (name or "").strip().lower()


def _tables(parsed) -> dict[str, dict]:
    """name -> table; a duplicated table name keeps its first definition (validate flags it)."""
    out: dict[str, dict] = {}
    for t in (parsed.data.get("tables") or []):
        out.setdefault(_key(t["name"]), t)
    return out


def _columns(tables: dict[str, dict]) -> dict[tuple[str, str], dict]:
    out: dict[tuple[str, str], dict] = {}
    for tname, t in tables.items():
        for c in t["columns"]:
            out.setdefault((tname, _key(c["name"])), c)
    return out


def _pk_pairs(tables: dict[str, dict]) -> set[tuple[str, str]]:
    return {(tname, _key(c)) for tname, t in tables.items() for c in t["primary_key"]}


def _fk_set(tables: dict[str, dict]) -> set[tuple]:
    return {(tname, tuple(_key(c) for c in fk["columns"]), _key(fk["ref_table"]),
             tuple(_key(c) for c in fk["ref_columns"]))
            for tname, t in tables.items() for fk in t["foreign_keys"]}


def f1(predicted: set, expected: set) -> float:
    """F1 of two sets; two empty sets agree perfectly (no keys predicted where none exist)."""
    if not predicted and not expected:
        return 1.0
    hits = len(predicted & expected)
    if not hits:
        return 0.0
    precision, recall = hits / len(predicted), hits / len(expected)
    return 2 * precision * recall / (precision + recall)


def score_schemas(pred, label) -> dict[str, float]:
    """Metrics of a predicted Parsed against a label's Parsed (see the module doc for types)."""
    pt, lt = _tables(pred), _tables(label)
    pc, lc = _columns(pt), _columns(lt)
    matched = sorted(set(pc) & set(lc))
    if matched:
        same = sum(type_family(pc[k]["type"]) == type_family(lc[k]["type"]) for k in matched)
        type_acc = same / len(matched)
    else:
        type_acc = 1.0 if not lc and not pc else 0.0
    scores = {
        "table_f1": f1(set(pt), set(lt)),
        "column_f1": f1(set(pc), set(lc)),
        "type_accuracy": type_acc,
        "pk_f1": f1(_pk_pairs(pt), _pk_pairs(lt)),
        "fk_f1": f1(_fk_set(pt), _fk_set(lt)),
        "parses": 1.0 if pred.ok else 0.0,
    }
    # Exact: parses, and tables, columns, type families and keys all agree.
    scores["exact"] = 1.0 if pred.ok and all(
        scores[k] == 1.0 for k in ("table_f1", "column_f1", "type_accuracy", "pk_f1", "fk_f1")
    ) else 0.0
    return scores


def _fk_text(fk: tuple) -> str:
    table, cols, ref_table, ref_cols = fk
    return f"{table}({', '.join(cols)}) -> {ref_table}({', '.join(ref_cols)})"


def schema_diff(pred, label) -> dict:
    """What the prediction got wrong against the label, for the Compare tab.

    Lists use the label's spelling for missing items and the prediction's for extra ones.
    Columns of missing/extra tables are not repeated under missing/extra columns. Keys are
    listed lower-cased ("orders.user_id"), as they are compared.
    """
    pt, lt = _tables(pred), _tables(label)
    pc, lc = _columns(pt), _columns(lt)
    both_tables = set(pt) & set(lt)

    def col_name(cols, tables, k):
        return f"{tables[k[0]]['name']}.{cols[k]['name']}"

    mismatches, constraints = [], []
    for k in sorted(set(pc) & set(lc)):
        p, g = pc[k], lc[k]
        if type_family(p["type"]) != type_family(g["type"]):
            mismatches.append({"column": col_name(lc, lt, k), "predicted": p["type"],
                               "expected": g["type"]})
        for attr in ("not_null", "unique"):
            # A primary key column is NOT NULL and UNIQUE whether or not it says so.
            pv, gv = bool(p[attr] or p["primary_key"]), bool(g[attr] or g["primary_key"])
            if pv != gv:
                constraints.append({"column": col_name(lc, lt, k), "attribute": attr,
                                    "predicted": pv, "expected": gv})
    ppk, lpk = _pk_pairs(pt), _pk_pairs(lt)
    pfk, lfk = _fk_set(pt), _fk_set(lt)
    diff = {
        "missing_tables": [lt[k]["name"] for k in sorted(set(lt) - set(pt))],
        "extra_tables": [pt[k]["name"] for k in sorted(set(pt) - set(lt))],
        "missing_columns": [col_name(lc, lt, k) for k in sorted(set(lc) - set(pc))
                            if k[0] in both_tables],
        "extra_columns": [col_name(pc, pt, k) for k in sorted(set(pc) - set(lc))
                          if k[0] in both_tables],
        "type_mismatches": mismatches,
        "constraint_mismatches": constraints,
        "missing_primary_key": [f"{a}.{b}" for a, b in sorted(lpk - ppk)],
        "extra_primary_key": [f"{a}.{b}" for a, b in sorted(ppk - lpk)],
        "missing_foreign_keys": [_fk_text(f) for f in sorted(lfk - pfk)],
        "extra_foreign_keys": [_fk_text(f) for f in sorted(pfk - lfk)],
    }
    diff["identical"] = not any(diff.values())
    return diff
