"""The fixed text the offline demo model's SentencePiece tokenizer is trained on.

It covers what the studio's tasks make the model read and write: SQL DDL, the keys answer format
(`KEYWAY: SC1\\nBITTING: 1,2,5,3,7\\nBRAND: Schlage`) and plain English instructions. The corpus is
generated from a constant seed, never from the model seed, so every demo model shares one tokenizer.
Changing anything here changes the tokenizer: bump CORPUS_VERSION too.
"""
from __future__ import annotations

import random
import string

CORPUS_VERSION = 1

_INSTRUCTIONS = [
    "You are a careful assistant that reads images and answers in a fixed structure.",
    "Look at this screenshot of a user interface and write the SQL schema behind it.",
    "Write one CREATE TABLE statement per table, with primary keys and foreign keys.",
    "Read the key in this photo. Answer with its keyway, its bitting depths and its brand.",
    "Answer exactly in this format: KEYWAY, BITTING as comma separated digits, BRAND.",
    "Read this key. Give the keyway, the bitting (cut depths from the bow to the tip, one digit 1-9 "
    "per position) and the brand, in exactly this format:",
    "KEYWAY: <code>", "BITTING: <d,d,d,d,d>", "BRAND: <brand>",
    "Read the bars in this picture from left to right, one digit per bar, in exactly this format:",
    "Identify the keyway, read the cut depths from the bow to the tip, and name the brand.",
    "The bitting is a list of cut depths, one digit per position, from 1 to 9.",
    "If you are not sure, give your best guess and a confidence between 0 and 1.",
    "Describe the image briefly. What do you see? Count the bars and read their heights.",
    "The picture shows a row of bars. Read the height of each bar from left to right.",
    "Here is an image of a key blade on a plain background.",
    "Here is a screenshot of a web application: a shop, a dashboard, an admin panel or a blog.",
    "Return only the answer, without any explanation.",
    "This is a test. The answer is correct. The answer is wrong. Please try again.",
    "Thank you! Sure, here is the schema. Here is the reading of the key.",
    "user model system assistant image text question answer prompt completion",
]

_TABLES = {
    "users": ["id", "email", "name", "password_hash", "created_at", "is_active"],
    "customers": ["id", "first_name", "last_name", "email", "phone", "city", "country"],
    "products": ["id", "sku", "title", "description", "price", "stock", "category_id"],
    "categories": ["id", "name", "parent_id", "slug"],
    "orders": ["id", "customer_id", "status", "total", "placed_at", "shipped_at"],
    "order_items": ["id", "order_id", "product_id", "quantity", "unit_price"],
    "posts": ["id", "author_id", "title", "body", "published_at", "views"],
    "comments": ["id", "post_id", "user_id", "content", "created_at"],
    "tags": ["id", "label"],
    "bookings": ["id", "room_id", "guest_id", "check_in", "check_out", "amount"],
    "rooms": ["id", "hotel_id", "number", "capacity", "rate"],
    "invoices": ["id", "account_id", "issued_on", "due_on", "amount", "paid"],
    "accounts": ["id", "company", "owner_id", "plan", "updated_at"],
    "contacts": ["id", "account_id", "name", "email", "role"],
    "deals": ["id", "account_id", "stage", "value", "closed_at"],
    "events": ["id", "user_id", "kind", "payload", "occurred_at"],
    "metrics": ["id", "name", "value", "recorded_at"],
    "employees": ["id", "department_id", "manager_id", "salary", "hired_on"],
    "departments": ["id", "name", "budget"],
    "tickets": ["id", "reporter_id", "assignee_id", "priority", "state", "opened_at"],
}
_TYPES = ["INT", "INTEGER", "BIGINT", "SERIAL", "TEXT", "VARCHAR(255)", "VARCHAR(100)", "CHAR(2)",
          "BOOLEAN", "DATE", "TIMESTAMP", "DECIMAL(10, 2)", "NUMERIC(12, 2)", "FLOAT", "REAL", "JSON"]
_CONSTRAINTS = ["", "", " NOT NULL", " UNIQUE", " NOT NULL UNIQUE", " DEFAULT 0", " DEFAULT CURRENT_TIMESTAMP",
                " DEFAULT TRUE", " DEFAULT 'new'"]
_SQL_WORDS = ["PRIMARY KEY (id)", "FOREIGN KEY (customer_id) REFERENCES customers (id)",
              "ON DELETE CASCADE", "ON UPDATE CASCADE", "CHECK (price >= 0)", "CREATE INDEX idx_orders_status ON "
              "orders (status);", "ALTER TABLE orders ADD COLUMN note TEXT;", "DROP TABLE IF EXISTS tags;",
              "CREATE TABLE IF NOT EXISTS metrics (id SERIAL PRIMARY KEY);", "AUTO_INCREMENT AUTOINCREMENT"]

# keyway -> (brand, cut positions); the keys task's catalog is the authority, this only feeds words.
_KEYWAYS = {"SC1": ("Schlage", 5), "SC4": ("Schlage", 6), "KW1": ("Kwikset", 5), "KW10": ("Kwikset", 6),
            "Y1": ("Yale", 5), "M1": ("Master Lock", 4), "GENERIC": ("Generic", 5), "UNKNOWN": ("Unknown", 5)}


def _ddl(rng: random.Random, table: str, cols: list[str]) -> list[str]:
    lines = [f"CREATE TABLE {table} ("]
    for i, col in enumerate(cols):
        if col == "id":
            body = f"  {col} {rng.choice(['INT', 'INTEGER', 'SERIAL', 'BIGINT'])} PRIMARY KEY"
        elif col.endswith("_id"):
            ref = col[:-3] + "s"
            body = f"  {col} INT REFERENCES {ref} (id)" if rng.random() < 0.5 else f"  {col} INT NOT NULL"
        else:
            body = f"  {col} {rng.choice(_TYPES)}{rng.choice(_CONSTRAINTS)}"
        lines.append(body + ("," if i < len(cols) - 1 else ""))
    lines.append(");")
    return lines


def _key_answer(rng: random.Random, keyway: str) -> list[str]:
    brand, positions = _KEYWAYS[keyway]
    bitting = [rng.randint(1, 9) for _ in range(positions)]
    lines = [f"KEYWAY: {keyway}", f"BITTING: {','.join(map(str, bitting))}", f"BRAND: {brand}"]
    if rng.random() < 0.3:
        lines.append(f"CONFIDENCE: {rng.randint(50, 99) / 100:.2f}")
    return lines


def corpus_lines() -> list[str]:
    """Deterministic list of training lines (no newlines inside a line: SentencePiece is line-based)."""
    rng = random.Random(20261123)
    lines: list[str] = [string.printable.strip(), string.ascii_letters, string.digits]
    lines += _INSTRUCTIONS * 3
    lines += _SQL_WORDS * 2
    for _ in range(4):
        for table, cols in _TABLES.items():
            lines += _ddl(rng, table, cols)
            lines.append(f"CREATE TABLE {table} ({', '.join(c + ' ' + rng.choice(_TYPES) for c in cols)});")
    for _ in range(30):
        for keyway in _KEYWAYS:
            lines += _key_answer(rng, keyway)
            lines.append(f"This {_KEYWAYS[keyway][0]} key uses the {keyway} keyway.")
    for _ in range(40):  # bar-reading answers used by the demo pre-training
        lines.append("BARS: " + ",".join(str(rng.randint(1, 9)) for _ in range(rng.randint(3, 7))))
    return lines
