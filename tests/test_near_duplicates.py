"""Issue 27 item 12: documents of one template are not near duplicates. Six different receipts of
one template (generated) give no "nearly identical" warning in a json dataset (the json task keeps
the default 32x32 hash, Task.near_duplicate), while a re-saved copy of one of them (smaller, JPEG)
still does."""
from __future__ import annotations

import io

from core.dataset import Dataset
from core.dataset_report import validate_dataset
from receipt_images import RECEIPT_SCHEMA, receipt_fields, receipt_image


def _png(im, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def test_receipts_of_one_template_are_not_near_duplicates(tmp_path):
    ds = Dataset.create(tmp_path / "receipts", "json", config={"schema": RECEIPT_SCHEMA})
    ids = [ds.add_image(_png(receipt_image(seed)), fields=receipt_fields(seed))[0]["id"] for seed in range(6)]
    report = validate_dataset(ds)
    assert report["by_code"].get("near_duplicate", 0) == 0, [i for i in report["issues"] if i["code"] == "near_duplicate"]
    assert report["errors"] == 0

    # a re-saved copy of receipt 0 (resized, JPEG) is what the warning is for
    first = receipt_image(0)
    copy = first.resize((200, 266))
    rid = ds.add_image(_png(copy, "JPEG", quality=70), fields=receipt_fields(0))[0]["id"]
    near = [i for i in validate_dataset(ds)["issues"] if i["code"] == "near_duplicate"]
    assert [(i["record"], i["duplicate_of"]) for i in near] == [(rid, ids[0])]
    assert "/1024" in near[0]["reason"]  # measured on a 32x32 hash
