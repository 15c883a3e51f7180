"""The API app: task routes and dataset pre-labeling (/api/v1), Ollama (/api/*) and OpenAI (/v1/*) on
one FastAPI app.

The studio mounts its Gradio UI onto it (`gr.mount_gradio_app(app, blocks, path="/")`; these routes
match first); `python -m core serve` runs it alone under uvicorn. Models load on the first request
that needs them; concurrent requests are batched (core/api/batcher.py).
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.api.auth import ApiAuth
from core.api.batcher import DEFAULT_MAX_BATCH, DEFAULT_MAX_QUEUE, Batcher
from core.api.common import DEFAULT_MAX_UPLOAD, MULTIPART_SLACK, PREFIX, ApiError, error_response, too_large
from core.api.datasets_routes import datasets_routes
from core.api.ollama_compat import ollama_routes
from core.api.openai_compat import openai_routes
from core.api.runner import Runner
from core.api.serving import as_provider
from core.api.tasks_routes import SUCCESS, task_routes
from core.errors import StudioError

GUARDED = ("/api/", "/v1/")


class Health(BaseModel):
    success: bool = True
    status: str
    tasks: dict
    served: list = []
    max_upload_bytes: int
    queue: dict = {}
    auth: bool = False


def create_api(engine_provider=None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD, generation: dict | None = None,
               *, auth: ApiAuth | None = None, max_batch: int = DEFAULT_MAX_BATCH,
               max_queue: int = DEFAULT_MAX_QUEUE, batch_window_s: float | None = None) -> FastAPI:
    """engine_provider: a core.api.serving.ServedModels (or a function task -> (engine, adapter));
    None serves the demo model. generation: server-wide overrides, e.g. {"max_new_tokens": 64} (a cap)."""
    provider = as_provider(engine_provider)
    batcher = Batcher(max_batch, max_queue, *(() if batch_window_s is None else (batch_window_s,)))
    runner = Runner(provider, batcher, generation)
    app = FastAPI(title="Trinity Studio API", version="2.0",
                  description="Every installed task's route (/api/v1), plus Ollama-compatible (/api/*) and "
                              "OpenAI-compatible (/v1/*) chat endpoints for the served runs.\n\n" + SUCCESS,
                  openapi_url=f"{PREFIX}/openapi.json", docs_url=f"{PREFIX}/docs", redoc_url=None)
    app.state.provider, app.state.runner, app.state.batcher = provider, runner, batcher
    app.state.max_upload_bytes = int(max_upload_bytes)
    app.state.auth = auth or ApiAuth()

    def limit() -> int:
        return app.state.max_upload_bytes

    @app.middleware("http")
    async def reject_oversized(request: Request, call_next):
        # Refuse by the declared length before the body is read or spooled. base64 (Ollama, OpenAI)
        # is 4/3 of the bytes.
        length = request.headers.get("content-length")
        if request.url.path.startswith(GUARDED) and length and length.isdigit() \
                and int(length) > limit() * 4 // 3 + MULTIPART_SLACK:
            return error_response(request.url.path, too_large(limit()))
        return await call_next(request)

    # Added last, so it runs first: nothing else sees an unauthenticated request.
    app.middleware("http")(app.state.auth.middleware())

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return error_response(request.url.path, exc)

    @app.exception_handler(StudioError)
    async def studio_error(request, exc: StudioError):
        return error_response(request.url.path, ApiError(400, exc.message, exc.hint))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return error_response(request.url.path, ApiError(exc.status_code, str(exc.detail), "", dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def failed(request, exc: Exception):
        return error_response(request.url.path, ApiError(
            500, f"The server failed: {type(exc).__name__}: {exc}", "Try again; if it keeps failing, check the server log."))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(request.url.path, ApiError(422, f"Invalid request: {where} {first.get('msg', '')}".strip(),
                                                         "Check the request against /api/v1/docs."))

    @app.get(f"{PREFIX}/health", response_model=Health, tags=["health"])
    def health():
        """Liveness, and what is served: the run (or base model) answering each task, every served
        model name, the queue. Loads no model."""
        status = provider.status()
        return {"success": True, "status": "ok", "tasks": status.get("tasks", {}), "served": status.get("served", []),
                "max_upload_bytes": limit(), "auth": app.state.auth.enabled,
                "queue": {"waiting": batcher.waiting(), "max_queue": batcher.max_queue, "max_batch": batcher.max_batch}}

    app.include_router(task_routes(runner, limit))
    app.include_router(datasets_routes(provider))
    app.include_router(ollama_routes(runner, limit))
    app.include_router(openai_routes(runner, limit))
    return app
