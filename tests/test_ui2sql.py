"""ui2sql task: its surface, parsing (structure, strictness, chatter, dialects) and target."""
from __future__ import annotations

import json
import time

import pytest

from core.tasks import get_task
from core.tasks.ui2sql import DEFAULT_PROMPT, TASK, parse

SHOP = """CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(255) NOT NULL UNIQUE, name TEXT);
CREATE TABLE products (id INT PRIMARY KEY, title VARCHAR(200), price DECIMAL(10,2));
CREATE TABLE orders (id INT PRIMARY KEY, user_id INT REFERENCES users(id), created_at TIMESTAMP);
CREATE TABLE order_items (order_id INT REFERENCES orders(id),
  product_id INT REFERENCES products(id), qty INT, PRIMARY KEY (order_id, product_id));"""

SHOP_CANONICAL = """CREATE TABLE users (
  id INT PRIMARY KEY,
  email VARCHAR(255) NOT NULL UNIQUE,
  name TEXT
);

CREATE TABLE products (
  id INT PRIMARY KEY,
  title VARCHAR(200),
  price DECIMAL(10, 2)
);

CREATE TABLE orders (
  id INT PRIMARY KEY,
  user_id INT REFERENCES users (id),
  created_at TIMESTAMP
);

CREATE TABLE order_items (
  order_id INT REFERENCES orders (id),
  product_id INT REFERENCES products (id),
  qty INT,
  PRIMARY KEY (order_id, product_id)
);"""


def rec(sql, **extra):
    return {"id": "r1", "image": "images/x.png", "fields": {"sql": sql, **extra},
            "split": None, "status": "labeled", "updated": "2026-01-01T00:00:00Z"}


def messages(issues):
    return [i.message for i in issues]


# ------------------------------------------------------------------ task surface

def test_registered_with_fields_and_prompt():
    assert get_task("ui2sql") is TASK
    assert [(f.name, f.kind, f.required) for f in TASK.fields] == [
        ("sql", "sql", True), ("domain", "text", False), ("instruction", "text", False)]
    assert TASK.prompt(rec(SHOP)) == DEFAULT_PROMPT
    assert "CREATE TABLE" in DEFAULT_PROMPT
    assert TASK.prompt(rec(SHOP, instruction="  Draw the schema.  ")) == "Draw the schema."
    assert TASK.prompt(rec(SHOP, instruction="   ")) == DEFAULT_PROMPT


def test_is_labeled_and_fields_from_parsed():
    assert TASK.is_labeled(rec("CREATE TABLE a (id INT)"))
    assert not TASK.is_labeled(rec("   "))
    assert not TASK.is_labeled({"fields": {}})
    assert not TASK.is_labeled({"fields": {"sql": None}})
    parsed = parse("create table a (id int primary key) ;")
    assert TASK.fields_from_parsed(parsed) == {"sql": "CREATE TABLE a (\n  id INT PRIMARY KEY\n);"}
    assert TASK.fields_from_parsed(parse("hello")) == {"sql": ""}


# ------------------------------------------------------------------ parse: structure

def test_parse_extracts_columns_keys_and_defaults():
    p = parse("""CREATE TABLE accounts (
  id SERIAL PRIMARY KEY,
  email VARCHAR(120) NOT NULL UNIQUE,
  plan TEXT DEFAULT 'free',
  active BOOLEAN NULL,
  org_id INT REFERENCES orgs
);
CREATE TABLE orgs (code CHAR(3), region CHAR(2), PRIMARY KEY (code));
CREATE TABLE members (
  org_code CHAR(3), account_id INT, slug TEXT,
  CONSTRAINT pk_m PRIMARY KEY (org_code, account_id),
  CONSTRAINT fk_a FOREIGN KEY (account_id) REFERENCES accounts (id),
  UNIQUE (slug)
);""")
    assert p.ok and p.errors == [] and p.compliance == 1.0
    accounts, orgs, members = p.data["tables"]
    assert accounts == {
        "name": "accounts",
        "columns": [
            {"name": "id", "type": "SERIAL", "not_null": False, "unique": False, "default": None,
             "primary_key": True},
            {"name": "email", "type": "VARCHAR(120)", "not_null": True, "unique": True,
             "default": None, "primary_key": False},
            {"name": "plan", "type": "TEXT", "not_null": False, "unique": False,
             "default": "'free'", "primary_key": False},
            {"name": "active", "type": "BOOLEAN", "not_null": False, "unique": False,
             "default": None, "primary_key": False},
            {"name": "org_id", "type": "INT", "not_null": False, "unique": False,
             "default": None, "primary_key": False}],
        "primary_key": ["id"],
        # REFERENCES orgs without a column resolves to orgs' primary key
        "foreign_keys": [{"columns": ["org_id"], "ref_table": "orgs", "ref_columns": ["code"]}]}
    assert orgs["primary_key"] == ["code"] and orgs["columns"][0]["primary_key"] is True
    assert members["primary_key"] == ["org_code", "account_id"]
    assert members["foreign_keys"] == [
        {"columns": ["account_id"], "ref_table": "accounts", "ref_columns": ["id"]}]
    assert [c["unique"] for c in members["columns"]] == [False, False, True]
    json.dumps(p.to_dict())                       # JSON-serialisable for the UI / events


