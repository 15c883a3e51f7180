"""Field kinds are generic: each stores its documented value type, digits take their alphabet and length from
the field (a 0 where the alphabet has one, a reading kept as the string "004217"), the save path reads the
field, and Field.to_dict keeps a 0 bound. Metrics say which way is better and how they combine, and
evaluate's bands, the summary text and Compare's scores read them."""
from __future__ import annotations

import pytest

from core.errors import StudioError
from core.evaluate import _means, compliance_band, format_summary, metric_info
from core.tasks import BaseTask, Field, Metric, metric_spec
from studio import annotate_logic as L
from studio.compare_logic import score_text

READING = Field("reading", "digits", "Reading", alphabet="0123456789", min_length=4, max_length=8, as_string=True)
DEPTHS = Field("bitting", "digits", "Bitting", alphabet="123456789")


class Meterish(BaseTask):
    name, title = "meterish", "a reading"
    fields = [READING, Field("count", "number", "Count", minimum=0, maximum=9, integer=True, required=False)]
    metrics = [Metric("abs_error", better="lower", aggregate="median"), Metric("exact")]
    bands = {"abs_error": (("excellent", 0), ("good", 10))}
    headline_metric = "abs_error"


def test_to_dict_keeps_a_zero_minimum():
    f = Field("reading", "number", "Reading", minimum=0, maximum=0.0)
    assert f.to_dict()["minimum"] == 0 and f.to_dict()["maximum"] == 0.0
    assert "integer" not in f.to_dict() and f.to_dict()["required"] is True


def test_digits_value_types_and_checks():
    assert READING.value_type() == "str of 4-8 digits from 0-9"
    assert DEPTHS.value_type() == "list of int, 1-12 digits from 1-9"
    assert READING.check("004217") == [] and DEPTHS.check([1, 2, 5]) == []
    assert "stored as a string of digits" in READING.check([0, 0, 4, 2])[0].message
    assert "not a digit 1-9" in DEPTHS.check([1, 0, 2])[0].message
    assert "has 3 digits; it takes 4-8" in READING.check("042")[0].message
    assert "not a digit 0-9" in READING.check("04x2")[0].message
    with pytest.raises(ValueError, match="other than 0-9"):
        Field("code", "digits", "Code", alphabet="0123456789AB")     # list-of-int digits are decimal
    assert Field("code", "digits", "Code", alphabet="0123456789AB", as_string=True).check("0A1B") == []
    with pytest.raises(ValueError, match="within 1..12"):
        Field("long", "digits", "Long", max_length=20)
    # the older way of giving a digit range still works: minimum..maximum
    assert Field("d", "digits", "D", minimum=2, maximum=5).digit_alphabet == "2345"


def test_base_validate_checks_each_value_against_its_kind():
    t = Meterish()
    assert [i.message for i in t.validate({"fields": {"reading": "004217"}})] == []
    msgs = [i.message for i in t.validate({"fields": {"reading": "0042", "count": 12}})]
    assert msgs == ["Count is 12, above the maximum 9."]
    assert t.validate({"fields": {}})[0].message == "Reading is empty."


def test_the_save_path_reads_the_field():
    """A reading with zeros saves as its string; a 0 is refused only where the alphabet lacks it."""
    assert L.digits_from_inputs(["0", "0", "4", "2", "1", "7", "", ""], READING) == "004217"
    assert L.digits_from_inputs(["1", "2", "5"], DEPTHS) == [1, 2, 5]
    with pytest.raises(StudioError, match="Bitting position 2 is '0', not a digit 1-9"):
        L.digits_from_inputs(["1", "0"], DEPTHS)
    with pytest.raises(StudioError, match="Reading position 2 is empty but a later one is filled"):
        L.digits_from_inputs(["1", "", "3"], READING)
    t = Meterish()
    assert L.fields_from_editor(t, {"reading": list("004217"), "count": 3.0}) == {"reading": "004217", "count": 3}
    assert L.digits_to_inputs("004217") == list("004217") and L.digits_to_inputs([1, 2]) == ["1", "2"]
    setup = L.digit_setup(t, "reading", {})  # BaseTask.editor_setup: the field's own alphabet and length
    assert setup == {"positions": 8, "min_positions": 4, "digits": list("0123456789")}


def test_metrics_declare_direction_and_aggregation():
    t = Meterish()
    assert metric_spec(t, "abs_error").better == "lower" and metric_spec(t, "undeclared").better == "higher"
    with pytest.raises(ValueError):
        Metric("x", better="up")
    # median per key, a record without the key is skipped
    rows = [{"scores": {"abs_error": 0.0, "exact": 1.0}, "confidence": 0.5},
            {"scores": {"abs_error": 30.0, "exact": 0.0}, "confidence": 0.5},
            {"scores": {"abs_error": 4.0, "exact": 0.0}, "confidence": 0.5},
            {"scores": {"exact": 0.0}, "confidence": 0.5},
            {"id": "x", "error": "image failed"}]
    metrics, _ = _means(rows, None, t)
    assert metrics == {"abs_error": 4.0, "exact": 0.25}
    # bands of a lower-better metric are ceilings
    assert [compliance_band(v, t.bands["abs_error"], False) for v in (0, 4, 10, 11)] == \
        ["excellent", "good", "good", "needs work"]
    assert compliance_band(0.95, (("excellent", 0.9),)) == "excellent"   # higher-better: floors, as before
    summary = {"run": "r", "dataset": "d", "split": "val", "n": 4, "metrics": metrics, "confidence": 0.5,
               "metric_info": metric_info(t, ["abs_error", "exact"]),
               "abs_error": {"value": 4.0, "band": "good", "bands": {"excellent": 0, "good": 10}}}
    text = format_summary(summary)
    assert "abs_error" in text and "(lower is better, median)" in text
    assert "abs error: 4.000 (good; excellent <= 0, good <= 10)" in text
    assert next(x for x in text.splitlines() if x.startswith("exact")).endswith("0.250")
    assert score_text(t, "abs_error", 2.0) == "abs error 2.00 (lower is better)"
    assert score_text(t, "exact", 1.0) == "exact 1.00"
