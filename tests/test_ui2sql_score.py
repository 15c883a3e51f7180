"""ui2sql task: validation of labels, hand-worked scores, the schema diff and transpiling."""
from __future__ import annotations

import pytest
import sqlglot

from core.errors import StudioError
from core.tasks.ui2sql import TASK, parse, schema_diff, transpile, type_family
from tests.test_ui2sql import SHOP, SHOP_CANONICAL, messages, rec


# ------------------------------------------------------------------ validate

def test_validate_clean_schema_has_no_issues():
    assert TASK.validate(rec(SHOP)) == []


@pytest.mark.parametrize("sql, severity, expected", [
    ("", "error", "The SQL schema is empty."),
    ("-- nothing here\n", "error", "No CREATE TABLE statement found."),
    ("CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE A (x INT PRIMARY KEY);", "error",
     "Table 'A' is defined twice."),
    ("CREATE TABLE a (id INT PRIMARY KEY, Id TEXT);", "error",
     "Column 'Id' appears twice in table 'a'."),
    ("CREATE TABLE a (id INT PRIMARY KEY, b_id INT REFERENCES b (id));", "error",
     "Foreign key a(b_id) references a missing table 'b'."),
    ("CREATE TABLE b (id INT PRIMARY KEY); CREATE TABLE a (id INT PRIMARY KEY, "
     "b_id INT REFERENCES b (uid));", "error", "Foreign key a(b_id) references a missing column "
     "'b.uid'."),
    ("CREATE TABLE b (id INT PRIMARY KEY); CREATE TABLE a (id INT PRIMARY KEY, "
     "FOREIGN KEY (bid) REFERENCES b (id));", "error",
     "Foreign key a(bid) uses a missing column 'bid'."),
    ("CREATE TABLE a (id INT, PRIMARY KEY (uid));", "error",
     "PRIMARY KEY of 'a' names a missing column 'uid'."),
    ("CREATE TABLE log (msg TEXT);", "warning", "Table 'log' has no primary key."),
    ("CREATE TABLE tag (name TEXT); CREATE TABLE post (id INT PRIMARY KEY, "
     "tag TEXT REFERENCES tag);", "error", "Foreign key post(tag) references 'tag' without naming "
     "a column, and that table's primary key does not match."),
    ("CREATE TABLE a (id INT PRIMARY KEY); CREATE TABLE b (id INT PRIMARY KEY, x INT, y INT, "
     "FOREIGN KEY (x, y) REFERENCES a (id));", "error",
     "Foreign key b(x, y) has 2 column(s) but references 1."),
])
def test_validate_finds_each_problem(sql, severity, expected):
    issues = TASK.validate(rec(sql))
    hit = [i for i in issues if expected in i.message]
    assert hit, messages(issues)
    assert hit[0].severity == severity and hit[0].field == "sql"


def test_validate_reports_syntax_errors_with_position():
    issues = TASK.validate(rec("CREATE TABLE a (\n  id INT PRIMARY KEY,\n  name TEXT\n"))
    assert issues[0].severity == "error" and "Expecting )" in issues[0].message
    assert issues[0].line == 3


def test_no_primary_key_is_only_a_warning():
    issues = TASK.validate(rec("CREATE TABLE log (msg TEXT NOT NULL);"))
    assert [i.severity for i in issues] == ["warning"]


# ------------------------------------------------------------------ score (hand-worked)

def test_prediction_missing_one_of_four_tables():
    pred = parse(SHOP.split("CREATE TABLE order_items")[0])
    s = TASK.score(pred, rec(SHOP))
    # tables: P = 3/3, R = 3/4 -> F1 = 2*0.75/1.75 = 0.857
    assert s["table_f1"] == pytest.approx(0.857, abs=1e-3)
    # columns: 9 predicted, all right, of 12 -> 2*9/(9+12) = 0.857
    assert s["column_f1"] == pytest.approx(18 / 21)
    # pk pairs: 3 of the label's 5 (order_items has two) -> 2*3/(3+5) = 0.75
    assert s["pk_f1"] == pytest.approx(0.75)
    # fks: 1 of 3 -> 2*1/(1+3) = 0.5
    assert s["fk_f1"] == pytest.approx(0.5)
    assert s["type_accuracy"] == 1.0 and s["parses"] == 1.0 and s["exact"] == 0.0


