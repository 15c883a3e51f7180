"""Pre-labeling: a finished run (or the base model) answers every unlabeled record of a dataset in
batches; each answer goes through the task's parse, and the fields that parsed are stored on the
record as a suggestion (core/suggestions.py), never as a label.

The pass is resumable and stoppable by construction: a record holding this run's answer is done,
so the same command run again goes on where the last one stopped (a crash, kill -9, a stop). Each
batch is one locked, atomic rewrite of records.jsonl that touches only records that still have no
label, so a person saving a record while the model works is never overwritten, and never
overwrites the suggestion of another record.

DATASET/prelabel.json  the last pass: run, status (loading|running|completed|stopped|failed, or
                       interrupted when its process is gone), counts, error
DATASET/prelabel.stop  present = please stop after the current batch (works across processes)

`run_pass` runs in the caller's thread (the CLI); `start` runs it on a background thread of this
process (the studio, the API), which the UI polls through `status`.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core import suggestions as sug
from core.errors import StudioError
from core.fsutil import atomic_write_json, atomic_write_text

STATE_FILE, STOP_FILE = "prelabel.json", "prelabel.stop"
BASE = "base"                 # --run base: the base model answers (no adapter)
WHICH = ("unlabeled", "suggested")
DEFAULT_BATCH = 8
MAX_TEXT = 4000               # the model's raw answer kept on the suggestion, to see what it said
ACTIVE_STATUSES = ("loading", "running")

_threads: dict[str, threading.Thread] = {}
_threads_lock = threading.Lock()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Source:
    """Who answers: name is the key its suggestions are stored under (the run's folder name, or
    "base:<model>"); model is what to load; the run's adapter goes on it when adapter is True."""
    name: str
    model: str
    run_dir: Path | None = None
    adapter: bool = False


# ---------------------------------------------------------------- checks (before anything loads)
def source_for(ds, run: str | None, model: str = "demo") -> Source:
    """The run (folder or run id; "base" or "base:MODEL" for a base model) that will answer ds,
    checked: it exists, has finished training, and answers this dataset's task and fields."""
    from core.infer import read_run_config, resolve_run_dir, run_weights
    from core.training.runs import run_status

    run = (run or "").strip()
    if not run:
        raise StudioError("No run was chosen to pre-label with.",
                          "Pick a finished run of this dataset's task (or 'base' for the base model).")
    if run == BASE or run.startswith(BASE + ":"):
        from core.models import display_id

        model = run.partition(":")[2] or model or "demo"
        return Source(f"{BASE}:{display_id(model)}", model)
    run_dir = resolve_run_dir(run)
    cfg = read_run_config(run_dir)
    st = run_status(run_dir)
    if st["status"] == "running":
        at = f" (step {st.get('step') or 0} of {st.get('max_steps') or '?'})" if st.get("max_steps") else ""
        raise StudioError(f"Run '{run_dir.name}' is still training{at}.",
                          "Wait until it has finished (the Train tab shows its progress), or pick a finished run.")
    task = cfg.get("task") or ""
    if task and task != ds.task.name:
        raise StudioError(f"Run '{run_dir.name}' answers the '{task}' task, but dataset {ds.name} is a "
                          f"'{ds.task.name}' dataset.", f"Pick a run trained on a {ds.task.name} dataset.")
    mine, theirs = [f.name for f in ds.task.fields], _run_fields(cfg)
    if theirs is not None and set(theirs) != set(mine):
        raise StudioError(f"Run '{run_dir.name}' answers the fields {', '.join(theirs)}; dataset {ds.name} has "
                          f"{', '.join(mine)}.", "Pick a run trained on a dataset with the same fields.")
    weights, has_adapter = run_weights(run_dir)  # no adapter/ or model/ yet: says so
    return Source(run_dir.name, weights, run_dir, has_adapter)


