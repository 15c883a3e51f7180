"""What every tab shares: the studio's state (workspace, demo mode, loaded models), error display,
and small helpers for lists of datasets and runs."""
from __future__ import annotations

import functools
import html
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from core import workspace
from core.errors import StudioError
from core.fsutil import atomic_dir
from core.workspace import ASSETS

# A Space must not be exhausted by one visitor: small models, bounded runs (issue 4). The cap is
# the demo base's keys recipe (core.training.config.DEMO_RECIPE), so the Space can show it learn.
DEMO_MAX_STEPS = 300


@dataclass
class StudioState:
    """Server-side state shared by all sessions (per-session state lives in gr.State)."""
    workspace: Path
    demo_mode: bool = False
    engines: dict = field(default_factory=dict)       # model id or folder -> core.infer.Engine
    engine_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def datasets_dir(self) -> Path:
        return workspace.datasets_dir(self.workspace)

    @property
    def runs_dir(self) -> Path:
        return workspace.runs_dir(self.workspace)


def make_state(workspace_dir=None, demo_mode: bool = False) -> StudioState:
    ws = workspace.root(workspace_dir)
    os.environ["TRINITY_WORKSPACE"] = str(ws)  # core's run/dataset lookups use the same workspace
    return StudioState(workspace=ws, demo_mode=demo_mode)


def seed_demo_datasets(state: StudioState) -> list[str]:
    """Copies the demo datasets (assets/demo/*/) of the installed tasks into the workspace once, so
    users edit copies, never the repo's."""
    import json

    from core.tasks import all_tasks

    copied, installed = [], all_tasks()
    for src in sorted(p for p in (ASSETS / "demo").iterdir() if (p / "dataset.json").is_file()):
        name, dest = src.name, state.datasets_dir / src.name
        try:
            task = json.loads((src / "dataset.json").read_text(encoding="utf-8")).get("task")
        except (OSError, ValueError):
            continue
        if task in installed and not dest.exists():
            with atomic_dir(dest) as tmp:  # a half copy never looks like a dataset
                shutil.copytree(src, tmp, ignore=shutil.ignore_patterns(".lock"), dirs_exist_ok=True)
            copied.append(name)
    return copied


# ---------------------------------------------------------------- errors
def show_error(e: StudioError) -> gr.Error:
    return gr.Error(f"{e.message}" + (f"<br><b>What to do:</b> {html.escape(e.hint)}" if e.hint else ""),
                    title="Trinity Studio")


def warn(e: StudioError) -> None:
    gr.Warning(f"{html.escape(e.message)}" + (f"<br><b>What to do:</b> {html.escape(e.hint)}" if e.hint else ""),
               title="Not done")


def ui_guard(fn):
    """For UI handlers: StudioError -> one toast with message + hint, and every output stays as it
    was (gr.Error would also put a red "Error" badge on each output, over its text)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StudioError as e:
            warn(e)
            return gr.skip()
    return wrapper


def guard(fn):
    """For API endpoints: StudioError -> gr.Error with message + hint, so the client gets an error."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except StudioError as e:
            raise show_error(e) from e
    return wrapper


# ---------------------------------------------------------------- lists
def dataset_choices(state: StudioState) -> list[tuple[str, str]]:
    from core.dataset import Dataset

    # A dataset that cannot be opened (its task is not installed, its dataset.json is broken) is
    # listed with the reason; opening it shows the full message instead of hiding the folder.
    return [(f"{d.name}  ·  {d.task.name}" if isinstance(d, Dataset) else f"{p.name}  ·  ⚠ {d.message}", str(p))
            for p, d in Dataset.scan(state.datasets_dir)]


def open_dataset(state: StudioState, path: str | None):
    from core.dataset import Dataset
    from core.fsutil import inside

    if not path:
        raise StudioError("No dataset is open.", "Pick one in the dataset list at the top, or create one in Datasets.")
    if state.demo_mode and not inside(state.workspace, path):
        raise StudioError("This demo only opens datasets inside its workspace.", "Pick one from the list.")
    return Dataset.open(path)


def run_choices(state: StudioState, task: str | None = None, finished_only: bool = False) -> list[tuple[str, str]]:
    from core.training.runs import list_runs

    out = []
    for r in list_runs(state.workspace):
        if task and r.get("task") != task:
            continue
        if finished_only and not (r.get("has_adapter") or r.get("has_model")):
            continue
        out.append((f"{r['run_id']}  ·  {r['status']}", r["path"]))
    return out


def newest_finished(state: StudioState, current: str | None = None, dataset: str | None = None) -> dict:
    """The finished-run picker's update (Evaluate, Export): every finished run, the picked one kept
    while it is listed, else the newest run of the open dataset, else the newest run (as Compare
    picks), so a tab never opens on "No run picked" while a finished run exists."""
    from core.training.runs import list_runs

    choices = run_choices(state, finished_only=True)
    ids = [v for _, v in choices]
    if current in ids:
        return gr.update(choices=choices, value=current)
    mine = []
    if dataset:
        here = Path(dataset).resolve()
        mine = [r["path"] for r in list_runs(state.workspace)
                if r.get("dataset") and Path(r["dataset"]).resolve() == here and r["path"] in ids]
    return gr.update(choices=choices, value=(mine or ids or [None])[0])


def run_buttons(state: StudioState, run: gr.Dropdown, prefix: str, action: str, dataset=None):
    """The row under a finished-run picker (Evaluate, Export): "Refresh runs", which lists the finished
    runs again (newest_finished), and the tab's own button. Returns (the refresh handler, taking the
    picked run and the open dataset, and the tab's button)."""
    with gr.Row():
        refresh = gr.Button("Refresh runs", size="sm", elem_id=f"{prefix}-refresh")
        go = gr.Button(action, variant="primary", elem_id=f"{prefix}-go")

    def on_refresh(current=None, open_dataset_path=None):
        return newest_finished(state, current, open_dataset_path)

    refresh.click(on_refresh, [run] + ([dataset] if dataset is not None else []), run)
    return on_refresh, go


def badge(text: str, kind: str = "neutral") -> str:
    return f'<span class="ts-badge ts-{kind}">{html.escape(str(text))}</span>'


def esc(x) -> str:
    return html.escape(str(x))
