"""Shared fixtures. Each test gets its own workspace folder so nothing leaks between tests."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv("TRINITY_WORKSPACE", str(ws))
    return ws


@pytest.fixture(scope="session")
def demo_model_path(tmp_path_factory):
    """The offline demo model, built once per test session (a few seconds) into a session tmp dir."""
    from core.demo_model import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("demo_model") / "demo", seed=0)