def _run_fields(cfg: dict) -> list[str] | None:
    """The field names of the dataset the run was trained on, when that dataset is still there."""
    from core.dataset import Dataset

    path = Path(str(cfg.get("dataset") or ""))
    if not cfg.get("dataset") or not (path / "dataset.json").is_file():
        return None
    try:
        return [f.name for f in Dataset.open(path).task.fields]
    except StudioError:
        return None


def select(ds, name: str, which: str = "unlabeled") -> tuple[list[dict], list[dict]]:
    """(the records this pass covers, those of them still waiting for `name`'s answer).
    which: "unlabeled" = every record without a label; "suggested" = only those already holding
    another run's suggestion (a second opinion, to sort by disagreement)."""
    if which not in WHICH:
        raise StudioError(f"Unknown selection '{which}'.", f"Use one of: {', '.join(WHICH)}.")
    unlabeled = [r for r in ds.records() if r.get("status") not in sug.LABELED and not ds.task.is_labeled(r)]
    if not unlabeled:
        raise StudioError(f"Dataset {ds.name} has no unlabeled records to pre-label.",
                          "Every record already has a label. Import more images (Datasets tab) to pre-label them.")
    scope = unlabeled if which == "unlabeled" else [r for r in unlabeled if sug.has_suggestion(r)]
    if not scope:
        raise StudioError(f"Dataset {ds.name} has no suggested records for a second opinion.",
                          "Pre-label the unlabeled records first (selection 'unlabeled').")
    return scope, [r for r in scope if name not in (r.get(sug.SUGGESTIONS) or {})]


# ---------------------------------------------------------------- state on disk
def _state_path(ds) -> Path:
    return Path(ds.path) / STATE_FILE


def _write_state(ds, state: dict) -> None:
    atomic_write_json(_state_path(ds), {**state, "updated": _now()})


def _pid_alive(pid) -> bool:
    import psutil

    try:
        return psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, ValueError, TypeError):
        return False


def status(ds) -> dict:
    """The last pass on ds: {"status": none|loading|running|completed|stopped|failed|interrupted,
    "run", "total", "done", "written", "no_fields", "labeled_meanwhile", "failed", "error", "hint",
    "stop_requested"}. A pass whose process died (kill -9, a crash) reads as "interrupted"."""
    import json

    try:
        state = json.loads(_state_path(ds).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"status": "none"}
    if not isinstance(state, dict):
        return {"status": "none"}
    if state.get("status") in ACTIVE_STATUSES:
        if state.get("pid") == os.getpid():
            with _threads_lock:
                thread = _threads.get(str(Path(ds.path)))
            alive = thread is not None and thread.is_alive()
        else:
            alive = _pid_alive(state.get("pid"))
        if not alive:
            state["status"] = "interrupted"
    state["stop_requested"] = state.get("status") in ACTIVE_STATUSES and (Path(ds.path) / STOP_FILE).exists()
    return state


def request_stop(ds) -> dict:
    """Asks the pass on ds to stop after its current batch (what it answered so far is kept)."""
    st = status(ds)
    if st["status"] not in ACTIVE_STATUSES:
        raise StudioError(f"No pre-label pass is running on dataset {ds.name}.",
                          "Start one with a finished run." if st["status"] == "none" else
                          f"The last pass is {st['status']}.")
    atomic_write_text(Path(ds.path) / STOP_FILE, f"requested {_now()}\n")
    return status(ds)


def _refuse_if_running(ds) -> None:
    st = status(ds)
    if st["status"] in ACTIVE_STATUSES:
        raise StudioError(f"A pre-label pass with {st.get('run')} is already running on dataset {ds.name} "
                          f"({st.get('done', 0)} of {st.get('total', '?')} records).",
                          "Wait for it to finish, or stop it first.")


