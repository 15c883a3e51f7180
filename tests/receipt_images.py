"""Generated receipt-like images of one template (a shop's header, line items, a total), and the
receipt JSON Schema with line items (`items: [{name, qty, price}]`), for the json task's tests."""
from __future__ import annotations

import random

RECEIPT_SCHEMA = {
    "type": "object", "title": "shop receipt",
    "properties": {
        "vendor": {"type": "string", "description": "the shop's name at the top"},
        "items": {"type": "array", "description": "one row per line item",
                  "items": {"type": "object",
                            "properties": {"name": {"type": "string"}, "qty": {"type": "integer", "minimum": 1},
                                           "price": {"type": "number", "minimum": 0}},
                            "required": ["name", "qty", "price"]}},
        "total": {"type": "number", "minimum": 0},
    },
    "required": ["vendor", "items", "total"],
}
GOODS = ["Coffee", "Tea", "Bagel", "Muffin", "Juice", "Toast", "Soup", "Salad", "Cookie", "Water"]


def receipt_fields(seed: int) -> dict:
    """The label of receipt `seed`: 2-4 line items of the one shop."""
    rng = random.Random(seed)
    items = [{"name": name, "qty": rng.randint(1, 3), "price": round(rng.randint(10, 60) / 10, 1)}
             for name in rng.sample(GOODS, rng.randint(2, 4))]
    return {"vendor": "Corner Cafe", "items": items,
            "total": round(sum(i["qty"] * i["price"] for i in items), 1)}


def receipt_image(seed: int, fields: dict | None = None):
    """Receipt `seed` drawn on the one template: header, a rule, one line per item, the total."""
    from PIL import Image, ImageDraw, ImageFont

    f = fields or receipt_fields(seed)
    im = Image.new("RGB", (240, 320), (250, 250, 246))
    d = ImageDraw.Draw(im)
    font = ImageFont.load_default()
    d.text((60, 16), f["vendor"].upper(), fill=(20, 20, 20), font=font)
    d.text((70, 32), "12 Main Street", fill=(90, 90, 90), font=font)
    d.line((16, 52, 224, 52), fill=(60, 60, 60), width=1)
    y = 64
    for item in f["items"]:
        d.text((20, y), f"{item['qty']} x {item['name']}", fill=(20, 20, 20), font=font)
        d.text((180, y), f"{item['price']:.2f}", fill=(20, 20, 20), font=font)
        y += 20
    d.line((16, 260, 224, 260), fill=(60, 60, 60), width=1)
    d.text((20, 272), "TOTAL", fill=(20, 20, 20), font=font)
    d.text((180, 272), f"{f['total']:.2f}", fill=(20, 20, 20), font=font)
    d.text((64, 298), "thank you!", fill=(120, 120, 120), font=font)
    return im
