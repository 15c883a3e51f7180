"""Issue 27 item 7: GGUF verification is offered ticked only when its checker (llama-cpp-python) is
installed; without it the box is unticked and greyed, and how to install it is said once: in the
note before the export, then in the verdict after it (the Export tab clears the note)."""
from __future__ import annotations

import pytest

from core import export_gguf
from core.export import not_verified, verdict
from studio.tabs.export import gguf_controls

MISSING = "llama-cpp-python is not importable (ModuleNotFoundError: No module named 'llama_cpp')"


@pytest.fixture
def checker(monkeypatch):
    def set_(installed: bool):
        monkeypatch.setattr(export_gguf, "llama_cpp_available", lambda: None if installed else MISSING)
    return set_


def _summary(ver):
    return {"format": "gguf", "gguf": {"file": "r1-f16.gguf"}, "mmproj": {"file": "mmproj-r1-f16.gguf"},
            "verification": ver}


def test_without_the_checker_verification_is_off_and_said_once(checker):
    checker(False)
    c = gguf_controls("gguf")
    assert (c["visible"], c["verify"], c["verify_interactive"]) == (True, False, False)
    assert c["note"].count(export_gguf.INSTALL_HINT) == 1 and "verification is off" in c["note"]
    text = verdict(_summary(not_verified()))["text"]
    assert text.count(export_gguf.INSTALL_HINT) == 1 and "not importable" in text
    assert "Export again with verification on" not in text  # that cannot help without the checker


def test_with_the_checker_verification_is_ticked(checker):
    checker(True)
    c = gguf_controls("gguf")
    assert (c["visible"], c["verify"], c["verify_interactive"]) == (True, True, True)
    assert "installed" in c["note"] and export_gguf.INSTALL_HINT not in c["note"]
    text = verdict(_summary(not_verified()))["text"]  # the user unticked it
    assert "verification was turned off" in text and "Export again with verification on" in text


def test_other_formats_hide_the_gguf_controls(checker):
    checker(False)
    assert gguf_controls("merged") == {"visible": False, "verify": False, "verify_interactive": False, "note": ""}
