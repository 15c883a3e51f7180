"""What the API serves: every task (on its base model, or the run chosen for it) and any number of
finished runs, each under a model name clients use (Ollama's and OpenAI's `model`).

Engines are shared per base model, so several runs of one base are one loaded model with several
adapters (core/infer.py). Serving or dropping a run takes effect on the next request: no restart.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from core import models
from core.api.common import ApiError
from core.errors import StudioError


@dataclass(frozen=True)
class Served:
    """One model name. run None: the task answered by the base model without adapter."""
    name: str
    task: str
    model: str                 # what to load: a registry id, a folder, or a full fine-tune's RUN/model
    run: Path | None = None
    adapter: bool = False      # the run's adapter goes on `model`
    task_obj: object = field(default=None, compare=False, repr=False)  # configured from the run's dataset

    def describe(self, loaded: bool) -> dict:
        model = models.display_id(self.model)
        return {"name": self.name, "task": self.task, "run": self.run.name if self.run else None,
                "base_model": model, "adapter": self.adapter, "loaded": loaded}


def _run_task(cfg: dict):
    """The run's task configured as its dataset configures it (e.g. the json task's schema), so the
    API parses answers as training did; the plain task when the dataset is gone."""
    import json

    from core.tasks import get_task, task_for_dataset

    meta_file = Path(str(cfg.get("dataset") or "")) / "dataset.json"
    if cfg.get("dataset") and meta_file.is_file():
        try:
            return task_for_dataset(json.loads(meta_file.read_text(encoding="utf-8")), meta_file.parent.name)
        except (StudioError, ValueError, OSError):
            pass
    return get_task(cfg.get("task"))


def _task_names() -> list[str]:
    from core.tasks import all_tasks

    return sorted(all_tasks())


class ServedModels:
    """The provider behind every route: model name -> (engine, adapter) loaded on first use.

    runs: {task: run} (that run answers the task) or a list of runs (each answers its own task;
    the last one given per task is the task's default). engines/lock: a cache shared with the
    studio's Compare tab, so a model loaded there is not loaded twice.
    """

    def __init__(self, runs=None, base_model: str = "demo", device: str | None = None,
                 engines: dict | None = None, lock=None):
        self.base_model, self.device = base_model, device
        self._runs: dict[str, Served] = {}        # run name -> entry
        self._default: dict[str, str] = {}       # task -> run name answering it under the task's name
        self._engines = engines if engines is not None else {}
        self._own: dict[str, object] = {}         # strong refs: a shared cache may drop an engine
        self._loaded: dict[tuple, tuple] = {}      # (model, run) -> (engine, adapter name)
        self._lock = lock or threading.Lock()
        self._state = threading.RLock()
        items = runs.items() if isinstance(runs, dict) else ((None, r) for r in (runs or []))
        for task, run in items:
            if task:
                self.configure(task, run)
            else:
                self.serve(run)

    # -- what is served --------------------------------------------------------------------------
    def serve(self, run, default: bool = True) -> Served:
        """Serves a finished run under its folder name; default: it also answers its task's name."""
        from core.infer import read_run_config, resolve_run_dir, run_weights

        run_dir = resolve_run_dir(run)
        task = read_run_config(run_dir).get("task")
        if task not in _task_names():
            raise StudioError(f"Run '{run_dir.name}' is for task '{task}', which is not installed.",
                              f"Installed tasks: {', '.join(_task_names())}.")
        model, has_adapter = run_weights(run_dir)  # refuses a run without trained weights
        entry = Served(run_dir.name, task, model, run_dir, has_adapter, _run_task(read_run_config(run_dir)))
        if entry.name in _task_names():
            raise StudioError(f"A run cannot be named '{entry.name}': that is a task's model name.",
                              "Rename the run folder.")
        with self._state:
            self._runs[entry.name] = entry
            if default:
                self._default[task] = entry.name
        return entry

    def unserve(self, name: str) -> None:
        """Stops serving a run (its adapter stays loaded until the server stops)."""
        with self._state:
            entry = self._runs.pop(name, None)
            if entry is None:
                raise StudioError(f"'{name}' is not being served.", f"Served runs: {', '.join(self._runs) or 'none'}.")
            if self._default.get(entry.task) == name:
                others = [r for r in self._runs.values() if r.task == entry.task]
                if others:
                    self._default[entry.task] = others[-1].name
                else:
                    self._default.pop(entry.task)

    def configure(self, task: str, run) -> None:
        """`task` answered by `run` (None: by the base model)."""
        if task not in _task_names():
            raise StudioError(f"Unknown task '{task}'.", f"Installed tasks: {', '.join(_task_names())}.")
        if run is None:
            with self._state:
                self._default.pop(task, None)
            return
        entry = self.serve(run, default=False)
        if entry.task != task:
            self.unserve(entry.name)
            raise StudioError(f"Run '{entry.name}' was trained for '{entry.task}', not '{task}'.",
                              "Pick a run of that task.")
        with self._state:
            self._default[task] = entry.name

    def entries(self) -> list[Served]:
        """Every model name: one per task (its default), then one per served run."""
        with self._state:
            out = []
            for task in _task_names():
                run = self._runs.get(self._default.get(task, ""))
                out.append(Served(task, task, run.model, run.run, run.adapter, run.task_obj) if run
                           else Served(task, task, self.base_model))
            return out + list(self._runs.values())

    def find(self, name: str | None) -> Served:
        """A model name as a client sends it: a task's name, 'my-run' or 'my-run:latest'."""
        wanted = (name or "").strip()
        names = {e.name: e for e in self.entries()}
        for cand in (wanted, wanted.removesuffix(":latest")):
            if cand in names:
                return names[cand]
        raise ApiError(404, f"Model '{wanted}' is not served here.",
                       f"Served models: {', '.join(names)}.", code="model_not_found")

    # -- loading ---------------------------------------------------------------------------------
    def load(self, entry: Served):
        """(engine, adapter name or None) for an entry; loads its model once (thread-safe)."""
        from core.infer import Engine

        known = self._loaded.get((entry.model, entry.run))
        if known is not None:  # no engine lock on the hot path: a running batch must not block queueing
            return known
        try:
            with self._lock:
                engine = self._own.get(entry.model) or self._engines.get(entry.model)
                if engine is None:
                    engine = Engine(entry.model, device=self.device)
                    self._engines[entry.model] = engine
                self._own[entry.model] = engine
        except StudioError as e:
            raise ApiError(503, f"The model for '{entry.name}' is not loaded: {e.message}", e.hint) from None
        try:
            out = engine, (engine.add_adapter(entry.run) if entry.adapter else None)
        except StudioError as e:
            raise ApiError(503, f"The adapter of '{entry.name}' is not loaded: {e.message}", e.hint) from None
        self._loaded[(entry.model, entry.run)] = out
        return out

    def shared_cache(self):
        """(engines by model, their lock): other work in this process (a pre-label pass) loads its
        model into the same cache, so a model is never in memory twice."""
        return self._engines, self._lock

    def __call__(self, task: str):
        """(engine, adapter) answering a task: the older provider interface."""
        return self.load(self.find(task))

    def status(self) -> dict:
        """Health: which run (or base model) answers each task, and every served model name."""
        served = []
        for e in self.entries():
            served.append(e.describe(e.model in self._own))
        return {"tasks": {s["task"]: s for s in served[:len(_task_names())]}, "served": served}


class CallableProvider:
    """A plain function task -> (engine, adapter) as a provider (tests, embedding code)."""

    def __init__(self, fn):
        self.fn = fn

    def find(self, name):
        name = (name or "").removesuffix(":latest")
        if name not in _task_names():
            raise ApiError(404, f"Model '{name}' is not served here.", f"Served models: {', '.join(_task_names())}.",
                           code="model_not_found")
        return Served(name, name, "?")

    def entries(self):
        return [Served(t, t, "?") for t in _task_names()]

    def load(self, entry):
        try:
            out = self.fn(entry.task)
        except StudioError as e:
            raise ApiError(503, f"The model for '{entry.name}' is not loaded: {e.message}", e.hint) from None
        if out is None or out[0] is None:
            raise ApiError(503, f"No model serves {entry.name}.", "Start the server with a run for this task (--serve RUN).")
        return out

    def status(self):
        return {"tasks": {}, "served": []}


def as_provider(obj):
    if obj is None:
        return ServedModels()
    return obj if hasattr(obj, "find") else CallableProvider(obj)

