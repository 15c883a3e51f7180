"""Field kinds: what an annotator edits, the value each kind stores, and the check of a value against
its kind (the Issue it reports). Re-exported by core/tasks/base.py; the value types are listed in its
module doc and in docs/NEW_TASK.md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

# What an annotator can edit; the studio has one editor per kind (value types: base.py's module doc).
FIELD_KINDS = ("sql", "choice", "digits", "text", "number", "boolean", "list")
# Structured kinds, made of sub-fields (Field.subfields, simple kinds): "object" holds one value per
# sub-field ({"name": ..., "city": ...}); "table" holds rows of them ([{"name", "qty", "price"}, ...]).
NESTED_KINDS = ("object", "table")
FIELD_KINDS = FIELD_KINDS + NESTED_KINDS
DIGITS = "0123456789"
MAX_DIGITS = 12                # positions a digits field may have (the editor's pickers)


@dataclass
class Issue:
    """A problem with a label or a model answer. severity: "error" | "warning"."""
    severity: str
    message: str
    field: str | None = None
    line: int | None = None
    column: int | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Field:
    """One thing the annotator edits; its value type per kind is in the module doc.

    kind: one of FIELD_KINDS. choices: the options of a "choice" (or of a list's items): values, or
    (label, value) pairs.
    minimum/maximum: bounds of a "number" (or a list's number items); integer: whole numbers only.
    item_kind: for kind "list", the kind of its items ("text", "number", "boolean", "choice").
    alphabet / min_length / max_length / as_string: a "digits" field's digit characters (default
    "0123456789"; with as_string False they must be 0-9, since each becomes an int), how many positions
    it has (default 1..MAX_DIGITS) and whether its value is a string ("004217") or a list of ints.
    subfields: for kinds "object" and "table", the fields of the object / of each row (simple kinds).
    """
    name: str
    kind: str
    label: str
    help: str = ""
    required: bool = True
    choices: list[str] | None = None
    minimum: float | None = None
    maximum: float | None = None
    item_kind: str | None = None
    integer: bool = False
    alphabet: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    as_string: bool = False
    subfields: list["Field"] | None = None

    def __post_init__(self):
        if self.kind not in FIELD_KINDS:
            raise ValueError(f"Field {self.name!r}: kind {self.kind!r} is not one of {', '.join(FIELD_KINDS)}.")
        if self.kind == "list" and self.item_kind not in (None, *FIELD_KINDS):
            raise ValueError(f"Field {self.name!r}: item_kind {self.item_kind!r} is not a field kind.")
        if self.kind == "digits":
            alphabet = self.digit_alphabet
            if not alphabet or len(set(alphabet)) != len(alphabet):
                raise ValueError(f"Field {self.name!r}: alphabet {alphabet!r} must list distinct characters.")
            if not self.as_string and not set(alphabet) <= set(DIGITS):
                raise ValueError(f"Field {self.name!r}: alphabet {alphabet!r} has characters other than 0-9; "
                                 "a list-of-ints digits field takes 0-9 only (use as_string=True).")
            lo, hi = self.length_range
            if not 1 <= lo <= hi <= MAX_DIGITS:
                raise ValueError(f"Field {self.name!r}: length {lo}..{hi} must lie within 1..{MAX_DIGITS}.")
        if self.kind in NESTED_KINDS:
            if not self.subfields or any(f.kind in (*NESTED_KINDS, "sql", "digits") for f in self.subfields):
                raise ValueError(f"Field {self.name!r}: a {self.kind} needs subfields of simple kinds "
                                 "(text, number, choice, boolean, list).")

    @property
    def digit_alphabet(self) -> str:
        """A digits field's characters: `alphabet`, else minimum..maximum (the older way), else 0-9."""
        if self.alphabet:
            return self.alphabet
        lo = int(self.minimum) if self.minimum is not None else 0
        hi = int(self.maximum) if self.maximum is not None else 9
        return "".join(str(d) for d in range(lo, hi + 1))

    @property
    def length_range(self) -> tuple[int, int]:
        return (self.min_length or 1, self.max_length or MAX_DIGITS)

    def alphabet_text(self) -> str:
        """The alphabet for people: "0-9" for a run of digits, "0, 2, 4" when it is not one."""
        a = self.digit_alphabet
        run = len(a) > 2 and all(ord(b) - ord(x) == 1 for x, b in zip(a, a[1:]))
        return f"{a[0]}-{a[-1]}" if run else ", ".join(a)

    def value_type(self) -> str:
        """What this field stores, in words (the module doc's table, for this field)."""
        if self.kind == "digits":
            lo, hi = self.length_range
            n = f"{lo}" if lo == hi else f"{lo}-{hi}"
            each = f"{n} digits from {self.alphabet_text()}"
            return f"str of {each}" if self.as_string else f"list of int, {each}"
        if self.kind == "number":
            rng = "" if self.minimum is None and self.maximum is None else \
                f" in {'' if self.minimum is None else self.minimum}..{'' if self.maximum is None else self.maximum}"
            return ("int" if self.integer else "float") + rng
        if self.kind == "list":
            return f"list of {self.item_kind or 'text'}"
        if self.kind in NESTED_KINDS:
            subs = ", ".join(f"{f.name}: {f.value_type()}" for f in self.subfields)
            return f"dict {{{subs}}}" if self.kind == "object" else f"list of dict rows {{{subs}}}"
        return {"sql": "str (SQL)", "choice": "one of the choices", "text": "str", "boolean": "bool"}[self.kind]

    def choice_values(self) -> list:
        return [c[1] if isinstance(c, (list, tuple)) else c for c in (self.choices or [])]

    def check(self, value) -> list["Issue"]:
        """The value against its kind (type, choices, range, alphabet, length); [] for an empty value,
        which `required` covers. BaseTask.validate runs it for every field."""
        if value in (None, "", []):
            return []
        bad = lambda text: [Issue("error", f"{self.label} {text}", self.name)]  # noqa: E731
        if self.kind == "digits":
            return self._check_digits(value, bad)
        if self.kind == "number":
            return self._check_number(value, bad)
        if self.kind == "boolean":
            return [] if isinstance(value, bool) else bad(f"is {value!r}, not true or false.")
        if self.kind == "choice":
            ok = value in self.choice_values() if self.choices else isinstance(value, str)
            return [] if ok else bad(f"is {value!r}, not one of the choices.")
        if self.kind == "object":
            return self._check_object(value, bad)
        if self.kind == "table":
            if not isinstance(value, list):
                return bad(f"is a {type(value).__name__}, not a list of rows.")
            return [i for n, row in enumerate(value, 1) for i in self._check_object(row, bad, f"row {n}: ")][:1]
        if self.kind == "list":
            if not isinstance(value, list):
                return bad(f"is a {type(value).__name__}, not a list.")
            item = Field(self.name, self.item_kind or "text", self.label, choices=self.choices,
                         minimum=self.minimum, maximum=self.maximum, integer=self.integer)
            return [i for v in value for i in item.check(v)][:1]
        return [] if isinstance(value, str) else bad(f"is a {type(value).__name__}, not text.")

    def _check_object(self, value, bad, where: str = "") -> list["Issue"]:
        """An object's (or a table row's) sub-values: each against its sub-field, empty when required."""
        if not isinstance(value, dict):
            return bad(f"{where}is a {type(value).__name__}, not an object of {', '.join(f.name for f in self.subfields)}.")
        for sub in self.subfields:
            v = value.get(sub.name)
            if sub.required and v in (None, "", []):
                return bad(f"{where}{sub.label} is empty.")
            if problems := sub.check(v):
                return bad(f"{where}{problems[0].message}")
        return []

    def _check_digits(self, value, bad) -> list["Issue"]:
        alphabet, (lo, hi) = self.digit_alphabet, self.length_range
        if self.as_string:
            if not isinstance(value, str):
                return bad(f"is a {type(value).__name__}; it is stored as a string of digits, e.g. \"0042\".")
            chars = list(value)
        else:
            if not isinstance(value, list) or any(isinstance(d, bool) or not isinstance(d, int) for d in value):
                return bad(f"is {value!r}; it is stored as a list of whole digits, e.g. [1, 2, 5].")
            chars = [str(d) for d in value]
        for i, c in enumerate(chars, 1):
            if c not in alphabet:
                return bad(f"position {i} is '{c}', not a digit {self.alphabet_text()}.")
        if not lo <= len(chars) <= hi:
            want = str(lo) if lo == hi else f"{lo}-{hi}"
            return bad(f"has {len(chars)} digits; it takes {want}.")
        return []

    def _check_number(self, value, bad) -> list["Issue"]:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return bad(f"is {value!r}, not a number.")
        if self.integer and not float(value).is_integer():
            return bad(f"is {value}, not a whole number.")
        if self.minimum is not None and value < self.minimum:
            return bad(f"is {value}, below the minimum {self.minimum}.")
        if self.maximum is not None and value > self.maximum:
            return bad(f"is {value}, above the maximum {self.maximum}.")
        return []

    def to_dict(self) -> dict:
        # `is not False`, not `not in (None, False)`: 0 == False would drop "minimum": 0
        out = {k: v for k, v in asdict(self).items()
               if k != "subfields" and (k == "required" or (v is not None and v is not False))}
        if self.subfields:
            out["subfields"] = [f.to_dict() for f in self.subfields]
        return out
