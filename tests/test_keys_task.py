"""The keys task and the keyway catalog: hand-worked values, plus property tests for parse."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import StudioError
from core.tasks.keys.catalog import CATALOG_PATH, FIGURE_KEYS, all_keyways, find_keyway, get_keyway
from core.tasks import Task, get_task
from core.tasks.base import Parsed
from core.tasks.keys import TASK


def rec(keyway="SC1", bitting=(1, 2, 5, 3, 7), brand="Schlage", **extra):
    fields = {"keyway": keyway, "bitting": list(bitting) if bitting is not None else None,
              "brand": brand}
    return {"id": "r1", "image": "images/x.png", "fields": fields, "split": None,
            "status": "labeled", **extra}


def errors(issues):
    return [i for i in issues if i.severity == "error"]


def warnings(issues):
    return [i for i in issues if i.severity == "warning"]


# ---- catalog ---------------------------------------------------------------------------------
def test_catalog_has_required_keyways_with_ranges_and_figures():
    kws = all_keyways()
    for code in ("SC1", "SC4", "KW1", "KW10", "Y1", "M1", "GENERIC"):
        assert code in kws
    assert (kws["SC1"].brand, kws["SC1"].positions) == ("Schlage", 5)
    assert (kws["KW1"].brand, kws["KW1"].max_depth) == ("Kwikset", 7)
    assert kws["M1"].brand == "Master Lock" and kws["M1"].positions == 4
    assert kws["GENERIC"].positions is None
    for kw in kws.values():
        assert 1 <= kw.min_depth <= kw.max_depth <= 9
        assert set(kw.api_figures()) == set(FIGURE_KEYS)
    assert isinstance(kws["SC1"].api_figures()["estimatedAnnualProduction"], int)
    raw = json.loads(CATALOG_PATH.read_text())
    assert "illustrative" in raw["_figures"]["status"] and "not measurements" in raw["_figures"]["status"]


def test_get_keyway_is_case_insensitive_and_names_known_codes_when_unknown():
    assert get_keyway("sc1").code == "SC1"
    assert get_keyway(" kw-10 ").code == "KW10"
    assert find_keyway("ZZ9") is None
    with pytest.raises(StudioError) as e:
        get_keyway("ZZ9")
    assert "ZZ9" in e.value.message
    for code in ("SC1", "KW10", "M1", "GENERIC"):
        assert code in e.value.hint


# ---- registry and target ------------------------------------------------------------------------
def test_task_is_registered_and_follows_the_protocol():
    assert get_task("keys") is TASK
    assert isinstance(TASK, Task)
    names = {f.name: f for f in TASK.fields}
    assert names["bitting"].kind == "digits"
    assert names["keyway"].kind == "choice" and "SC1" in [value for _label, value in names["keyway"].choices]
    assert names["brand"].kind == "text"
    assert "KEYWAY:" in TASK.prompt(rec())


def test_target_is_the_seed_format_exactly():
    assert TASK.target(rec()) == "KEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage"


def test_target_fills_brand_from_catalog_and_refuses_without_bitting():
    assert TASK.target(rec(keyway="kw1", bitting=[1, 2, 3, 4, 5], brand="")) == \
        "KEYWAY: KW1\nBITTING: 1,2,3,4,5\nBRAND: Kwikset"
    with pytest.raises(StudioError):
        TASK.target(rec(bitting=None))


# ---- parse ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bitting_text", ["1,2,5,3,7", "1 2 5 3 7", "12537", "1-2-5-3-7",
                                          "[1, 2, 5, 3, 7]", "1, 2, 5, 3, 7 (bow to tip)"])
def test_parse_tolerates_separators(bitting_text):
    p = TASK.parse(f"KEYWAY: SC1\nBITTING: {bitting_text}\nBRAND: Schlage")
    assert p.ok, p.errors
    assert p.data == {"keyway": "SC1", "bitting": [1, 2, 5, 3, 7], "brand": "Schlage"}
    assert p.compliance == 1.0


def test_parse_tolerates_case_chatter_markdown_and_confidence():
    text = ("Sure! Here is what I see.\n\n**keyway:** sc1\n  bitting =  1 2 5 3 7 \n"
            "brand: schlage\nCONFIDENCE: 87%\nLet me know if you need more.")
    p = TASK.parse(text)
    assert p.ok, p.errors
    assert p.data == {"keyway": "SC1", "bitting": [1, 2, 5, 3, 7], "brand": "Schlage",
                      "confidence": 0.87}
    assert p.compliance == 1.0
    one_line = TASK.parse("keyway: KW1 bitting: 1,2,3,4,5 brand: Kwikset confidence: 0.5")
    assert one_line.data["bitting"] == [1, 2, 3, 4, 5] and one_line.data["confidence"] == 0.5


def test_compliance_counts_confidence_only_when_present():
    assert TASK.parse("KEYWAY: SC1\nBITTING: 1,2,5,3,7").compliance == pytest.approx(2 / 3)
    assert TASK.parse("KEYWAY: SC1\nBITTING: 1,2,5,3,7\nCONFIDENCE: 0.9").compliance == 0.75
    assert TASK.parse("BITTING: 12537").compliance == pytest.approx(1 / 3)
    assert TASK.parse("no idea, sorry").compliance == 0.0


def test_parse_reports_out_of_range_and_wrong_count_for_known_keyways():
    p = TASK.parse("KEYWAY: KW1\nBITTING: 1,2,8,3,7\nBRAND: Kwikset")
    assert not p.ok and p.data["bitting"] == [1, 2, 8, 3, 7]
    assert any("position 3 is 8" in e.message and "1-7" in e.message for e in p.errors)
    p = TASK.parse("KEYWAY: SC4\nBITTING: 1,2,5,3,7\nBRAND: Schlage")
    assert not p.ok and any("5 positions" in e.message and "6" in e.message for e in p.errors)
    p = TASK.parse("KEYWAY: SC1\nBITTING: 1,0,5,3,7\nBRAND: Schlage")
    assert not p.ok and any("position 2 is 0" in e.message for e in p.errors)
    p = TASK.parse("KEYWAY: SC1\nBITTING: 1,2,A,3,7\nBRAND: Schlage")
    assert not p.ok and any("'A'" in e.message for e in p.errors)
    # An unknown keyway is a warning only: digits 1-9 are all the parser can check.
    p = TASK.parse("KEYWAY: XYZ\nBITTING: 1,2,5\nBRAND: Acme")
    assert p.ok and p.data["keyway"] == "XYZ" and warnings(p.errors)


def test_parse_missing_lines_are_errors_with_partial_data():
    p = TASK.parse("BRAND: Yale")
    assert not p.ok and p.data == {"brand": "Yale"}
    assert {e.field for e in errors(p.errors)} == {"keyway", "bitting"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="KEYWAYBITINGRNDCOF:=,- 0123456789\n%.*_")))
def test_parse_never_raises(text):
    p = TASK.parse(text)
    assert isinstance(p, Parsed) and 0.0 <= p.compliance <= 1.0
    assert all(isinstance(d, int) for d in p.data.get("bitting", []))


def test_parse_never_raises_on_non_strings():
    for value in (None, 12537, b"KEYWAY: SC1"):
        assert isinstance(TASK.parse(value), Parsed)


@st.composite
def valid_records(draw):
    kw = all_keyways()[draw(st.sampled_from(sorted(all_keyways())))]
    n = draw(st.integers(kw.min_positions, kw.max_positions))
    bits = draw(st.lists(st.integers(kw.min_depth, kw.max_depth), min_size=n, max_size=n))
    return rec(keyway=kw.code, bitting=bits, brand=kw.brand)


@settings(max_examples=200, deadline=None)
@given(valid_records())
def test_target_parse_target_round_trip(record):
    text = TASK.target(record)
    p = TASK.parse(text)
    assert p.ok and p.compliance == 1.0
    assert TASK.fields_from_parsed(p) == record["fields"]
    assert TASK.target({"fields": TASK.fields_from_parsed(p)}) == text
    assert TASK.validate(record) == []
    assert TASK.score(p, record) == {"keyway_acc": 1.0, "brand_acc": 1.0, "bitting_exact": 1.0,
                                     "bitting_position_acc": 1.0, "format_compliance": 1.0}


# ---- validate ------------------------------------------------------------------------------------
def test_validate_accepts_a_good_label():
    assert TASK.validate(rec()) == []
    assert TASK.validate(rec(keyway="GENERIC", bitting=[9, 1, 4, 4, 2, 7, 3], brand="Acme")) == []


@pytest.mark.parametrize("bitting,needle", [
    ([1, 0, 5, 3, 7], "position 2 is 0"),
    ([1, 2, 10, 3, 7], "position 3 is 10"),
    ([1, 2, "A", 3, 7], "position 3 is 'A'"),
    ([1, 2, "5", 3, 7], "store depths as integers"),
    ([1, 2, 5, 3], "4 positions; SC1 keys have 5"),
    ([1, 2, 5, 3, 7, 1], "6 positions"),
])
def test_validate_bitting_errors_are_specific(bitting, needle):
    errs = errors(TASK.validate(rec(bitting=bitting)))
    assert any(needle in e.message for e in errs), [e.message for e in errs]


def test_validate_depth_range_brand_mismatch_and_missing_fields():
    errs = errors(TASK.validate(rec(keyway="KW1", bitting=[1, 2, 8, 3, 7], brand="Kwikset")))
    assert any("outside KW1's depth range 1-7" in e.message for e in errs)
    issues = TASK.validate(rec(keyway="SC1", brand="Kwikset"))
    assert not errors(issues) and any("Schlage" in w.message for w in warnings(issues))
    issues = TASK.validate({"fields": {}})
    assert {e.field for e in errors(issues)} == {"keyway", "bitting"}
    assert any(w.field == "brand" for w in warnings(issues))
    assert errors(TASK.validate(rec(bitting="12537")))  # a string is not a list of digits
    unknown = TASK.validate(rec(keyway="ZZ9", bitting=[1, 2, 3, 4, 5, 6, 7, 8]))
    assert not errors(unknown) and any(w.field == "keyway" for w in warnings(unknown))
    assert errors(TASK.validate(rec(keyway="GENERIC", bitting=[1, 2, 3], brand="x")))


# ---- score ---------------------------------------------------------------------------------------
def test_score_one_wrong_position():
    s = TASK.score(TASK.parse("KEYWAY: SC1\nBITTING: 1,2,5,3,6\nBRAND: Schlage"), rec())
    assert s == {"keyway_acc": 1.0, "brand_acc": 1.0, "bitting_exact": 0.0,
                 "bitting_position_acc": pytest.approx(0.8), "format_compliance": 1.0}


def test_score_length_mismatch_counts_missing_and_extra_positions_wrong():
    short = TASK.score(TASK.parse("KEYWAY: SC1\nBITTING: 1,2,5\nBRAND: Schlage"), rec())
    assert short["bitting_position_acc"] == pytest.approx(3 / 5) and short["bitting_exact"] == 0.0
    long = TASK.score(TASK.parse("KEYWAY: SC1\nBITTING: 1,2,5,3,7,4\nBRAND: Schlage"), rec())
    assert long["bitting_position_acc"] == pytest.approx(5 / 6) and long["bitting_exact"] == 0.0
    shifted = TASK.score(TASK.parse("BITTING: 2,5,3,7"), rec())
    assert shifted["bitting_position_acc"] == 0.0


def test_score_keyway_brand_and_compliance():
    s = TASK.score(TASK.parse("KEYWAY: KW1\nBITTING: 1,2,5,3,7"), rec())
    assert s["keyway_acc"] == 0.0 and s["brand_acc"] == 0.0 and s["bitting_exact"] == 1.0
    assert s["format_compliance"] == pytest.approx(2 / 3)
    # A label without brand is scored against the keyway's catalog brand.
    s = TASK.score(TASK.parse("KEYWAY: sc1\nBITTING: 12537\nBRAND: SCHLAGE"), rec(brand=""))
    assert s["keyway_acc"] == 1.0 and s["brand_acc"] == 1.0
    assert TASK.score(TASK.parse(""), rec())["bitting_position_acc"] == 0.0


def test_fields_from_parsed_and_is_labeled():
    p = TASK.parse("KEYWAY: Y1\nBITTING: 4 4 2 9 1\nBRAND: Yale\nCONFIDENCE: 0.6")
    assert TASK.fields_from_parsed(p) == {"keyway": "Y1", "bitting": [4, 4, 2, 9, 1], "brand": "Yale"}
    assert TASK.fields_from_parsed(TASK.parse("")) == {"keyway": "", "bitting": [], "brand": ""}
    assert TASK.is_labeled(rec())
    assert not TASK.is_labeled(rec(bitting=[]))
    assert not TASK.is_labeled(rec(keyway=""))
    assert not TASK.is_labeled({"id": "x"})


def test_rest_payload_is_the_seeds_contract_with_one_meaning_of_success(tmp_path):
    """Keylike's JSON: bitting a string, confidence 0-1, the catalog's figures marked as catalog-provided
    (with the catalog's own source when it gives one); success iff the answer parsed with no errors."""
    from core.tasks.keys.app_json import KeysAnalysis, app_json

    out = TASK.route.build(TASK.parse("KEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage"),
                           {"text": "KEYWAY: SC1 ...", "confidence": 1.3})
    assert (out["success"], out["keyway"], out["bitting"], out["brand"], out["confidence"], out["error"]) == \
        (True, "SC1", "1,2,5,3,7", "Schlage", 1.0, None)
    assert out["figuresProvidedBy"] == "catalog" and out["figuresSource"] is None  # shipped: illustrative
    assert out["estimatedAnnualProduction"] == get_keyway("SC1").api_figures()["estimatedAnnualProduction"]
    assert KeysAnalysis.model_validate(out).bitting == "1,2,5,3,7" and TASK.route.path == "/keys/analyze"
    bad = app_json(TASK.parse("KEYWAY: SC1\nBITTING: 1,2\nBRAND: Schlage"), {"text": "x"})
    assert bad["success"] is False and "SC1 keys have 5" in bad["error"] and bad["bitting"] is None
    odd = app_json(TASK.parse("KEYWAY: ZZ9\nBITTING: 1,2,3\nBRAND: Acme"), {})
    assert odd["success"] and odd["figuresProvidedBy"] is None and odd["estimatedAnnualProduction"] is None
    cat = json.loads(CATALOG_PATH.read_text())
    cat["_figures"]["source"] = "Locksmith survey 2025"
    cat["keyways"][1]["figures"]["source"] = "Vendor sheet"
    (tmp_path / "kw.json").write_text(json.dumps(cat))
    kws = all_keyways(tmp_path / "kw.json")
    assert kws["SC1"].source == "Locksmith survey 2025" and kws[cat["keyways"][1]["code"]].source == "Vendor sheet"


def test_ui2sql_payload_success_means_valid():
    from core.tasks import get_task

    task = get_task("ui2sql")
    ok = task.route.build(task.parse("CREATE TABLE a (id INT PRIMARY KEY);"), {"text": "CREATE TABLE a (id INT PRIMARY KEY);",
                                                                                "dialect": "sqlite"})
    assert ok["success"] and ok["valid"] and ok["error"] is None and ok["dialect"] == "sqlite" and ok["transpiled"]
    bad = task.route.build(task.parse("CREATE TABLE a (id INT,, b TEXT);"), {"text": "CREATE TABLE a (id INT,, b TEXT);"})
    assert bad["success"] is False and bad["valid"] is False and "',,'" in bad["error"]
    with pytest.raises(StudioError, match="Unknown SQL dialect 'oracle'"):
        task.route.check_params({"dialect": "oracle"})


def test_view_shows_the_parse_without_a_null_confidence():
    """Compare shows this view beside the answer's own confidence: it must not read "confidence": null."""
    from core.tasks import get_task

    task = get_task("keys")
    v = task.view(task.parse("KEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage"))
    assert v.json["success"] is True and v.json["keyway"] == "SC1" and v.json["bitting"] == "1,2,5,3,7"
    assert "confidence" not in v.json and "confidence" not in v.html
    assert v.summary == "SC1 · 1,2,5,3,7 · Schlage"
