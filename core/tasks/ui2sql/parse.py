"""SQL DDL text -> tables, columns and keys, for the ui2sql task. Never raises on bad input.

Model answers come in any of PostgreSQL / MySQL / SQLite flavours. After extract.py has blanked
the chatter (line/column numbers stay those of the text the user sees), we try the generic
dialect, fall back to the others, and add the checks sqlglot's lenient parser lacks.
"""
from __future__ import annotations

import logging

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, TokenError
from sqlglot.tokens import TokenType

from core.tasks.ui2sql.extract import extract_sql
from core.tasks.base import Issue, Parsed

MAX_CHARS = 100_000          # a screenshot's schema is a few KB; beyond this we refuse, fast
MAX_ERRORS = 50              # past this, a list of errors stops helping anyone
DIALECTS = ("generic", "postgres", "mysql", "sqlite")
_ALIASES = {"": "generic", "generic": "generic", "sqlglot": "generic", "postgres": "postgres",
            "postgresql": "postgres", "pg": "postgres", "mysql": "mysql", "mariadb": "mysql",
            "sqlite": "sqlite", "sqlite3": "sqlite"}

# sqlglot logs a warning whenever it falls back to an opaque Command; we report those ourselves.
logging.getLogger("sqlglot").addFilter(
    lambda rec: "Falling back to parsing as a 'Command'" not in rec.getMessage())


def dialect_name(dialect: str | None) -> str | None:
    """Our name for a dialect ("generic", "postgres", "mysql", "sqlite"), or None if unknown."""
    return _ALIASES.get((dialect or "").strip().lower())


def sqlglot_dialect(name: str) -> str | None:
    return None if name == "generic" else name


# ---------------------------------------------------------------- parsing

def _syntax_error(info: dict, fallback: str) -> Issue:
    """One entry of sqlglot's structured ParseError.errors (description, line, col, highlight) as an
    Issue at the offending token. Some descriptions end in the token's repr ("... but got <Token
    ...>"); the user needs only its text, which `highlight` holds."""
    description = info.get("description") or fallback
    near = info.get("highlight") or ""
    head, repr_found, _ = description.partition("<Token")
    if repr_found:
        description = head + f"'{near}'"
    line, col = info.get("line"), info.get("col")
    if isinstance(col, int) and near and "\n" not in near:
        col = max(1, col - len(near) + 1)    # sqlglot points at the token's last char
    return _err(f"SQL syntax error: {description}" + (f" near '{near[:40]}'." if near else "."), line, col)


def _stray(chunk, sql: str) -> Issue | None:
    """A 'statement' of punctuation only, e.g. the ')' an editor's auto-closed bracket leaves after
    the last ';': an error at that token."""
    if any(t.text[:1].isalnum() or t.text[:1] in "_\"'`" for t in chunk):
        return None
    text = " ".join(t.text for t in chunk)[:40]
    return _err(f"Stray '{text}' outside any statement.", *_tok_pos(sql, chunk[0]))


def _err(message: str, line: int | None = None, col: int | None = None) -> Issue:
    message = "".join(c if c.isprintable() else "?" for c in message)  # junk input stays readable
    return Issue("error", message, field="sql", line=line, column=col)


def _pos_of(node: exp.Expr | None, sql: str) -> tuple[int | None, int | None]:
    """Line/column where node's first identifier starts (sqlglot records offsets on those)."""
    for ident in (node.find_all(exp.Identifier) if node is not None else ()):
        if isinstance(ident.meta.get("start"), int):
            return _offset_to_line_col(sql, ident.meta["start"])
    return None, None


def _tok_pos(sql: str, tok) -> tuple[int, int]:
    return _offset_to_line_col(sql, tok.start)


def _name(node) -> str:
    if isinstance(node, (exp.Identifier, exp.Column, exp.Table)):
        return node.name
    if isinstance(node, exp.Ordered):
        return _name(node.this)
    return node.sql() if isinstance(node, exp.Expr) else str(node)


def _offset_to_line_col(sql: str, offset: int) -> tuple[int, int]:
    offset = max(0, min(offset, len(sql)))
    line = sql.count("\n", 0, offset) + 1
    return line, offset - (sql.rfind("\n", 0, offset) + 1) + 1