# ---------------------------------------------------------------- the pass
def load_source(src: Source, engines: dict | None = None, lock=None, device: str | None = None):
    """(engine, adapter name or None). engines/lock: a model cache shared with the caller (the
    studio's Compare tab, the API), so a model already loaded there is not loaded twice."""
    from core.infer import Engine

    engines = {} if engines is None else engines
    with lock or threading.Lock():
        engine = engines.get(src.model)
        if engine is None:
            engine = Engine(src.model, device=device)
            engines[src.model] = engine
    return engine, (engine.add_adapter(src.run_dir) if src.adapter else None)


def to_suggestion(task, answer, engine=None) -> dict:
    """A model answer -> a suggestion: the fields that parsed and that the task's check does not
    flag (a wrong bitting is dropped, the keyway kept), each with the model's confidence in it."""
    parsed = answer.parsed if answer.parsed is not None else task.parse(answer.text)
    try:
        fields = task.fields_from_parsed(parsed) or {}
    except Exception:  # noqa: BLE001 - a task that cannot rebuild fields from a half answer: none
        fields = {}
    names = {f.name for f in task.fields}
    fields = {k: v for k, v in fields.items() if k in names and not sug._empty(v)}
    try:
        issues = [i for i in task.check(fields) if i.severity == "error" and i.field]
    except Exception:  # noqa: BLE001 - a check that fails on a partial answer keeps nothing it cannot vouch for
        issues = []
        dropped = {k: "the task could not check it" for k in fields}
    else:
        dropped = {}
        for i in issues:  # the first reason per field: what the person sees beside the empty field
            if i.field in fields:
                dropped.setdefault(i.field, i.message)
    fields = {k: v for k, v in fields.items() if k not in dropped}
    # A field is as doubtful as its least sure token: one wrong digit makes a bitting wrong, and the
    # mean over a field's tokens hid that (bench/RESULTS.md, "Model-assisted labeling": below 0.8 the
    # minimum marked 59 of 104 wrong bittings and 22 of 112 right ones; the mean marked none).
    conf = engine.field_confidence(answer, fields, reduce="min", task=task) if engine is not None else {}
    return {"fields": fields, "confidence": {k: float(conf.get(k, answer.confidence)) for k in fields},
            "dropped": dropped, "overall": float(answer.confidence), "text": answer.text[:MAX_TEXT], "at": _now()}


def run_pass(ds, run: str | None, *, model: str = "demo", which: str = "unlabeled",
             batch_size: int = DEFAULT_BATCH, engines: dict | None = None, lock=None,
             device: str | None = None, progress=None, _checked: Source | None = None) -> dict:
    """Answers every record of the selection that has no answer from this run yet; returns the
    final state (also in DATASET/prelabel.json). progress(state) after each batch. Ctrl-C or the
    stop file ends it as "stopped" after the current batch; run it again to go on."""
    src = _checked or source_for(ds, run, model)
    if _checked is None:
        _refuse_if_running(ds)
    scope, todo = select(ds, src.name, which)
    stop_file = Path(ds.path) / STOP_FILE
    stop_file.unlink(missing_ok=True)
    key, me = str(Path(ds.path)), threading.current_thread()
    with _threads_lock:  # status() tells this process's live pass from a dead one's leftover state
        _threads[key] = me
    state = {"run": src.name, "which": which, "status": "loading", "total": len(scope),
             "done": len(scope) - len(todo), "resumed_at": len(scope) - len(todo), "written": 0, "no_fields": 0,
             "labeled_meanwhile": 0, "failed": 0, "started": _now(), "pid": os.getpid(), "batch_size": batch_size}
    _write_state(ds, state)
    t0 = time.perf_counter()
    try:
        if todo:
            engine, adapter = load_source(src, engines, lock, device)
            state["status"] = "running"
            _write_state(ds, state)
            if progress:
                progress(dict(state))
            step = max(1, int(batch_size))
            for start in range(0, len(todo), step):
                if stop_file.exists():
                    state["status"] = "stopped"
                    break
                _one_batch(ds, src, engine, adapter, todo[start:start + step], state)
                _write_state(ds, state)
                if progress:
                    progress(dict(state))
        if state["status"] != "stopped":
            state["status"] = "completed"
    except KeyboardInterrupt:
        state["status"] = "stopped"
        raise
    except StudioError as e:
        state.update(status="failed", error=e.message, hint=e.hint)
        raise
    except Exception as e:  # noqa: BLE001 - recorded for the UI, then raised for the caller's log
        state.update(status="failed", error=f"{type(e).__name__}: {e}", hint="See the studio's log for details.")
        raise
    finally:
        state["seconds"] = round(time.perf_counter() - t0, 2)
        state["finished"] = _now()
        _write_state(ds, state)
        stop_file.unlink(missing_ok=True)
        with _threads_lock:
            if _threads.get(key) is me:
                _threads.pop(key)
    return state


