"""The keyway catalog (assets/keyways.json): brand, cut positions and depth range per keyway.

The keys task checks labels and answers against it, the synthetic renderer draws from it, and the
REST API copies its four catalog figures (illustrative values, not measurements) into the phone
app's JSON. Depth digits are on the studio's 1-9 scale; positions count from the bow to the tip.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from core.errors import StudioError
from core.workspace import ASSETS

CATALOG_PATH = ASSETS / "keyways.json"
FIGURE_KEYS = ("estimatedAnnualProduction", "manufacturingComplexity", "marketPenetration",
               "timeInMarket")
GENERIC = "GENERIC"


@dataclass(frozen=True)
class Keyway:
    code: str
    brand: str
    min_positions: int
    max_positions: int
    min_depth: int
    max_depth: int
    description: str = ""
    figures: dict = field(default_factory=dict, compare=False, hash=False)
    source: str | None = None    # where the four figures come from; None: illustrative catalog values

    @property
    def positions(self) -> int | None:
        """The fixed number of cuts, or None when the entry allows a range (the generic one)."""
        return self.min_positions if self.min_positions == self.max_positions else None

    def api_figures(self) -> dict:
        """The four catalog figures the phone app's JSON carries (None where the catalog has none)."""
        return {k: self.figures.get(k) for k in FIGURE_KEYS}

    def to_dict(self) -> dict:
        return {"code": self.code, "brand": self.brand, "positions": self.positions,
                "min_positions": self.min_positions, "max_positions": self.max_positions,
                "min_depth": self.min_depth, "max_depth": self.max_depth,
                "description": self.description, **self.api_figures()}


def normalize_code(code) -> str:
    """'sc-1', ' Sc1 ' -> 'SC1': keyway codes compare without case, spaces or dashes."""
    return re.sub(r"[^A-Za-z0-9]", "", str(code or "")).upper()


def normalize_brand(brand) -> str:
    """'master lock', 'MasterLock' -> 'masterlock': brands compare without case and spacing."""
    return re.sub(r"[^a-z0-9]", "", str(brand or "").lower())


def _source(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _entry(raw: dict, path: Path, default_source: str | None = None) -> Keyway:
    where = f"{path}: keyway {raw.get('code', '?')!r}"
    try:
        pos = raw["positions"]
        lo, hi = (pos, pos) if isinstance(pos, int) else (int(pos[0]), int(pos[1]))
        kw = Keyway(code=normalize_code(raw["code"]), brand=str(raw["brand"]),
                    min_positions=lo, max_positions=hi,
                    min_depth=int(raw["min_depth"]), max_depth=int(raw["max_depth"]),
                    description=str(raw.get("description", "")),
                    figures=dict(raw.get("figures") or {}),
                    source=_source((raw.get("figures") or {}).get("source")) or default_source)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise StudioError(f"{where} is malformed ({e}).",
                          "Each entry needs code, brand, positions, min_depth and max_depth.")
    if not (1 <= kw.min_depth <= kw.max_depth <= 9):
        raise StudioError(f"{where}: depth range {kw.min_depth}-{kw.max_depth} is not within 1-9.",
                          "Depth digits are 1-9; fix min_depth/max_depth.")
    if not (1 <= kw.min_positions <= kw.max_positions <= 12):
        raise StudioError(f"{where}: positions {kw.min_positions}-{kw.max_positions} out of range.",
                          "Use a cut count between 1 and 12.")
    return kw


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Keyway]:
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise StudioError(f"Cannot read the keyway catalog {p}: {e}.",
                          "Restore assets/keyways.json from the repository.")
    out: dict[str, Keyway] = {}
    # A catalog may name where its figures come from, for all entries ("_figures": {"source": ...})
    # or per entry ("figures": {"source": ...}); without one they are illustrative.
    default_source = _source((raw.get("_figures") or {}).get("source")) if isinstance(raw.get("_figures"), dict) else None
    for item in raw.get("keyways", []):
        kw = _entry(item, p, default_source)
        if kw.code in out:
            raise StudioError(f"{p}: keyway {kw.code} is listed twice.", "Keep one entry per code.")
        out[kw.code] = kw
    if not out:
        raise StudioError(f"{p} lists no keyways.", "Restore assets/keyways.json.")
    return out


def all_keyways(path: str | Path = CATALOG_PATH) -> dict[str, Keyway]:
    """Code -> Keyway, in catalog order. Returns a copy; the catalog itself is cached."""
    return dict(_load(str(path)))


def find_keyway(code, path: str | Path = CATALOG_PATH) -> Keyway | None:
    """The catalog entry for code (case-insensitive), or None. For code that must not raise."""
    return _load(str(path)).get(normalize_code(code))


def get_keyway(code, path: str | Path = CATALOG_PATH) -> Keyway:
    kw = find_keyway(code, path)
    if kw is None:
        known = ", ".join(_load(str(path)))
        raise StudioError(f"Unknown keyway '{code}'.",
                          f"Known keyways: {known}. Use {GENERIC} for a key not in the catalog.")
    return kw


def brands(path: str | Path = CATALOG_PATH) -> list[str]:
    """Catalog brands, each once, in catalog order."""
    return list(dict.fromkeys(kw.brand for kw in _load(str(path)).values()))
