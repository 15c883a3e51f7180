"""keys: a photo of a key -> keyway, bitting (cut depths, bow to tip, digits 1-9) and brand.

The answer format is the seed document's, exactly:

    KEYWAY: SC1
    BITTING: 1,2,5,3,7
    BRAND: Schlage

`parse` reads model text tolerantly: any case, ":" or "=", chatter around the lines, several
fields on one line, and bitting written "1,2,5,3,7", "1 2 5 3 7", "12537" or "1-2-5-3-7".

Format compliance: the seed defines it as the share of the fields KEYWAY, BITTING, BRAND and
CONFIDENCE present in the answer. Our trained target has no CONFIDENCE line (the studio computes
confidence from the model's token probabilities instead), so compliance here is the share of
KEYWAY/BITTING/BRAND present, with CONFIDENCE counted as a fourth field only when the text has a
CONFIDENCE line. A field is present when its label is followed by a non-empty value.
"""
from __future__ import annotations

import re

from core.errors import StudioError
from core.tasks.keys.catalog import (GENERIC, Keyway, all_keyways, find_keyway, normalize_brand,
                          normalize_code)
from core.tasks.base import BaseTask, Field, Issue, Parsed, View
from core.tasks.keys.app_json import ROUTE, app_json

LABELS = ("KEYWAY", "BITTING", "BRAND", "CONFIDENCE")
DEPTHS = "123456789"   # the depth digits of the bitting scale (0 is not a cut depth)
# A label, then ":" or "=" (or a spaced dash). Markdown bold/bullets around it are tolerated.
_LABEL_RE = re.compile(r"\b(KEYWAY|BITTING|BRAND|CONFIDENCE)\b[*_\s]*(?::|=|\s-\s)[*_\s]*",
                       re.IGNORECASE)
_SEP_RE = re.compile(r"[\s,;/|\-_.]+")
_NUM_RE = re.compile(r"^\d+$")


