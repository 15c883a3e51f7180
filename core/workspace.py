"""Where user data lives: ./workspace by default, TRINITY_WORKSPACE or --workspace to change it."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ASSETS = REPO / "assets"


def root(override: str | os.PathLike | None = None) -> Path:
    p = Path(override or os.environ.get("TRINITY_WORKSPACE") or (Path.cwd() / "workspace"))
    p.mkdir(parents=True, exist_ok=True)
    return p.resolve()


def datasets_dir(ws: str | os.PathLike | None = None) -> Path:
    d = root(ws) / "datasets"
    d.mkdir(parents=True, exist_ok=True)
    return d


def runs_dir(ws: str | os.PathLike | None = None) -> Path:
    d = root(ws) / "runs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def models_dir(ws: str | os.PathLike | None = None) -> Path:
    """Locally built models (the offline demo model) are cached here."""
    d = root(ws) / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d