def _one_batch(ds, src: Source, engine, adapter, batch: list[dict], state: dict) -> None:
    task = ds.task
    answers: dict[str, dict] = {}
    images, good = [], []
    for r in batch:  # a broken image is answered with its reason, so a rerun does not retry it forever
        try:
            images.append(ds.load_image(r))
            good.append(r)
        except StudioError as e:
            answers[r["id"]] = {"fields": {}, "confidence": {}, "overall": 0.0, "error": e.message, "at": _now()}
            state["failed"] += 1
    if good:
        prompts = [task.prompt({**r, "fields": {}}) for r in good]  # asked as for a new image: no label
        for r, a in zip(good, engine.generate(images, prompts, adapter=adapter, task=task, batch_size=len(good))):
            answers[r["id"]] = to_suggestion(task, a, engine)
            state["no_fields"] += int(not answers[r["id"]]["fields"])
    res = ds.put_suggestions(src.name, answers)
    state["written"] += res["written"]
    state["labeled_meanwhile"] += res["labeled"] + res["missing"]
    state["done"] += len(batch)


# ---------------------------------------------------------------- in the background
def start(ds, run: str | None, *, model: str = "demo", which: str = "unlabeled", batch_size: int = DEFAULT_BATCH,
          engines: dict | None = None, lock=None, device: str | None = None) -> dict:
    """Checks everything a user can get wrong (the run, the dataset), then runs the pass on a
    background thread of this process and returns its first state; `status(ds)` follows it."""
    from core.dataset import Dataset

    src = source_for(ds, run, model)
    select(ds, src.name, which)  # nothing to pre-label: said now, not on the thread
    key = str(Path(ds.path))
    with _threads_lock:
        old = _threads.get(key)
        if old is not None and old.is_alive():
            raise StudioError(f"A pre-label pass is already running on dataset {ds.name}.",
                              "Wait for it to finish, or stop it first.")
        _refuse_if_running(ds)  # another process's (the CLI's)
        fresh = Dataset.open(ds.path)  # the thread's own handle: its lock depth is per thread anyway
        _write_state(ds, {"run": src.name, "which": which, "status": "loading", "total": 0, "done": 0,
                          "written": 0, "no_fields": 0, "labeled_meanwhile": 0, "failed": 0,
                          "started": _now(), "pid": os.getpid()})

        def work():
            try:
                run_pass(fresh, run, model=model, which=which, batch_size=batch_size, engines=engines, lock=lock,
                         device=device, _checked=src)
            except Exception:  # noqa: BLE001 - already in prelabel.json (status failed, error)
                import logging

                logging.getLogger(__name__).exception("pre-label pass on %s failed", ds.name)

        thread = threading.Thread(target=work, name=f"prelabel-{ds.name}", daemon=True)
        _threads[key] = thread
        thread.start()
    return status(ds)


def wait(ds, timeout: float | None = None) -> dict:
    """Waits for this process's background pass on ds (tests, scripts); returns its status."""
    with _threads_lock:
        thread = _threads.get(str(Path(ds.path)))
    if thread is not None:
        thread.join(timeout)
    return status(ds)
