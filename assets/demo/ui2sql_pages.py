"""Generated pages for the ui2sql demo dataset: one entity's list or form, drawn the way the demo
base's stage-4 pretraining pages are (assets/demo/pretrain_data.py: page_image, "v3" look), with
the one-table schema that such a page implies:

    CREATE TABLE invoices (
      id INTEGER PRIMARY KEY,
      total DECIMAL(10, 2),
      due DATE
    );

The table is named by the page's title, and its columns are the ones the page shows, each with
the type its label suggests. The demo base (96 px input) can read a 40 px title and 12 px column
labels but none of the text in the 1024 x 640 mock-up screenshots; these pages are what lets a
short fine-tune on it show a schema read off a screenshot. Each page is a pure function of its seed;
the seeds lie far from the pretraining ones, and tests/test_demo_base.py checks by pixel hash that
no page is a pretraining image.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import pretrain_data as pdata  # noqa: E402

SEED0 = 5 * 10**12
COUNT = 240  # 12 pages per entity; the split keeps about 24 of them for validation

# The SQL type each column label implies (the labels are pretrain_data's: the base has read them).
COLUMN_TYPES = {
    "Name": "VARCHAR(120) NOT NULL", "Email": "VARCHAR(255)", "Status": "VARCHAR(16)", "Date": "DATE",
    "Total": "DECIMAL(10, 2)", "Owner": "VARCHAR(120)", "Phone": "VARCHAR(32)", "City": "VARCHAR(80)",
    "Price": "DECIMAL(10, 2)", "Quantity": "INTEGER", "Title": "VARCHAR(200) NOT NULL", "Due": "DATE",
    "Created": "TIMESTAMP", "Priority": "SMALLINT", "Amount": "DECIMAL(12, 2)", "Type": "VARCHAR(32)",
    "Notes": "TEXT", "Code": "VARCHAR(16)", "Rating": "SMALLINT", "Country": "CHAR(2)",
}
assert set(COLUMN_TYPES) == set(pdata._COLUMNS)


def schema(page: str, columns: list[str]) -> str:
    lines = ["  id INTEGER PRIMARY KEY"] + [f"  {c.lower()} {COLUMN_TYPES[c]}" for c in columns]
    return f"CREATE TABLE {page.lower()} (\n" + ",\n".join(lines) + "\n);\n"


def page(i: int) -> dict:
    """{"name", "image" (PIL), "sql", "domain"} of generated page i."""
    rng = random.Random(SEED0 + i)
    entity = pdata._NOUNS[i % len(pdata._NOUNS)]  # entities go round: each is as common as the others
    app = rng.choice(pdata._APPS)
    menu = rng.sample([n for n in pdata._NOUNS if n != entity], 3)
    form = rng.random() < 0.4
    columns = rng.sample(pdata._COLUMNS, rng.randint(2, 3))
    buttons = rng.sample(pdata._BUTTONS, rng.randint(1, 2))
    image, _ = pdata.page_image(rng, app, entity, columns, form, menu, buttons, look="v3")
    return {"name": f"page_{i:03d}", "image": image, "sql": schema(entity, columns),
            "domain": f"generated {'form' if form else 'list'} page: {entity.lower()}"}


def pages(n: int = COUNT) -> list[dict]:
    return [page(i) for i in range(n)]