def test_score_types_by_family_and_names_case_and_quote_insensitive():
    pred = parse("""```sql
CREATE TABLE "Users" (ID BIGINT PRIMARY KEY, email TEXT, name VARCHAR(50));
CREATE TABLE products (id INTEGER PRIMARY KEY, title VARCHAR, price FLOAT);
CREATE TABLE orders (id SERIAL PRIMARY KEY, user_id INT REFERENCES users, created_at DATE,
  extra INT);
```""")
    s = TASK.score(pred, rec(SHOP))
    assert s["table_f1"] == pytest.approx(6 / 7)
    # 10 predicted columns, 9 right, 12 in the label -> 2*9/(10+12)
    assert s["column_f1"] == pytest.approx(18 / 22)
    # 9 matched: price FLOAT vs DECIMAL and created_at DATE vs TIMESTAMP differ -> 7/9
    assert s["type_accuracy"] == pytest.approx(7 / 9)
    assert s["pk_f1"] == pytest.approx(0.75)
    assert s["fk_f1"] == pytest.approx(0.5)      # REFERENCES users resolves to users(id)


def test_exact_for_same_schema_written_differently():
    other = """```sql
create table `order_items` (order_id integer, product_id integer, qty int,
  primary key (order_id, product_id),
  foreign key (order_id) references orders (id), foreign key (product_id) references products);
create table ORDERS (id int primary key, user_id int references users (id), created_at datetime);
create table products (id int primary key, title text, price numeric);
create table users (id integer primary key, email varchar(80), name varchar(20));
```"""
    s = TASK.score(parse(other), rec(SHOP))
    assert s == {"table_f1": 1.0, "column_f1": 1.0, "type_accuracy": 1.0, "pk_f1": 1.0,
                 "fk_f1": 1.0, "parses": 1.0, "exact": 1.0}


def test_unparsable_prediction_scores_zero():
    s = TASK.score(parse("I cannot see the image."), rec(SHOP))
    assert s == {"table_f1": 0.0, "column_f1": 0.0, "type_accuracy": 0.0, "pk_f1": 0.0,
                 "fk_f1": 0.0, "parses": 0.0, "exact": 0.0}


def test_partially_broken_prediction_gets_partial_credit_but_no_parse():
    s = TASK.score(parse("CREATE TABLE users (id INT PRIMARY KEY,, email TEXT, name TEXT);"),
                   rec(SHOP))
    assert s["parses"] == 0.0 and s["exact"] == 0.0
    assert s["table_f1"] == pytest.approx(2 * 1 * 0.25 / 1.25)    # 1 of 4 tables = 0.4


@pytest.mark.parametrize("a, b, same", [
    ("INT", "INTEGER", True), ("VARCHAR(255)", "VARCHAR", True), ("VARCHAR(10)", "TEXT", True),
    ("BIGSERIAL", "BIGINT", True), ("TIMESTAMP", "DATETIME", True), ("BOOL", "BOOLEAN", True),
    ("NUMERIC(8,2)", "DECIMAL", True), ("DOUBLE PRECISION", "REAL", True),
    ("JSONB", "JSON", True), ("DECIMAL(10,2)", "FLOAT", False), ("DATE", "TIMESTAMP", False),
    ("BOOLEAN", "INT", False), ("UUID", "TEXT", False), ("", "INT", False),
])
def test_type_families(a, b, same):
    assert (type_family(a) == type_family(b)) is same


# ------------------------------------------------------------------ schema_diff

