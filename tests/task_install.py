"""Installs an example task from tests/example_tasks/ the way docs/NEW_TASK.md says a task is installed:
its package copied to core/tasks/<name>/ (then every process started from the repository sees it: the
CLI, `python app.py`), and removed again afterwards, so it never stays installed after the tests."""
from __future__ import annotations

import contextlib
import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "tests" / "example_tasks"
TASKS_DIR = ROOT / "core" / "tasks"
MARK = ".installed-by-tests"   # a copy carrying this file is ours to remove, even one a killed run left


def _forget(name: str) -> None:
    import core.tasks as tasks

    for mod in [m for m in sys.modules if m == f"core.tasks.{name}" or m.startswith(f"core.tasks.{name}.")]:
        del sys.modules[mod]
    tasks.reload()


def _same(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b, ignore=[MARK, "__pycache__"])
    return not (cmp.left_only or cmp.right_only or cmp.diff_files) and all(
        _same(a / d, b / d) for d in cmp.common_dirs)


@contextlib.contextmanager
def installed(name: str):
    """`with installed("meter"):` the example task `name` is an installed task (core/tasks/<name>/)."""
    src, dest = EXAMPLES / name, TASKS_DIR / name
    if dest.exists():
        if not (dest / MARK).is_file():
            raise RuntimeError(f"{dest} exists and was not installed by the tests; refusing to touch it.")
        shutil.rmtree(dest)   # left behind by a run that was killed
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / MARK).write_text("Copied from tests/example_tasks by tests/task_install.py; removed after the test.\n")
    _forget(name)
    try:
        assert _same(src, dest)
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)
        _forget(name)