def _comma_errors(tokens, sql: str) -> list[Issue]:
    """sqlglot silently drops empty list items: '(a INT,, b TEXT)', '(, a INT)', '(a INT,)'."""
    errors = []
    for prev, tok in zip(tokens, tokens[1:]):
        kinds = (prev.token_type, tok.token_type)
        if kinds == (TokenType.COMMA, TokenType.COMMA):
            errors.append(_err("Empty item between two commas (',,').", *_tok_pos(sql, tok)))
        elif kinds == (TokenType.L_PAREN, TokenType.COMMA):
            errors.append(_err("A comma right after '(' (missing item).", *_tok_pos(sql, tok)))
        elif kinds == (TokenType.COMMA, TokenType.R_PAREN):
            errors.append(_err("Trailing comma before ')'.", *_tok_pos(sql, prev)))
    return errors


def _chunks(tokens) -> list[list]:
    out, cur = [], []
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(tok)
    if cur:
        out.append(cur)
    return out


def _statement_error(chunk, stmt, sql: str) -> Issue:
    where = _tok_pos(sql, chunk[0])
    creates = [i for i, t in enumerate(chunk[:-1])
               if t.token_type == TokenType.CREATE and chunk[i + 1].token_type == TokenType.TABLE]
    if len(creates) > 1:                 # two CREATE TABLEs fused into one Command
        return _err("Missing ';' between two CREATE TABLE statements.",
                    *_tok_pos(sql, chunk[creates[1]]))
    head = " ".join(t.text for t in chunk[:3])
    if isinstance(stmt, exp.Create) and (stmt.kind or "").upper() == "TABLE":
        return _err(f"CREATE TABLE without a column list ('{head} ...').", *where)
    if isinstance(stmt, exp.Command) and chunk[0].token_type == TokenType.CREATE:
        return _err(f"Could not parse this statement ('{head} ...').", *where)
    return _err(f"Only CREATE TABLE statements are expected, found '{head} ...'.", *where)


def _table_from_create(stmt: exp.Create, errors: list[Issue], sql: str) -> dict:
    schema = stmt.this
    table = schema.this
    tname = _name(table)
    columns: list[dict] = []
    pk: list[str] = []
    pk_sources = 0
    fks: list[dict] = []
    unique_single: set[str] = set()

    def add_pk(cols, node):
        nonlocal pk_sources
        pk_sources += 1
        if pk_sources > 1:
            line, col = _pos_of(node, sql)
            errors.append(_err(f"Table '{tname}' has more than one PRIMARY KEY.", line, col))
            return
        pk.extend(cols)

    def ref_of(ref: exp.Reference) -> tuple[str, list[str]]:
        target = ref.this
        if isinstance(target, exp.Schema):
            return _name(target.this), [_name(c) for c in target.expressions]
        return _name(target), []

    def table_constraint(node):
        if isinstance(node, exp.Constraint):   # CONSTRAINT name <PRIMARY KEY|FOREIGN KEY|...>
            for inner in node.expressions:
                table_constraint(inner)
        elif isinstance(node, exp.PrimaryKey):
            add_pk([_name(c) for c in node.expressions], node)
        elif isinstance(node, exp.ForeignKey):
            ref_table, ref_cols = ref_of(node.args["reference"]) if node.args.get("reference") \
                else ("", [])
            fks.append({"columns": [_name(c) for c in node.expressions],
                        "ref_table": ref_table, "ref_columns": ref_cols})
        elif isinstance(node, exp.UniqueColumnConstraint) and isinstance(node.this, exp.Schema):
            cols = [_name(c) for c in node.this.expressions]
            if len(cols) == 1:
                unique_single.add(cols[0].lower())

    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            cname = _name(item.this)
            kind = item.args.get("kind")
            if kind is None:
                line, col = _pos_of(item.this, sql)
                errors.append(_err(f"Column '{cname}' in table '{tname}' has no type.", line, col))
            column = {"name": cname, "type": kind.sql() if kind is not None else "",
                      "not_null": False, "unique": False, "default": None, "primary_key": False}
            for cons in item.args.get("constraints") or []:
                kind_c = cons.args.get("kind") if isinstance(cons, exp.ColumnConstraint) else cons
                if isinstance(kind_c, exp.NotNullColumnConstraint):
                    column["not_null"] = not kind_c.args.get("allow_null")
                elif isinstance(kind_c, exp.UniqueColumnConstraint):
                    column["unique"] = True
                elif isinstance(kind_c, exp.PrimaryKeyColumnConstraint):
                    add_pk([cname], item)
                elif isinstance(kind_c, exp.DefaultColumnConstraint):
                    column["default"] = kind_c.this.sql(comments=False) if kind_c.this else None
                elif isinstance(kind_c, exp.Reference):
                    ref_table, ref_cols = ref_of(kind_c)
                    fks.append({"columns": [cname], "ref_table": ref_table,
                                "ref_columns": ref_cols})
            columns.append(column)
        elif isinstance(item, (exp.Identifier, exp.Column)):
            line, col = _pos_of(item, sql)
            errors.append(_err(f"Column '{_name(item)}' in table '{tname}' has no type.",
                               line, col))
            columns.append({"name": _name(item), "type": "", "not_null": False,
                            "unique": False, "default": None, "primary_key": False})
        else:
            table_constraint(item)
    pk_lower = {c.lower() for c in pk}
    for column in columns:
        column["primary_key"] = column["name"].lower() in pk_lower
        column["unique"] = column["unique"] or column["name"].lower() in unique_single
    return {"name": tname, "columns": columns, "primary_key": pk, "foreign_keys": fks}


