"""Dataset routes under /api/v1: pre-labeling a workspace dataset with a finished run.

    POST /api/v1/datasets/{name}/prelabel        {"run", "split"?, "model"?, "batch_size"?} -> 202, the pass's state
    GET  /api/v1/datasets/{name}/prelabel        the last pass's state and what its suggestions were worth
    POST /api/v1/datasets/{name}/prelabel/stop   stops the pass after its current batch

The pass runs on a background thread of the server (core/prelabel.py); the model is the one the
task routes and the studio's Compare tab share, when it is loaded already. Datasets are named by
their folder in the workspace's datasets/ (never a path)."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from core.api.common import PREFIX, ApiError, ErrorBody


class PrelabelRequest(BaseModel):
    run: str = Field(description="A finished run (its folder name in the workspace), or 'base' for the base model")
    split: Literal["unlabeled", "suggested"] = Field(
        "unlabeled", description="unlabeled: every record without a label; suggested: only those holding another "
                                 "run's suggestion (a second opinion)")
    model: str = Field("demo", description="The base model for run 'base'")
    batch_size: int = Field(8, ge=1, le=256, description="Images answered per generate call")


class PrelabelAnswer(BaseModel):
    success: bool = True
    dataset: str
    prelabel: dict = Field(description="The pass: status (loading, running, completed, stopped, failed, interrupted, "
                                       "none), run, total, done, written, no_fields, labeled_meanwhile, error")
    suggestions: dict | None = Field(None, description="pending, settled, and per run the accept-unchanged counts "
                                                       "per field")


def _dataset(name: str):
    from core import workspace
    from core.dataset import META_FILE, Dataset
    from core.names import is_valid_name

    if not is_valid_name(name):
        raise ApiError(400, f"'{name}' is not a dataset name.", "Give the dataset's folder name (letters, digits, . _ -).")
    path = workspace.datasets_dir() / name
    if not (path / META_FILE).is_file():
        raise ApiError(404, f"No dataset named '{name}' in the workspace.",
                       "Give the name of a dataset the studio lists (its folder in the workspace's datasets/).")
    return Dataset.open(path)


def _run_ref(run: str) -> str:
    """A run by its folder name in the workspace (or 'base'): a client never names a server path."""
    from core import workspace
    from core.names import is_valid_name
    from core.prelabel import BASE

    if run == BASE or run.startswith(BASE + ":"):
        return run
    if not is_valid_name(run):
        raise ApiError(400, f"'{run}' is not a run name.", "Give the run's folder name, or 'base'.")
    path = workspace.runs_dir() / run
    if not (path / "config.json").is_file():
        raise ApiError(404, f"No run named '{run}' in the workspace.",
                       "Give the name of a finished run the studio lists (its folder in the workspace's runs/).")
    return str(path)


def datasets_routes(provider) -> APIRouter:
    """provider: the API's served models; its model cache is shared with the pass when it has one."""
    from core import prelabel
    from core.suggestions import stats

    router = APIRouter(prefix=PREFIX, tags=["datasets"])
    errors = {s: {"model": ErrorBody} for s in (400, 401, 404, 409)}
    engines, lock = getattr(provider, "shared_cache", lambda: (None, None))()

    def answer(ds, with_stats: bool = False) -> dict:
        out = {"success": True, "dataset": ds.path.name, "prelabel": prelabel.status(ds)}
        if with_stats:
            out["suggestions"] = stats(ds.task, ds.records())
        return out

    @router.post("/datasets/{name}/prelabel", status_code=202, response_model=PrelabelAnswer, responses=errors,
                 summary="Pre-label a dataset's unlabeled records with a finished run")
    async def start(name: str, body: PrelabelRequest):
        """Starts a pass in the background and answers at once; poll GET for its progress. Records
        get suggestions (status `suggested`), never labels; a record labeled meanwhile is left as it is.
        Run again after a stop or a crash, it goes on where it stopped."""
        ds = _dataset(name)
        ref = _run_ref(body.run)

        def go():
            if prelabel.status(ds)["status"] in prelabel.ACTIVE_STATUSES:
                raise ApiError(409, f"A pre-label pass is already running on dataset {ds.name}.",
                               f"Follow it with GET {PREFIX}/datasets/{name}/prelabel, or stop it first.")
            prelabel.start(ds, ref, model=body.model, which=body.split, batch_size=body.batch_size,
                           engines=engines, lock=lock)
            return answer(ds)
        return await run_in_threadpool(go)

    @router.get("/datasets/{name}/prelabel", response_model=PrelabelAnswer, responses=errors,
                summary="The dataset's pre-label pass and its suggestions' accept-unchanged rates")
    async def get(name: str):
        ds = _dataset(name)
        return await run_in_threadpool(answer, ds, True)

    @router.post("/datasets/{name}/prelabel/stop", response_model=PrelabelAnswer, responses=errors,
                 summary="Stop the dataset's pre-label pass after its current batch")
    async def stop(name: str):
        ds = _dataset(name)

        def go():
            prelabel.request_stop(ds)
            return answer(ds)
        return await run_in_threadpool(go)

    return router
