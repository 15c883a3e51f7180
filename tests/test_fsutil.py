"""core.fsutil.atomic_dir: a folder is whole or absent, never half written."""
from __future__ import annotations

import pytest

from core.fsutil import atomic_dir


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_clean_exit_swaps_the_new_folder_over_the_old(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with atomic_dir(target) as work:
        assert work.parent == tmp_path and work != target and not any(work.iterdir())
        (work / "new.bin").write_text("new")
        assert (target / "old.bin").is_file()  # readers see the old folder until the end
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]
    assert _leftovers(tmp_path) == []


def test_an_error_leaves_the_old_folder_and_no_scratch(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.bin").write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(target) as work:
            (work / "half.bin").write_text("half")
            raise RuntimeError("boom")
    assert sorted(p.name for p in target.iterdir()) == ["old.bin"]
    assert _leftovers(tmp_path) == []


def test_an_error_on_a_first_build_leaves_nothing(tmp_path):
    target = tmp_path / "sub" / "model"
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target) as work:
            (work / "half.bin").write_text("half")
            raise KeyboardInterrupt
    assert list(target.parent.iterdir()) == []


def test_keep_existing_keeps_the_build_that_finished_first(tmp_path):
    target = tmp_path / "demo"
    with atomic_dir(target, keep_existing=True) as mine:
        (mine / "who").write_text("mine")
        with atomic_dir(target, keep_existing=True) as theirs:  # another process, done sooner
            (theirs / "who").write_text("theirs")
    assert (target / "who").read_text() == "theirs"
    assert _leftovers(tmp_path) == []


def test_a_named_build_folder_starts_empty(tmp_path):
    target, tmp = tmp_path / "adapter", tmp_path / ".adapter.tmp"
    tmp.mkdir()
    (tmp / "stale.bin").write_text("from a crashed save")
    with atomic_dir(target, tmp=tmp) as work:
        assert work == tmp and not any(work.iterdir())
        (work / "adapter_model.safetensors").write_text("w")
    assert sorted(p.name for p in target.iterdir()) == ["adapter_model.safetensors"]
    assert not tmp.exists()