_INDEX_WORDS = {"KEY", "INDEX", "FULLTEXT", "SPATIAL"}


def _misread_columns(stmt: exp.Create) -> int:
    """Columns named KEY/INDEX (unquoted) are MySQL index definitions that a dialect read as
    columns: count them, so the dialect that understands them wins."""
    return sum(1 for e in stmt.this.expressions
               if isinstance(e, exp.ColumnDef) and isinstance(e.this, exp.Identifier)
               and not e.this.quoted and e.this.name.upper() in _INDEX_WORDS)


def _attempt(sql: str, name: str) -> tuple[int, list[Issue], list[tuple[dict, exp.Create]]]:
    """Parse the blanked SQL with one dialect: (statements it could not read, errors,
    [(table dict, its AST)]). Only unreadable statements make another dialect worth a try."""
    dialect = Dialect.get_or_raise(sqlglot_dialect(name))
    try:
        tokens = dialect.tokenize(sql)
    except TokenError as e:
        start = getattr(e, "start", None)
        line, col = _offset_to_line_col(sql, start) if isinstance(start, int) else (None, None)
        return 1, [_err(f"Could not read the SQL: {str(e).splitlines()[0][:200]}", line, col)], []
    except Exception as e:  # noqa: BLE001 - a tokenizer bug must not crash the caller
        return 1, [_err(f"Could not read the SQL ({type(e).__name__}).")], []
    errors = _comma_errors(tokens, sql)
    unreadable = 0
    tables: list[tuple[dict, exp.Create]] = []
    for chunk in _chunks(tokens):
        stray = _stray(chunk, sql)
        if stray is not None:
            unreadable += 1
            errors.append(stray)
            continue
        try:
            stmts = dialect.parser(error_level=ErrorLevel.IMMEDIATE).parse(chunk, sql)
        except ParseError as e:
            unreadable += 1
            errors.append(_syntax_error((e.errors or [{}])[0], str(e)[:200]))
            continue
        except Exception as e:  # noqa: BLE001 - e.g. RecursionError on absurd nesting
            unreadable += 1
            errors.append(_err(f"Could not parse this statement ({type(e).__name__}).",
                               *_tok_pos(sql, chunk[0])))
            continue
        for stmt in stmts:
            if stmt is None:
                continue
            if (isinstance(stmt, exp.Create) and (stmt.kind or "").upper() == "TABLE"
                    and isinstance(stmt.this, exp.Schema) and stmt.this.expressions
                    and isinstance(stmt.this.this, exp.Table)):
                unreadable += _misread_columns(stmt)
                tables.append((_table_from_create(stmt, errors, sql), stmt))
            else:
                unreadable += isinstance(stmt, exp.Command)
                errors.append(_statement_error(chunk, stmt, sql))
    return unreadable, errors, tables


