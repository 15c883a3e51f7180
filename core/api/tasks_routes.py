"""The task REST routes, generated from the installed tasks (core/tasks/): for every task
`POST /api/v1/tasks/{name}/analyze`, and each task's own route (Route.path, e.g. a seed's contract)
with the same handler. The payload is core.tasks.api_payload: the task's Route.build(parsed, meta),
or the generic payload for a task without a route. The request is multipart/form-data with the picture in `image`
(or JSON with `image` as base64), an optional `model` (a served run; default the task's), and the
route's own params."""
from __future__ import annotations

import json

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from core.api.common import PREFIX, ApiError, ErrorBody, b64_bytes, decode_image, too_large
from core.errors import StudioError

SUCCESS = ("`success` is true if and only if the model's answer parsed into the task's structure with "
           "no errors (for every task and route alike); then `error` is null. Otherwise `success` is "
           "false and `error` says why. Failed requests (no image, bad parameter, model not loaded, "
           "server busy) answer a 4xx/5xx status with {success: false, error, hint}.")


def _body_schema(params: dict[str, str]) -> dict:
    props = {"image": {"type": "string", "format": "binary", "description": "The picture (PNG, JPEG, ...)"},
             "model": {"type": "string", "description": "A served model name (a run); default: the task's"}}
    props.update({k: {"type": "string", "description": v} for k, v in params.items()})
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {
        "schema": {"type": "object", "properties": props, "required": ["image"]}}}}}


async def _read_request(request: Request, limit: int, params: dict) -> tuple[bytes, dict]:
    """(image bytes, form fields) from multipart or JSON. The upload's file name is never used."""
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except ValueError as e:
            raise ApiError(400, f"The JSON body is malformed: {e}.", "Send {\"image\": \"<base64>\"}.") from None
        if not isinstance(body, dict) or not body.get("image"):
            raise ApiError(400, "No image was sent.", "Send {\"image\": \"<base64 of the file>\"}.")
        return b64_bytes(body["image"], limit), {k: body.get(k) for k in ("model", *params) if body.get(k) is not None}
    try:
        form = await request.form(max_files=2, max_fields=len(params) + 8)
    except Exception as e:  # noqa: BLE001 - malformed multipart: the parser's own reason
        raise ApiError(400, f"The form could not be read: {e}.", "Send multipart/form-data with the image in "
                       "a field named 'image'.") from None
    upload = form.get("image")
    if upload is None or isinstance(upload, str):
        raise ApiError(400, "No image was sent.", "Send the picture as multipart/form-data in a field named 'image'.")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise too_large(limit)
    fields = {k: v for k, v in form.items() if k != "image" and isinstance(v, str)}
    return data, {k: fields[k] for k in ("model", *params) if fields.get(k) not in (None, "")}


def task_routes(runner, limit_of) -> APIRouter:
    """limit_of(): the current upload limit in bytes."""
    from core.tasks import all_tasks, api_model

    router = APIRouter(prefix=PREFIX)
    errors = {s: {"model": ErrorBody} for s in (400, 401, 404, 413, 503)}
    for task in all_tasks().values():
        route = getattr(task, "route", None)
        params = dict(getattr(route, "params", None) or {})
        handler = _handler(runner, task, route, params, limit_of)
        model = api_model(task)
        paths = [f"/tasks/{task.name}/analyze"] + ([route.path] if route and route.path else [])
        for i, path in enumerate(paths):
            router.add_api_route(
                path, handler, methods=["POST"], response_model=model, responses=errors,
                name=f"{task.name}_{'analyze' if i == 0 else 'route'}", tags=[task.name],
                summary=(route.summary if route else f"{task.title or task.name}: analyze a picture"),
                description=((getattr(route, "description", "") or "") + "\n\n" + SUCCESS).strip(),
                response_description=SUCCESS, openapi_extra=_body_schema(params))

    @router.post("/tasks/{name}/analyze", include_in_schema=False)
    def unknown_task(name: str):  # after every task's own route: only names no task has reach it
        raise ApiError(404, f"No task named '{name}' is installed.",
                       f"Installed tasks: {', '.join(all_tasks()) or 'none'}.")
    return router


def _handler(runner, task, route, params: dict, limit_of):
    from core.tasks import api_payload

    async def analyze(request: Request):
        limit = limit_of()
        data, fields = await _read_request(request, limit, params)
        check = getattr(route, "check_params", None)
        if callable(check):
            try:
                check({k: v for k, v in fields.items() if k in params})
            except StudioError as e:
                raise ApiError(400, e.message, e.hint) from None
        image = await run_in_threadpool(decode_image, data, limit)
        target = await runner.target(fields.get("model") or task.name)
        if target.entry.task != task.name:
            raise ApiError(400, f"Model '{target.entry.name}' answers '{target.entry.task}', not '{task.name}'.",
                           f"Use POST {PREFIX}/tasks/{target.entry.task}/analyze, or a run of this task.")
        gen = runner.settings(target)
        ans = await runner.answer(target, image, target.task.prompt({"fields": {}}), gen)
        entry = target.entry
        meta = {"text": ans.text, "confidence": ans.confidence, "field_confidence": ans.field_confidence,
                "model": entry.describe(False)["base_model"], "run": entry.run.name if entry.run else None,
                **{k: v for k, v in fields.items() if k in params}}
        try:
            return await run_in_threadpool(api_payload, target.task, ans.parsed, meta)
        except StudioError as e:
            raise ApiError(400, e.message, e.hint) from None
    analyze.__name__ = f"analyze_{task.name}"
    return analyze