def test_parse_mysql_and_sqlite_flavours_fall_back_to_their_dialect():
    mysql = parse("CREATE TABLE `user` (`id` INT AUTO_INCREMENT, `name` VARCHAR(50),"
                  " PRIMARY KEY (`id`)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;")
    assert mysql.ok and mysql.data["dialect"] == "mysql"
    assert mysql.data["tables"][0]["name"] == "user"
    assert mysql.data["tables"][0]["primary_key"] == ["id"]
    sqlite = parse("CREATE TABLE notes (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)")
    assert sqlite.ok and [c["name"] for c in sqlite.data["tables"][0]["columns"]] == ["id", "body"]
    pg = parse("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, tags TEXT[], at TIMESTAMPTZ "
               "DEFAULT now())")
    assert pg.ok and pg.data["dialect"] in ("generic", "postgres")
    assert parse(mysql.data["sql"]).data["tables"] == mysql.data["tables"]


def test_mysql_index_lines_are_not_read_as_columns():
    sql = ("CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT, name VARCHAR(50), PRIMARY KEY (id), "
           "KEY idx_name (name), UNIQUE KEY uk (name)) ENGINE=InnoDB")
    p = parse(sql)
    assert p.ok and p.data["dialect"] == "mysql"
    assert [(c["name"], c["unique"]) for c in p.data["tables"][0]["columns"]] == [
        ("id", False), ("name", True)]
    target = TASK.target(rec(sql))
    assert TASK.target(rec(target)) == target


def test_keyword_column_names_stay_columns():
    p = parse("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT, date DATE, user TEXT)")
    assert p.ok and p.data["dialect"] == "generic"
    assert [c["name"] for c in p.data["tables"][0]["columns"]] == ["key", "value", "date", "user"]


def test_error_list_is_capped():
    p = parse("CREATE TABLE t (id INT,, x TEXT);\n" * 80)
    assert len(p.errors) == 51 and p.errors[-1].message == "... and 30 more errors."
    assert [e.line for e in p.errors[:3]] == [1, 2, 3]


def test_parse_explicit_dialect_and_unknown_dialect():
    assert parse("CREATE TABLE `a` (id INT PRIMARY KEY)", dialect="mysql").ok
    assert parse("CREATE TABLE a (id INT PRIMARY KEY)", dialect="PostgreSQL").data["dialect"] \
        == "postgres"
    bad = parse("CREATE TABLE a (id INT)", dialect="oracle")
    assert not bad.ok and "Unknown SQL dialect 'oracle'" in bad.errors[0].message


def test_parse_strips_fences_and_chatter_keeping_line_numbers():
    text = ("Sure! Here is the schema:\n\n```sql\nCREATE TABLE a (id INT PRIMARY KEY);\n"
            "CREATE TABLE b (id INT PRIMARY KEY, a_id INT REFERENCES a(id));\n```\n"
            "Each order (see above) belongs to a user.")
    p = parse(text)
    assert p.ok and [t["name"] for t in p.data["tables"]] == ["a", "b"]
    # two fenced blocks without ';' between them; chatter in between
    p2 = parse("```\nCREATE TABLE a (id INT PRIMARY KEY)\n```\nand then\n"
               "```sql\nCREATE TABLE b (id INT PRIMARY KEY)\n```")
    assert p2.ok and [t["name"] for t in p2.data["tables"]] == ["a", "b"]
    # chatter on the same line, no fences, trailing prose with a semicolon-free sentence
    p3 = parse("Sure! CREATE TABLE a (id INT PRIMARY KEY);\n\nThat is all.")
    assert p3.ok and p3.data["tables"][0]["name"] == "a"
    # an error inside a fence is reported at its line in the whole answer
    p4 = parse("Here:\n```sql\nCREATE TABLE a (\n  id INT,,\n  b TEXT\n);\n```")
    assert [(e.line, e.column) for e in p4.errors] == [(4, 10)]