def _resolve_references(tables: list[dict]) -> None:
    """REFERENCES t without columns means t's primary key: fill it in so scores compare."""
    by_name = {t["name"].lower(): t for t in tables}
    for t in tables:
        for fk in t["foreign_keys"]:
            ref = by_name.get(fk["ref_table"].lower())
            if not fk["ref_columns"] and ref and len(ref["primary_key"]) == len(fk["columns"]):
                fk["ref_columns"] = list(ref["primary_key"])


def _inline_references_to_table_constraints(create: exp.Create) -> None:
    """MySQL parses `col INT REFERENCES t (id)` and then ignores it; FOREIGN KEY (...) works."""
    schema = create.this
    for coldef in [e for e in schema.expressions if isinstance(e, exp.ColumnDef)]:
        for cons in list(coldef.args.get("constraints") or []):
            ref = cons.args.get("kind")
            if isinstance(cons, exp.ColumnConstraint) and isinstance(ref, exp.Reference):
                cons.pop()
                schema.append("expressions", exp.ForeignKey(
                    expressions=[coldef.this.copy()], reference=ref.copy()))


def render(create: exp.Create, dialect: str | None = None) -> str:
    """sqlglot's pretty DDL, but column lists inside constraints stay on one line."""
    node = create.copy()
    if dialect == "mysql":
        _inline_references_to_table_constraints(node)
    for schema in list(node.find_all(exp.Schema)):
        if schema is not node.this and schema.parent is not None:
            schema.replace(exp.Var(this=schema.sql(dialect=dialect, comments=False)))
    return node.sql(dialect=dialect, pretty=True, comments=False,
                    unsupported_level=ErrorLevel.IGNORE)


def join_statements(statements: list[str]) -> str:
    return "".join(s + ";\n\n" for s in statements).rstrip("\n")


def parse_sql(text, dialect: str | None = None) -> tuple[Parsed, list[exp.Create]]:
    """Model or label text -> (Parsed, CREATE TABLE ASTs). Never raises."""
    try:
        return _parse_sql(text, dialect)
    except Exception as e:  # noqa: BLE001 - last line of defence: parse must never raise
        return Parsed(ok=False, data={"tables": [], "sql": "", "dialect": None},
                      errors=[_err(f"Could not parse the SQL ({type(e).__name__}: {e}).")],
                      compliance=0.0), []


def _parse_sql(text, dialect: str | None) -> tuple[Parsed, list[exp.Create]]:
    empty = {"tables": [], "sql": "", "dialect": None}
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if text is None:
        text = ""
    if not isinstance(text, str):
        text = str(text)
    if dialect is None:
        candidates = DIALECTS
    elif dialect_name(dialect):
        candidates = (dialect_name(dialect),)
    else:
        return Parsed(False, empty, [_err(f"Unknown SQL dialect '{dialect}'; use one of "
                                          f"{', '.join(DIALECTS)}.")], 0.0), []
    if len(text) > MAX_CHARS:
        return Parsed(False, empty, [_err(
            f"The SQL is too long to check ({len(text):,} characters; the limit is "
            f"{MAX_CHARS:,}). A UI schema is normally a few thousand characters.")], 0.0), []
    sql = extract_sql(text)
    if not sql.strip():
        return Parsed(False, empty, [_err("No SQL found: the answer is empty.")], 0.0), []

    best = None
    for name in candidates:
        unreadable, errors, tables = _attempt(sql, name)
        key = (unreadable, len(errors), -len(tables))
        if best is None or key < best[0]:
            best = (key, name, errors, tables)
        if not unreadable:
            break
    _, name, errors, found = best
    tables = [t for t, _ in found]
    _resolve_references(tables)
    asts = [c for _, c in found]
    data = {"tables": tables, "sql": join_statements([render(c) for c in asts]),
            "dialect": name}
    if not tables and not errors:
        errors = [_err("No CREATE TABLE statement found.")]
    errors.sort(key=lambda e: (e.line or 0, e.column or 0))
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        errors = errors[:MAX_ERRORS] + [_err(f"... and {more} more errors.")]
    return Parsed(ok=not errors, data=data, errors=errors,
                  compliance=1.0 if tables else 0.0), asts
