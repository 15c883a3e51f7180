"""Task registry. A task is a module in this package exposing `TASK`; adding one is adding a file."""
from __future__ import annotations

import importlib
import pkgutil

from core.errors import StudioError
from core.tasks.base import Field, Issue, Parsed, Task

__all__ = ["Field", "Issue", "Parsed", "Task", "get_task", "all_tasks"]

_REGISTRY: dict[str, Task] | None = None


def all_tasks() -> dict[str, Task]:
    global _REGISTRY
    if _REGISTRY is None:
        found: dict[str, Task] = {}
        for mod in pkgutil.iter_modules(__path__):
            if mod.name == "base" or mod.name.startswith("_"):
                continue
            m = importlib.import_module(f"{__name__}.{mod.name}")
            task = getattr(m, "TASK", None)
            if task is not None:
                found[task.name] = task
        _REGISTRY = found
    return _REGISTRY


def get_task(name: str) -> Task:
    tasks = all_tasks()
    if name not in tasks:
        raise StudioError(f"Unknown task '{name}'.", f"Known tasks: {', '.join(sorted(tasks))}.")
    return tasks[name]
