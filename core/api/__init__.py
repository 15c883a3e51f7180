"""The studio's HTTP API, served beside the studio (app.py) or alone (`python -m core serve`).

    /api/v1/tasks/{task}/analyze, and each task's own route   tasks_routes.py (from core/tasks/)
    /api/v1/datasets/{name}/prelabel                          datasets_routes.py (core/prelabel.py)
    /api/tags, /api/chat, /api/generate                        ollama_compat.py
    /v1/models, /v1/chat/completions                          openai_compat.py
    auth.py (Basic / bearer on all three), serving.py (which runs are served), batcher.py
    (concurrent requests -> one generate call), runner.py (request -> answer), app.py (create_api).
"""
from __future__ import annotations

from core.api.app import Health, create_api
from core.api.auth import ApiAuth
from core.api.common import DEFAULT_MAX_UPLOAD, PREFIX, ApiError
from core.api.serving import ServedModels

EngineProvider = ServedModels  # the older name

__all__ = ["create_api", "ApiAuth", "ApiError", "ServedModels", "EngineProvider", "Health", "PREFIX",
           "DEFAULT_MAX_UPLOAD"]


def __getattr__(name: str):
    """A task route's response model by its class name (e.g. the one a seed contract test checks)."""
    from core.tasks import all_tasks

    for task in all_tasks().values():
        model = getattr(getattr(task, "route", None), "response_model", None)
        if model is not None and model.__name__ == name:
            return model
    raise AttributeError(f"module 'core.api' has no attribute '{name}'")
