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


# ---------------------------------------------------------------- modes (issue 27: a save made records.jsonl 600)
def test_a_rewrite_keeps_the_files_mode(tmp_path):
    import os
    import stat

    from core.fsutil import atomic_write_text

    target = tmp_path / "records.jsonl"
    target.write_text("{}\n")
    for mode in (0o644, 0o664, 0o600):
        os.chmod(target, mode)
        atomic_write_text(target, "{\"a\": 1}\n")
        assert stat.S_IMODE(target.stat().st_mode) == mode
        assert target.read_text() == "{\"a\": 1}\n"


def test_a_new_file_and_folder_get_the_umask_default(tmp_path):
    import os
    import stat

    from core.fsutil import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.json", "{}")
        with atomic_dir(tmp_path / "model") as work:
            (work / "w.bin").write_text("w")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644  # not mkstemp's 600
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755     # not mkdtemp's 700