def _raw_fields(text: str) -> dict[str, str]:
    """Label -> value text (first occurrence wins); a value ends at the line end or next label."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        hits = list(_LABEL_RE.finditer(line))
        for i, m in enumerate(hits):
            end = hits[i + 1].start() if i + 1 < len(hits) else len(line)
            label = m.group(1).upper()
            value = line[m.end():end].strip().strip("*_`\"'").strip()
            if label not in found and value:
                found[label] = value
    return found


def _parse_bitting(value: str) -> tuple[list[int], list[Issue]]:
    """'1,2,5,3,7' / '1 2 5 3 7' / '12537' / '[1, 2, 5]' -> ints. Trailing words are chatter;
    a non-number *between* numbers ('1,2,A,3') is an error, not silently dropped."""
    tokens = [t for t in _SEP_RE.split(value.strip("[](){}<> ")) if t]
    numeric = [i for i, t in enumerate(tokens) if _NUM_RE.match(t)]
    if not numeric:
        return [], [Issue("error", f"BITTING '{value}' has no depth digits.", "bitting")]
    last = numeric[-1]
    issues: list[Issue] = []
    bad = [t for t in tokens[numeric[0]:last + 1] if not _NUM_RE.match(t)]
    for t in bad:
        issues.append(Issue("error", f"BITTING contains '{t}', which is not a depth digit 1-9.",
                            "bitting"))
    nums = [tokens[i] for i in numeric]
    if len(nums) == 1 and len(nums[0]) > 1:
        digits = [int(c) for c in nums[0]]          # "12537": one digit per position
    else:
        digits = [int(t) for t in nums]
    return digits, issues


def _parse_confidence(value: str) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?)\s*(%?)", value)
    if not m:
        return None
    v = float(m.group(1))
    if m.group(2) or v > 1.0:
        v /= 100.0
    return v if 0.0 <= v <= 1.0 else None


def bitting_issues(bitting, keyway: Keyway | None, where: str = "") -> list[Issue]:
    """Digit type and range (1-9), then count and depth range of a known keyway."""
    issues: list[Issue] = []
    if not isinstance(bitting, list) or not bitting:
        kind = "empty" if isinstance(bitting, list) else f"a {type(bitting).__name__}"
        return [Issue("error", f"{where}bitting is {kind}; it must be a list of depth digits 1-9 "
                      "(e.g. [1, 2, 5, 3, 7]).", "bitting")]
    for i, d in enumerate(bitting, 1):
        if isinstance(d, bool) or not isinstance(d, int):
            issues.append(Issue("error", f"{where}bitting position {i} is {d!r}, not a digit 1-9 "
                                "(store depths as integers).", "bitting"))
        elif d == 0:
            issues.append(Issue("error", f"{where}bitting position {i} is 0; depth digits are 1-9 "
                                "(0 is not a cut depth on this scale).", "bitting"))
        elif d < 0 or d > 9:
            issues.append(Issue("error", f"{where}bitting position {i} is {d}; a depth is one "
                                "digit 1-9.", "bitting"))
        elif keyway and not (keyway.min_depth <= d <= keyway.max_depth):
            issues.append(Issue("error", f"{where}bitting position {i} is {d}, outside "
                                f"{keyway.code}'s depth range {keyway.min_depth}-"
                                f"{keyway.max_depth}.", "bitting"))
    if keyway and not (keyway.min_positions <= len(bitting) <= keyway.max_positions):
        want = (str(keyway.positions) if keyway.positions is not None
                else f"{keyway.min_positions}-{keyway.max_positions}")
        issues.append(Issue("error", f"{where}bitting has {len(bitting)} positions; {keyway.code} "
                            f"keys have {want}.", "bitting"))
    return issues


class KeysTask(BaseTask):
    name = "keys"
    title = "Key photo -> keyway, bitting, brand"
    max_new_tokens = 150  # the seed's cap: three short lines
    system_prompt = ("You are a locksmith's assistant. From the key photo, answer exactly three lines: "
                     "KEYWAY, BITTING (depth digits, comma-separated) and BRAND.")
    headline_metric = "bitting_exact"
    # The keys seed's format-compliance bands (share of answers carrying every expected field).
    bands = {"format_compliance": (("excellent", 0.90), ("good", 0.75))}
    route = ROUTE
    # Key photos are one blade on a plain background: an 8x8 hash within 4 bits is a re-saved copy
    # (the demo's renders are drawn to stay further apart; assets/demo/build_keys.py).
    near_duplicate = (8, 4)

    @property
    def formats(self):
        from core.tasks.keys.formats import FORMATS

        return FORMATS

    @property
    def fields(self) -> list[Field]:
        choices = []
        for code, kw in all_keyways().items():
            cuts = kw.positions if kw.positions is not None else f"{kw.min_positions}-{kw.max_positions}"
            choices.append((f"{code} · {kw.brand} · {cuts} cuts", code))
        return [
            Field("keyway", "choice", "Keyway", "Sets the number of cuts and the allowed depths. Keyway code "
                  f"from the catalog; {GENERIC} when the key is not in it.", True, choices),
            Field("bitting", "digits", "Bitting", "Cut depths from the bow to the tip, one digit "
                  "1-9 per position (1 = shallowest), e.g. 1,2,5,3,7.", True, alphabet=DEPTHS),
            Field("brand", "text", "Brand", "Prefilled from the keyway's catalog entry. Left empty, "
                  "the keyway's catalog brand is used.", False),
        ]

    def prompt(self, record: dict) -> str:
        return ("Read this key. Give the keyway, the bitting (cut depths from the bow to the tip, "
                "one digit 1-9 per position) and the brand, in exactly this format:\n"
                "KEYWAY: <code>\nBITTING: <d,d,d,d,d>\nBRAND: <brand>")

    def target(self, record: dict) -> str:
        f = record.get("fields") or {}
        bitting = f.get("bitting")
        if not isinstance(bitting, list) or not bitting:
            raise StudioError(f"Record {record.get('id', '?')} has no bitting to train on.",
                              "Label the bitting (e.g. 1,2,5,3,7) or leave the record unlabeled.")
        code = normalize_code(f.get("keyway")) or "UNKNOWN"
        kw = find_keyway(code)
        brand = str(f.get("brand") or "").strip() or (kw.brand if kw else "Unknown")
        return (f"KEYWAY: {code}\nBITTING: {','.join(str(d) for d in bitting)}\n"
                f"BRAND: {brand}")

    def parse(self, text) -> Parsed:
        if not isinstance(text, str):
            text = "" if text is None else str(text)
        raw = _raw_fields(text)
        data: dict = {}
        issues: list[Issue] = []
        kw = None
        if "KEYWAY" in raw:
            tokens = [normalize_code(t) for t in raw["KEYWAY"].split()]
            tokens = [t for t in tokens if t]
            known = [t for t in tokens if find_keyway(t)]
            data["keyway"] = known[0] if known else (tokens[0] if tokens else "")
            kw = find_keyway(data["keyway"])
            if kw is None:  # an empty KEYWAY line reads as what it is, not as "Keyway '' …"
                issues.append(Issue("warning", f"Keyway '{data['keyway']}' is not in the catalog." if data["keyway"]
                                    else "The KEYWAY line names no keyway.", "keyway"))
        if "BITTING" in raw:
            digits, errs = _parse_bitting(raw["BITTING"])
            data["bitting"] = digits
            issues += errs
            if digits:
                issues += bitting_issues(digits, kw)
        if "BRAND" in raw:
            data["brand"] = _canonical_brand(raw["BRAND"])
        if "CONFIDENCE" in raw:
            conf = _parse_confidence(raw["CONFIDENCE"])
            if conf is None:
                issues.append(Issue("warning", f"CONFIDENCE '{raw['CONFIDENCE']}' is not a number "
                                    "in 0-1 or a percentage.", "confidence"))
            else:
                data["confidence"] = conf
        for label in ("KEYWAY", "BITTING", "BRAND"):
            if label not in raw:
                issues.append(Issue("error", f"The answer has no {label} line.", label.lower()))
        expected = 4 if "CONFIDENCE" in raw else 3
        present = sum(1 for label in LABELS if label in raw)
        ok = not any(i.severity == "error" for i in issues)
        return Parsed(ok=ok, data=data, errors=issues, compliance=present / expected)

    def validate(self, record: dict) -> list[Issue]:
        f = record.get("fields") or {}
        issues: list[Issue] = []
        code = normalize_code(f.get("keyway"))
        kw = find_keyway(code) if code else None
        if not code:
            issues.append(Issue("error", "No keyway; pick one from the catalog "
                                f"({GENERIC} for an unknown key).", "keyway"))
        elif kw is None:
            issues.append(Issue("warning", f"Keyway '{f.get('keyway')}' is not in the catalog; its "
                                "cut count and depths are not checked.", "keyway"))
        if f.get("bitting") in (None, "", []):
            issues.append(Issue("error", "No bitting; enter one depth digit 1-9 per cut.",
                                "bitting"))
        else:
            issues += bitting_issues(f.get("bitting"), kw)
        brand = str(f.get("brand") or "").strip()
        if not brand:
            issues.append(Issue("warning", "No brand; the keyway's catalog brand will be used.",
                                "brand"))
        elif kw and kw.code != GENERIC and normalize_brand(brand) != normalize_brand(kw.brand):
            issues.append(Issue("warning", f"Brand '{brand}' differs from {kw.code}'s catalog brand "
                                f"'{kw.brand}'.", "brand"))
        return issues

    def score(self, parsed: Parsed, record: dict) -> dict[str, float]:
        """Prediction vs label. bitting_position_acc compares index by index over the longer of
        the two lists, so a missing or extra position counts as wrong."""
        truth = record.get("fields") or {}
        pred = parsed.data if parsed else {}
        t_code, p_code = normalize_code(truth.get("keyway")), normalize_code(pred.get("keyway"))
        t_brand = normalize_brand(truth.get("brand") or _catalog_brand(t_code))
        p_brand = normalize_brand(pred.get("brand"))
        t_bits = truth.get("bitting") if isinstance(truth.get("bitting"), list) else []
        p_bits = pred.get("bitting") if isinstance(pred.get("bitting"), list) else []
        n = max(len(t_bits), len(p_bits))
        same = sum(1 for a, b in zip(t_bits, p_bits) if a == b)
        return {
            "keyway_acc": float(bool(t_code) and t_code == p_code),
            "brand_acc": float(bool(t_brand) and t_brand == p_brand),
            "bitting_exact": float(bool(t_bits) and list(t_bits) == list(p_bits)),
            "bitting_position_acc": same / n if n else 0.0,
            "format_compliance": float(parsed.compliance) if parsed else 0.0,
        }

    def fields_from_parsed(self, parsed: Parsed) -> dict:
        d = parsed.data if parsed else {}
        return {"keyway": d.get("keyway", ""), "bitting": list(d.get("bitting", [])),
                "brand": d.get("brand", "")}

    def view(self, parsed: Parsed) -> View:
        """The phone app's JSON (the REST route's payload) and a one-line verdict. The view knows the
        parse only; the confidence is the model's (the route and the Structured block carry it), so
        it is left out rather than shown as null."""
        import html
        import json

        data = app_json(parsed, {})
        data.pop("raw", None)
        data.pop("confidence", None)
        if data["success"]:
            summary = f"{data['keyway']} · {data['bitting']}" + (f" · {data['brand']}" if data["brand"] else "")
        else:
            summary = f"{sum(e.severity == 'error' for e in parsed.errors)} error(s)"
        body = html.escape(json.dumps(data, indent=2, ensure_ascii=False))
        return View(html=f"<pre class='task-view'>{body}</pre>", json=data, summary=summary)

    def samples(self, n: int = 2) -> list[dict]:
        """Synthetic key photos (the renderer), labelled."""
        from core.tasks.keys.render import sample

        out = []
        for seed in range(n):
            image, fields = sample(seed)
            out.append({"id": f"sample-{seed}", "image_obj": image, "fields": fields})
        return out

    def editor_setup(self, fields: dict) -> dict:
        """The keyway-aware digit editor: the keyway sets how many cut positions the bitting has and
        which depth digits each takes."""
        kw = find_keyway(fields.get("keyway")) if fields.get("keyway") else None
        if kw is None:
            return {"bitting": {"positions": 0, "min_positions": 0, "digits": list(DEPTHS)}}
        return {"bitting": {"positions": kw.max_positions, "min_positions": kw.min_positions,
                            "digits": [str(d) for d in range(kw.min_depth, kw.max_depth + 1)]}}

    def prefill(self, changed: str, fields: dict) -> dict:
        """Picking a keyway prefills its catalog brand, unless the user typed a brand of their own."""
        if changed != "keyway":
            return {}
        kw = find_keyway(fields.get("keyway")) if fields.get("keyway") else None
        cur = str(fields.get("brand") or "").strip()
        if not cur or cur in {k.brand for k in all_keyways().values()}:
            return {"brand": kw.brand if kw else cur}
        return {}

    def is_labeled(self, record: dict) -> bool:
        f = record.get("fields") or {}
        bits = f.get("bitting")
        return bool(normalize_code(f.get("keyway"))) and isinstance(bits, list) and bool(bits)


def _catalog_brand(code: str) -> str:
    kw = find_keyway(code) if code else None
    return kw.brand if kw else ""


def _canonical_brand(value: str) -> str:
    """'schlage' -> 'Schlage' when it names a catalog brand; otherwise the text as written."""
    value = value.strip().rstrip(".,;")
    norm = normalize_brand(value)
    catalog = list(dict.fromkeys(kw.brand for kw in all_keyways().values()))
    for brand in catalog:
        if normalize_brand(brand) == norm:
            return brand
    # "Schlage (looks worn)": a catalog brand followed by chatter.
    first = normalize_brand(value.split("(")[0].split(",")[0])
    for brand in catalog:
        if normalize_brand(brand) == first:
            return brand
    return value


TASK = KeysTask()
