"""Task registry. A task is a module or package in this package exposing `TASK`; adding one is adding
a file, removing one removes only that task.

Tasks outside the tree: name their modules in TRINITY_TASKS (comma-separated import paths, each
exposing TASK) or call `register(task)`. A task module that fails to import is skipped with a warning
(the studio keeps starting); a dataset of that task then says so when opened.
"""
from __future__ import annotations

import importlib
import logging
import os
import pkgutil

from core.errors import StudioError
from core.tasks.base import (FIELD_KINDS, BaseTask, Field, Format, Issue, Metric, Parsed, Route, Task,
                             View, metric_spec)

__all__ = ["Field", "Issue", "Parsed", "Task", "BaseTask", "View", "Route", "Format", "Metric", "FIELD_KINDS",
           "metric_spec",
           "get_task", "all_tasks", "task_for_dataset", "register", "load_errors", "reload",
           "api_payload", "api_model"]


def api_payload(task, parsed, meta=None) -> dict:
    """The REST payload of a parsed answer: task.route.build, or the generic one (core/tasks/_payload.py)."""
    from core.tasks._payload import api_payload as build

    return build(task, parsed, meta)


def api_model(task) -> type:
    """The pydantic response model of api_payload for this task (OpenAPI)."""
    from core.tasks._payload import api_model as model

    return model(task)

log = logging.getLogger(__name__)
_REGISTRY: dict[str, Task] | None = None
_EXTRA: dict[str, Task] = {}
_ERRORS: dict[str, str] = {}   # module -> why it did not load


def _load_module(path: str, found: dict[str, Task]) -> None:
    try:
        m = importlib.import_module(path)
    except Exception as e:  # noqa: BLE001 - one broken task must not take the studio down
        _ERRORS[path] = f"{type(e).__name__}: {e}"
        log.warning("Task module %s did not load (%s); its datasets cannot be opened.", path, _ERRORS[path])
        return
    task = getattr(m, "TASK", None)
    if task is not None and getattr(task, "name", None):
        found[task.name] = task


def all_tasks() -> dict[str, Task]:
    """Name -> Task, for every installed task (in name order)."""
    global _REGISTRY
    if _REGISTRY is None:
        found: dict[str, Task] = {}
        _ERRORS.clear()
        for mod in pkgutil.iter_modules(__path__):
            if mod.name == "base" or mod.name.startswith("_"):
                continue
            _load_module(f"{__name__}.{mod.name}", found)
        for path in filter(None, (p.strip() for p in os.environ.get("TRINITY_TASKS", "").split(","))):
            _load_module(path, found)
        found.update(_EXTRA)
        _REGISTRY = dict(sorted(found.items()))
    return dict(_REGISTRY)


def register(task: Task) -> Task:
    """Adds (or replaces) a task at run time, e.g. from a module outside core/tasks/."""
    global _REGISTRY
    _EXTRA[task.name] = task
    if _REGISTRY is not None:
        _REGISTRY = dict(sorted({**_REGISTRY, task.name: task}.items()))
    return task


def reload() -> None:
    """Forget the registry (tests that add or remove task modules)."""
    global _REGISTRY
    _REGISTRY = None


def load_errors() -> dict[str, str]:
    """Task modules that failed to import: module path -> error."""
    all_tasks()
    return dict(_ERRORS)


def _not_installed(name: str, who: str) -> StudioError:
    tasks = all_tasks()
    broken = [f"{m} ({e})" for m, e in _ERRORS.items() if m.rsplit(".", 1)[-1] == name]
    hint = (f"Its module failed to load: {broken[0]}." if broken else
            f"Install the task (a module in core/tasks/ or one named in TRINITY_TASKS). "
            f"Installed tasks: {', '.join(tasks) or 'none'}.")
    return StudioError(f"{who} needs task '{name}', which is not installed.", hint)


def get_task(name: str) -> Task:
    tasks = all_tasks()
    if name not in tasks:
        raise StudioError(f"Unknown task '{name}'.", f"Known tasks: {', '.join(tasks) or 'none'}.")
    return tasks[name]


def task_for_dataset(meta: dict, where: str | None = None) -> Task:
    """The task of a dataset, configured from its dataset.json (e.g. the json task's schema).

    Raises StudioError "Dataset X needs task Y, which is not installed." for a missing task, and the
    task's own StudioError for a bad configuration.
    """
    name = meta.get("task") if isinstance(meta, dict) else None
    who = f"Dataset '{(meta or {}).get('name') or where or '?'}'"
    if not isinstance(name, str) or not name:
        raise StudioError(f"{who} does not name a task.",
                          f'Add "task" to its dataset.json, one of: {", ".join(all_tasks())}.')
    task = all_tasks().get(name)
    if task is None:
        raise _not_installed(name, who)
    configure = getattr(task, "configure", None)
    return configure(meta) if callable(configure) else task