def test_schema_diff_lists_every_difference():
    pred = ('CREATE TABLE users (id INT PRIMARY KEY, email TEXT, nick TEXT);\n'
            'CREATE TABLE orders (id INT, user_id INT, created_at DATE);\n'
            'CREATE TABLE coupons (code TEXT PRIMARY KEY);')
    d = schema_diff(pred, SHOP)
    assert d == {
        "missing_tables": ["order_items", "products"],
        "extra_tables": ["coupons"],
        "missing_columns": ["users.name"],
        "extra_columns": ["users.nick"],
        "type_mismatches": [{"column": "orders.created_at", "predicted": "DATE",
                             "expected": "TIMESTAMP"}],
        "constraint_mismatches": [
            {"column": "orders.id", "attribute": "not_null", "predicted": False, "expected": True},
            {"column": "orders.id", "attribute": "unique", "predicted": False, "expected": True},
            {"column": "users.email", "attribute": "not_null", "predicted": False,
             "expected": True},
            {"column": "users.email", "attribute": "unique", "predicted": False, "expected": True}],
        "missing_primary_key": ["order_items.order_id", "order_items.product_id", "orders.id",
                                "products.id"],
        "extra_primary_key": ["coupons.code"],
        "missing_foreign_keys": ["order_items(order_id) -> orders(id)",
                                 "order_items(product_id) -> products(id)",
                                 "orders(user_id) -> users(id)"],
        "extra_foreign_keys": [],
        "identical": False}
    assert schema_diff(parse(SHOP), parse(SHOP_CANONICAL))["identical"] is True


# ------------------------------------------------------------------ transpile

def test_transpile_to_each_dialect_parses_back_to_the_same_schema():
    source = parse(SHOP)
    for dialect in ("postgres", "mysql", "sqlite", "generic"):
        out = transpile(source, dialect)
        back = parse(out, dialect=dialect)
        assert back.ok, (dialect, back.errors)
        diff = schema_diff(back, SHOP)
        if dialect == "sqlite":   # sqlglot writes DECIMAL as REAL for SQLite (no decimal type)
            assert diff["type_mismatches"] == [{"column": "products.price",
                                                "predicted": "DOUBLE(10, 2)",
                                                "expected": "DECIMAL(10, 2)"}]
            diff["type_mismatches"], diff["identical"] = [], True
        assert diff["identical"] and not any(v for k, v in diff.items() if k != "identical"), \
            (dialect, diff)
        for stmt in sqlglot.parse(out, read=None if dialect == "generic" else dialect):
            assert isinstance(stmt, sqlglot.exp.Create)
    assert transpile(SHOP, "generic") == SHOP_CANONICAL


def test_transpile_dialect_specifics():
    sql = ("CREATE TABLE a (id SERIAL PRIMARY KEY, tags TEXT[], at TIMESTAMPTZ);\n"
           "CREATE TABLE b (id INT PRIMARY KEY, a_id INT NOT NULL REFERENCES a (id) "
           "ON DELETE CASCADE);")
    pg = transpile(sql, "postgres")
    assert "tags TEXT[]" in pg and "at TIMESTAMPTZ" in pg
    my = transpile(sql, "mysql")
    # MySQL ignores inline REFERENCES, so the key becomes a table constraint
    assert "a_id INT NOT NULL,\n  FOREIGN KEY (a_id) REFERENCES a (id) ON DELETE CASCADE" in my
    lite = transpile("CREATE TABLE a (id INT PRIMARY KEY, n VARCHAR(5))", "sqlite")
    assert lite == "CREATE TABLE a (\n  id INTEGER PRIMARY KEY,\n  n TEXT(5)\n);"


def test_transpile_errors_are_studio_errors():
    with pytest.raises(StudioError, match="Unknown SQL dialect 'oracle'"):
        transpile(SHOP, "oracle")
    with pytest.raises(StudioError, match="no schema to convert") as info:
        transpile("this is not sql", "postgres")
    assert info.value.hint.startswith("Fix the SQL first")