def test_cut_off_answer_is_an_error_not_a_crash():
    p = parse("```sql\nCREATE TABLE a (id INT PRIMARY KEY,\n  name TEXT")
    assert not p.ok and p.compliance == 0.0 and p.data["tables"] == []
    assert p.errors[0].line == 3


# ------------------------------------------------------------------ parse: strictness

@pytest.mark.parametrize("sql, message, line, col", [
    ("CREATE TABLE t (id INT,, name TEXT)", "Empty item between two commas", 1, 24),
    ("CREATE TABLE t (, id INT)", "comma right after '('", 1, 17),
    ("CREATE TABLE t (id INT, )", "Trailing comma", 1, 23),
    ("CREATE TABLE t (id, name TEXT)", "Column 'id' in table 't' has no type", 1, 17),
    ("CREATE TABLE t (\n  id PRIMARY KEY,\n  n TEXT)", "Column 'id' in table 't' has no type",
     2, 3),
    ("SELECT 1", "Only CREATE TABLE statements are expected, found 'SELECT 1", 1, 1),
    ("CREATE TABLE a (id INT PRIMARY KEY);\nCREATE INDEX i ON a (id);",
     "found 'CREATE INDEX i", 2, 1),
    ("CREATE TABLE a (id INT PRIMARY KEY)\nCREATE TABLE b (id INT PRIMARY KEY)",
     "Missing ';' between two CREATE TABLE", 2, 1),
    ("CREATE TABLE c AS SELECT 1", "CREATE TABLE without a column list", 1, 1),
    ("CREATE TABLE t (id INT PRIMARY KEY, k INT PRIMARY KEY)", "more than one PRIMARY KEY", 1, 37),
    ("CREATE TABLE t (\n  id INT\n  name TEXT\n)", "Expecting )", 3, 3),
])
def test_strictness_errors_carry_line_and_column(sql, message, line, col):
    p = parse(sql)
    assert not p.ok
    hit = [e for e in p.errors if message in e.message]
    assert hit, [e.message for e in p.errors]
    assert (hit[0].line, hit[0].column) == (line, col)
    assert hit[0].severity == "error" and hit[0].field == "sql"


def test_lenient_parse_still_yields_tables_for_partial_credit():
    p = parse("CREATE TABLE t (id INT,, name TEXT); CREATE TABLE u (id INT PRIMARY KEY);")
    assert not p.ok and p.compliance == 1.0
    assert [t["name"] for t in p.data["tables"]] == ["t", "u"]
    assert [c["name"] for c in p.data["tables"][0]["columns"]] == ["id", "name"]


@pytest.mark.parametrize("junk", [None, "", "   \n ", b"\x89PNG\r\n\x1a\n\x00\x00\xff",
                                  "\x00\x01garbage ((( '", "(" * 5000 + ")" * 5000,
                                  "CREATE TABLE t (x INT DEFAULT " + "(" * 3000 + "1" + ")" * 3000
                                  + ")", "```", "```sql\n```", 12345, "😀 CREATE TABLE 😀"],
                         ids=["none", "empty", "blank", "png-bytes", "nul-and-quote", "parens",
                              "deep-default", "fence", "empty-fence", "int", "emoji"])
def test_parse_never_raises_on_junk(junk):
    p = parse(junk)
    assert not p.ok and p.errors and all(e.message for e in p.errors)
    assert all(e.message.isprintable() for e in p.errors)
    json.dumps(p.to_dict())


def test_one_megabyte_of_sql_is_refused_quickly_with_a_clear_error():
    big = "CREATE TABLE t (id INT PRIMARY KEY);\n" * 30000          # ~1.1 MB
    start = time.perf_counter()
    p = parse(big)
    assert time.perf_counter() - start < 1.0
    assert not p.ok and p.compliance == 0.0
    assert "too long" in p.errors[0].message and "100,000" in p.errors[0].message
    issues = TASK.validate(rec(big))
    assert issues and "too long" in issues[0].message


def test_non_ascii_identifiers():
    p = parse('CREATE TABLE "Bücher" (id INT PRIMARY KEY, 名前 TEXT, café_id INT REFERENCES '
              'cafés (id));\nCREATE TABLE cafés (id INT PRIMARY KEY);')
    assert p.ok
    assert [c["name"] for c in p.data["tables"][0]["columns"]] == ["id", "名前", "café_id"]
    assert p.data["tables"][0]["name"] == "Bücher"
    target = TASK.target(rec(p.data["sql"]))
    assert target == p.data["sql"] and '"Bücher"' in target
    assert TASK.validate(rec(target)) == []


# ------------------------------------------------------------------ target

