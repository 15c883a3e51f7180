"""REST API: the Keylike phone app's key analysis and ui2sql, beside the studio or on its own.

`create_api(provider)` returns a FastAPI app. The studio mounts its Gradio UI onto it with
`gr.mount_gradio_app(app, blocks, path="/")` (our /api/v1 routes are matched first);
`python -m core serve` runs it alone under uvicorn. Models load lazily on the first request that
needs them (thread-safe), and one lock per loaded model serialises generation.
Every error is JSON: {"success": false, "error": ..., "hint": ...}.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from core.secrets import scrub
from core.errors import StudioError

PREFIX = "/api/v1"
# A phone photo is 2-8 MB; 10 MB leaves room without letting one request fill memory.
DEFAULT_MAX_UPLOAD = int(os.environ.get("TRINITY_API_MAX_UPLOAD", 10 * 1024 * 1024))
MULTIPART_SLACK = 64 * 1024  # form boundaries and headers around the file in the request body
TASKS = ("keys", "ui2sql")


class ApiError(Exception):
    def __init__(self, status: int, error: str, hint: str = ""):
        super().__init__(error)
        self.status, self.error, self.hint = status, error, hint


class ErrorBody(BaseModel):
    success: bool = False
    error: str
    hint: str = ""


# The seed routes' payloads are the tasks' own (Task.route); a route whose task is not installed is
# not served (removing a task's package leaves the server starting).
def _route_model(task: str):
    from core.tasks import all_tasks

    t = all_tasks().get(task)
    return t.route.response_model if t is not None and t.route is not None else None


KeysAnalysis, Ui2SqlResult = _route_model("keys"), _route_model("ui2sql")


class Health(BaseModel):
    success: bool = True
    status: str
    tasks: dict
    max_upload_bytes: int


class EngineProvider:
    """Which model answers each task: a run (its base model + adapter) or a base model alone.

    Engines are shared per base model (several runs' adapters on one base) and loaded on first
    use under a lock, so concurrent first requests load once.
    """

    def __init__(self, runs: dict[str, str | os.PathLike | None] | None = None, base_model: str = "demo",
                 device: str | None = None):
        self.base_model, self.device = base_model, device
        self._runs: dict[str, Path | None] = {}
        self._engines: dict[str, object] = {}
        self._lock = threading.Lock()
        for task, run in (runs or {}).items():
            self.configure(task, run)

    def configure(self, task: str, run: str | os.PathLike | None) -> None:
        """Serve `task` from a run folder (None: the base model without adapter)."""
        from core.infer import read_run_config, resolve_run_dir

        if task not in TASKS:
            raise StudioError(f"Unknown task '{task}'.", f"The API serves: {', '.join(TASKS)}.")
        if run is None:
            self._runs[task] = None
            return
        run_dir = resolve_run_dir(run)
        cfg_task = read_run_config(run_dir).get("task")
        if cfg_task != task:
            raise StudioError(f"Run '{run_dir.name}' was trained for '{cfg_task}', not '{task}'.",
                              "Pick a run of that task.")
        self._runs[task] = run_dir

    def _target(self, task: str) -> tuple[str, Path | None]:
        """(model to load, run folder whose adapter goes on it, or None)."""
        from core.infer import run_weights

        run = self._runs.get(task)
        if run is None:
            return self.base_model, None
        model, has_adapter = run_weights(run)
        return model, (run if has_adapter else None)

    def __call__(self, task: str):
        """(engine, adapter name or None). Raises StudioError when the model cannot be loaded."""
        from core.infer import Engine

        model, run = self._target(task)
        with self._lock:
            engine = self._engines.get(model)
            if engine is None:
                engine = Engine(model, device=self.device)
                self._engines[model] = engine
            adapter = engine.add_adapter(run) if run else None
        return engine, adapter

    def status(self) -> dict:
        out = {}
        for task in TASKS:
            run = self._runs.get(task)
            try:
                model, _ = self._target(task)
            except StudioError as e:
                out[task] = {"run": run.name if run else None, "error": e.message}
                continue
            out[task] = {"run": run.name if run else None, "loaded": model in self._engines,
                         "model": Path(model).name if os.path.isabs(model) else model}
        return out


def create_api(engine_provider: Callable | None = None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD,
               generation: dict | None = None) -> FastAPI:
    """The API app. engine_provider(task) -> (Engine, adapter name | None); None -> the demo model.
    generation: overrides of the task presets (e.g. {"max_new_tokens": 64})."""
    provider = engine_provider if engine_provider is not None else EngineProvider()
    gen = dict(generation or {})
    app = FastAPI(title="Trinity Studio API", version="1.0",
                  description="Key photo analysis (Keylike app format) and UI screenshot to SQL schema.",
                  openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs", redoc_url=None)
    app.state.provider = provider
    app.state.max_upload_bytes = int(max_upload_bytes)
    errors = {400: {"model": ErrorBody}, 413: {"model": ErrorBody}, 503: {"model": ErrorBody}}

    @app.middleware("http")
    async def reject_oversized(request: Request, call_next):
        # Refuse by the declared length before the body is read or spooled.
        length = request.headers.get("content-length")
        if request.url.path.startswith(PREFIX) and length and length.isdigit() \
                and int(length) > app.state.max_upload_bytes + MULTIPART_SLACK:
            return _too_large(app.state.max_upload_bytes)
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(_request, exc: ApiError):
        return JSONResponse({"success": False, "error": scrub(exc.error), "hint": scrub(exc.hint)},
                            status_code=exc.status)

    @app.exception_handler(Exception)
    async def failed(_request, exc: Exception):
        return JSONResponse({"success": False, "error": scrub(f"The server failed: {type(exc).__name__}: {exc}"),
                             "hint": "Try again; if it keeps failing, check the server log."}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"success": False, "error": f"Invalid request: {where} {first.get('msg', '')}".strip(),
                             "hint": "Send multipart/form-data with the image in a field named 'image'."},
                            status_code=422)

    @app.get(f"{PREFIX}/health", response_model=Health)
    def health():
        """Liveness and which run serves each task (does not load a model)."""
        status = provider.status() if hasattr(provider, "status") else {}
        return {"success": True, "status": "ok", "tasks": status, "max_upload_bytes": app.state.max_upload_bytes}

    @_maybe(KeysAnalysis, app.post(f"{PREFIX}/keys/analyze", response_model=KeysAnalysis, responses=errors))
    def analyze_key(image: UploadFile | None = File(None, description="Photo of the key (PNG, JPEG, ...)")):
        """Reads a key photo: keyway, bitting and brand, plus the keyway catalog's figures."""
        from core.tasks.keys.app_json import keys_app_json

        picture = _read_image(image, app.state.max_upload_bytes)
        _task, answer = _answer(provider, "keys", picture, gen)
        return keys_app_json(answer)

    @_maybe(Ui2SqlResult, app.post(f"{PREFIX}/ui2sql", response_model=Ui2SqlResult, responses=errors))
    def ui2sql(image: UploadFile | None = File(None, description="Screenshot of an application's UI"),
               dialect: str | None = Form(None, description="generic, postgres, mysql or sqlite")):
        """Writes the SQL schema behind a UI screenshot, checks it, and converts it to a dialect."""
        from core.tasks import get_task

        route = get_task("ui2sql").route
        try:
            route.check_params({"dialect": dialect})
        except StudioError as e:
            raise ApiError(400, e.message, e.hint) from None
        picture = _read_image(image, app.state.max_upload_bytes)
        _task, answer = _answer(provider, "ui2sql", picture, gen)
        return route.build(answer.parsed, {"text": answer.text, "confidence": answer.confidence, "dialect": dialect})

    return app


def _maybe(model, decorator):
    """The route's decorator when its task is installed, else leave the function unregistered."""
    return decorator if model is not None else (lambda fn: fn)


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"success": False, "error": f"The upload is larger than the limit of {limit:,} bytes.",
                         "hint": "Send a smaller image (downscale or compress it)."}, status_code=413)


def _read_image(upload: UploadFile | None, limit: int):
    """Upload -> RGB image. The size is checked before decoding; the file name is never used."""
    from core.images import load_image

    if upload is None:
        raise ApiError(400, "No image was sent.", "Send the picture as multipart/form-data in a field named 'image'.")
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"The upload is larger than the limit of {limit:,} bytes.",
                       "Send a smaller image (downscale or compress it).")
    try:
        return load_image(data)
    except StudioError as e:
        raise ApiError(400, e.message, e.hint) from None


def _answer(provider, task_name: str, picture, gen: dict):
    from core.tasks import get_task

    task = get_task(task_name)
    try:
        engine, adapter = provider(task_name)
    except StudioError as e:
        raise ApiError(503, f"The {task_name} model is not loaded: {e.message}", e.hint) from None
    if engine is None:
        raise ApiError(503, f"No model serves {task_name}.", "Start the server with a run for this task (--run RUN).")
    answer = engine.generate([picture], [task.prompt({"fields": {}})], adapter=adapter, task=task, **gen)[0]
    return task, answer
