"""The task docs agree with the code: ARCHITECTURE's protocol block lists exactly the members of the Task
Protocol in core/tasks/base.py, and docs/NEW_TASK.md documents every field kind's value type and points
at an example package that exists."""
from __future__ import annotations

import re
from pathlib import Path

from core.tasks.base import FIELD_KINDS, Task

ROOT = Path(__file__).resolve().parent.parent


def _protocol_members() -> set[str]:
    names = set(getattr(Task, "__annotations__", {}))
    names |= {n for n, v in vars(Task).items() if callable(v) and not n.startswith("_")}
    return names


def test_the_architecture_protocol_block_is_the_protocol():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = text[text.index("class Task(Protocol):"):]
    block = block[:block.index("```")]
    doc = set(re.findall(r"^\s+(\w+):", block, re.M)) | set(re.findall(r"def (\w+)\(", block))
    doc |= {n for line in block.splitlines() if line.strip().startswith("name:") for n in ("name", "title")}
    assert doc == _protocol_members(), (doc ^ _protocol_members())


def test_new_task_guide_covers_every_kind_and_its_example_exists():
    text = (ROOT / "docs" / "NEW_TASK.md").read_text(encoding="utf-8")
    table = text[text.index("| kind "):text.index("An empty value is")]
    assert {k for k in FIELD_KINDS if f"| `{k}`" in table} == set(FIELD_KINDS)
    pkg = ROOT / "tests" / "example_tasks" / "meter"
    for name in ("__init__.py", "task.py", "formats.py", "route.py", "render.py"):
        assert (pkg / name).is_file() and f"{name}" in text
    assert "tests/test_task_contract.py -k meter" in text