def test_target_is_canonical_and_deterministic():
    assert TASK.target(rec(SHOP)) == SHOP_CANONICAL
    messy = ("-- the shop\ncreate table USERS (ID int primary key, email varchar(255) not null "
             "unique, name text);")
    assert TASK.target(rec(messy)) == (
        "CREATE TABLE USERS (\n  ID INT PRIMARY KEY,\n  email VARCHAR(255) NOT NULL UNIQUE,\n"
        "  name TEXT\n);")
    assert TASK.target(rec(TASK.target(rec(SHOP)))) == SHOP_CANONICAL


def test_target_of_mysql_label_is_generic_sql_that_round_trips():
    t = TASK.target(rec("CREATE TABLE `m` (a INT AUTO_INCREMENT, b INT, PRIMARY KEY (a)) "
                        "ENGINE=InnoDB;"))
    assert t == 'CREATE TABLE "m" (\n  a INT AUTO_INCREMENT,\n  b INT,\n  PRIMARY KEY (a)\n)\n' \
                "ENGINE=InnoDB;"
    assert TASK.target(rec(t)) == t


def test_target_keeps_an_unparsable_label_as_written():
    assert TASK.target(rec("  CREATE TABLE t (id INT,, x TEXT)  ")) == \
        "CREATE TABLE t (id INT,, x TEXT)"
    assert TASK.target(rec("")) == ""


def test_last_table_without_semicolon_is_not_dropped():
    """An annotator typing a second table must see its errors, never a silently shorter schema."""
    from core.tasks.ui2sql import parse

    good = parse("CREATE TABLE a (id INT PRIMARY KEY);\nCREATE TABLE b (id INT PRIMARY KEY)")
    assert good.ok and [t["name"] for t in good.data["tables"]] == ["a", "b"]
    bad = parse("CREATE TABLE a (id INT PRIMARY KEY);\nCREATE TABLE b (id INT,, x INT)")
    assert not bad.ok and (bad.errors[0].line, bad.errors[0].column) == (2, 24)
    chatter = parse("Here:\nCREATE TABLE a (id INT PRIMARY KEY);\n"
                    "CREATE TABLE b (id INT PRIMARY KEY, a_id INT REFERENCES a(id))\nHope this helps (really).")
    assert chatter.ok and len(chatter.data["tables"]) == 2


def test_invalid_sql_saves_as_an_unlabeled_draft(tmp_path):
    from PIL import Image

    from core.dataset import Dataset

    ds = Dataset.create(tmp_path / "ds", "ui2sql")
    rec, _ = ds.add_image(Image.new("RGB", (32, 32), (10, 200, 30)))
    draft = "CREATE TABLE a (\n  id INT,,\n  name TEXT\n)"
    saved = ds.set_fields(rec["id"], {"sql": draft})
    assert saved["status"] == "unlabeled" and ds.get(rec["id"])["fields"]["sql"] == draft
    fixed = ds.set_fields(rec["id"], {"sql": "CREATE TABLE a (id INT PRIMARY KEY, name TEXT)"})
    assert fixed["status"] == "labeled"


# ---- junk after the last statement, and sqlglot's structured errors (issues 15 and 20) ----------
@pytest.mark.parametrize("sql,stray", [("CREATE TABLE users (id INT);\n)\n)", ") )"),
                                       ("CREATE TABLE users (id INT);\n);", ")")])
def test_stray_brackets_after_the_last_statement_are_an_error_at_the_junk(sql, stray):
    from studio.annotate_logic import sql_check

    p = parse(sql)
    assert not p.ok and [(e.message, e.line, e.column) for e in p.errors] == \
        [(f"Stray '{stray}' outside any statement.", 2, 1)]
    assert not TASK.is_labeled({"fields": {"sql": sql}})
    html, _rows, _svg = sql_check(TASK, sql)
    assert "1 error" in html and "line 2, col 1" in html and "valid" not in html


def test_chatter_after_the_last_statement_is_still_ignored():
    p = parse("CREATE TABLE users (id INT PRIMARY KEY);\nHope this helps!\n```")
    assert p.ok and [t["name"] for t in p.data["tables"]] == ["users"]


def test_syntax_errors_come_from_sqlglots_structured_errors():
    """ParseError.errors' description/line/col/highlight: the token is named by its text, never its repr."""
    p = parse("CREATE TABLE t (a INT, FOREIGN KEY (a) REFERENCES)")
    assert [(e.message, e.line, e.column) for e in p.errors] == \
        [("SQL syntax error: Expected table name but got ')' near ')'.", 1, 50)]
    p = parse("CREATE TABLE t (id INT,\n  name TEXT")
    assert [(e.message, e.line, e.column) for e in p.errors] == [("SQL syntax error: Expecting ) near 'TEXT'.", 2, 8)]
