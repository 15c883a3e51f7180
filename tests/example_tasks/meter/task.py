"""meter: a photo of a utility meter -> kind, reading, unit.

The answer the model learns to write, three lines:

    KIND: gas
    READING: 004217
    UNIT: m3

The reading is a string of digits: its leading zeros are part of what the meter shows, and a 0 is a
digit like any other. Metrics: kind_acc, unit_acc, reading_exact (higher is better) and
reading_abs_error (|read - true| as numbers, lower is better, the median over the records whose answer
has a reading: an answer without one is left out there and counts as wrong in reading_exact).
"""
from __future__ import annotations

import re

from core.errors import StudioError
from core.tasks import BaseTask, Field, Issue, Metric, Parsed

from .formats import FORMATS
from .route import ROUTE

KINDS = {"electricity": "kWh", "gas": "m3", "water": "m3"}   # kind -> its usual unit
UNITS = ("kWh", "m3", "l")
_LINE = re.compile(r"^\s*(KIND|READING|UNIT)\s*[:=]\s*(.*?)\s*$", re.I | re.M)


class MeterTask(BaseTask):
    name = "meter"
    title = "Meter photo -> kind, reading, unit"
    max_new_tokens = 40
    system_prompt = "You read utility meters. Answer three lines: KIND, READING (every digit shown) and UNIT."
    fields = [
        Field("kind", "choice", "Kind", "What the meter measures.", choices=list(KINDS)),
        Field("reading", "digits", "Reading", "Every wheel from the left, leading zeros included.",
              alphabet="0123456789", min_length=4, max_length=8, as_string=True),
        Field("unit", "choice", "Unit", "Printed under the wheels.", choices=list(UNITS)),
    ]
    formats = FORMATS
    route = ROUTE
    headline_metric = "reading_abs_error"
    metrics = [Metric("reading_abs_error", better="lower", aggregate="median",
                      help="How far the reading is off, as numbers"),
               Metric("reading_exact", help="Every digit right, leading zeros included")]
    bands = {"reading_abs_error": (("excellent", 0), ("good", 10))}   # ceilings: lower is better

    def prompt(self, record: dict) -> str:
        return ("Read this utility meter. Answer in exactly this format:\n"
                "KIND: <electricity|gas|water>\nREADING: <every digit, leading zeros included>\nUNIT: <kWh|m3|l>")

    def target(self, record: dict) -> str:
        f = record.get("fields") or {}
        if not f.get("reading"):
            raise StudioError(f"Record {record.get('id', '?')} has no reading to train on.",
                              "Label the reading, or leave the record unlabeled.")
        return f"KIND: {f.get('kind', '')}\nREADING: {f['reading']}\nUNIT: {f.get('unit', '')}"

    def parse(self, text) -> Parsed:
        found = {k.lower(): v for k, v in reversed(_LINE.findall(text if isinstance(text, str) else ""))}
        data, errors = {}, []
        if "kind" in found:
            data["kind"] = found["kind"].lower()
        if "reading" in found:
            digits = re.sub(r"[\s,.]", "", found["reading"])
            if digits.isdigit():
                data["reading"] = digits
            else:
                errors.append(Issue("error", f"READING '{found['reading']}' is not a row of digits.", "reading"))
        if "unit" in found:
            data["unit"] = found["unit"]
        for line in ("KIND", "READING", "UNIT"):
            if line.lower() not in found:
                errors.append(Issue("error", f"The answer has no {line} line.", line.lower()))
        for name in ("kind", "unit"):  # a value outside the choices is an error of the answer
            field = next(f for f in self.fields if f.name == name)
            if name in data:
                errors += field.check(data[name])
        return Parsed(not errors, data, errors, sum(k in found for k in ("kind", "reading", "unit")) / 3)

    def validate(self, record: dict) -> list[Issue]:
        issues = super().validate(record)   # required, and each value against its field (choices, digits)
        f = record.get("fields") or {}
        usual = KINDS.get(f.get("kind"))
        if usual and f.get("unit") and f["unit"] != usual and not (usual == "m3" and f["unit"] == "l"):
            issues.append(Issue("warning", f"A {f['kind']} meter usually reads {usual}, not {f['unit']}.", "unit"))
        return issues

    def score(self, parsed: Parsed, record: dict) -> dict[str, float]:
        truth, pred = record.get("fields") or {}, parsed.data if parsed else {}
        out = {"kind_acc": float(pred.get("kind") == truth.get("kind")),
               "unit_acc": float(pred.get("unit") == truth.get("unit")),
               "reading_exact": float(bool(truth.get("reading")) and pred.get("reading") == truth.get("reading"))}
        if pred.get("reading") and truth.get("reading"):   # no reading, no error to measure: left out
            out["reading_abs_error"] = float(abs(int(pred["reading"]) - int(truth["reading"])))
        return out

    def prefill(self, changed: str, fields: dict) -> dict:
        """Picking the kind fills in its usual unit, unless the user chose another one already."""
        if changed == "kind" and fields.get("kind") in KINDS and fields.get("unit") in (None, "", *KINDS.values()):
            return {"unit": KINDS[fields["kind"]]}
        return {}

    def samples(self, n: int = 2) -> list[dict]:
        from .render import sample

        out = []
        for seed in range(n):
            image, fields = sample(seed)
            out.append({"id": f"sample-{seed}", "image_obj": image, "fields": fields})
        return out


TASK = MeterTask()
