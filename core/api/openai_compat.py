"""OpenAI-compatible routes: GET /v1/models and POST /v1/chat/completions (image_url as data: URIs,
non-streaming, and streaming as server-sent events ending with `data: [DONE]`). Each served task
and run is a model id."""
from __future__ import annotations

import json
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from core.api.common import ApiError, image_from_url, json_body
from core.api.runner import client_gen, last_turn, stream


def _model(entry) -> dict:
    created = int(entry.run.stat().st_mtime) if entry.run else 0
    return {"id": entry.name, "object": "model", "created": created, "owned_by": "trinity-studio",
            "task": entry.task, "run": entry.run.name if entry.run else None}


def _parts(message: dict, limit: int):
    """(text, image or None) of one message; content is a string or a list of typed parts."""
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or "", None
    if not isinstance(content, list):
        raise ApiError(400, "content must be a string or a list of parts.", "")
    texts, images = [], []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            texts.append(str(part.get("text") or ""))
        elif kind == "image_url":
            url = part.get("image_url")
            images.append(url.get("url") if isinstance(url, dict) else url)
        else:
            raise ApiError(400, f"Unsupported content part type '{kind}'.", "Use 'text' and 'image_url' parts.")
    if len(images) > 1:
        raise ApiError(400, "Send one image per request.", "The model reads one picture per answer.")
    return "\n".join(texts), (images[0] if images else None)


def openai_routes(runner, limit_of) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["openai"])

    @router.get("/models")
    def models():
        return {"object": "list", "data": [_model(e) for e in runner.provider.entries()]}

    @router.get("/models/{name}")
    def model(name: str):
        return _model(runner.provider.find(name))

    @router.post("/chat/completions")
    async def completions(request: Request):
        body = await json_body(request)
        if body.get("n") not in (None, 1):
            raise ApiError(400, "Only n=1 is supported.", "Send one request per answer.")
        target = await runner.target(body.get("model"))
        prompt, url = last_turn(body.get("messages"), lambda m: _parts(m, limit_of()),
                                target.task.prompt({"fields": {}}))
        image = await run_in_threadpool(image_from_url, url, limit_of())
        gen = runner.settings(target, client_gen(body.get("temperature"), body.get("top_p"),
                                                 body.get("max_completion_tokens") or body.get("max_tokens")))
        cap = runner.max_new_tokens(target, gen)
        cid, created, name = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time()), target.entry.name

        def usage(ans) -> dict:
            p = runner.prompt_tokens(target, prompt)
            return {"prompt_tokens": p, "completion_tokens": len(ans.token_ids), "total_tokens": p + len(ans.token_ids)}

        def reason(ans) -> str:
            return "length" if len(ans.token_ids) >= cap else "stop"

        if not body.get("stream"):
            ans = await runner.answer(target, image, prompt, gen)
            return {"id": cid, "object": "chat.completion", "created": created, "model": name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": ans.text},
                                 "logprobs": None, "finish_reason": reason(ans)}],
                    "usage": await run_in_threadpool(usage, ans)}
        pieces, fut = stream(runner, target, image, prompt, gen)
        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(delta: dict, finish=None, **extra) -> str:
            out = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
            return f"data: {json.dumps(out)}\n\n"

        def events():
            yield chunk({"role": "assistant", "content": ""})
            try:
                for p in pieces:
                    yield chunk({"content": p})
                ans = fut.result(timeout=60)
            except Exception as e:  # noqa: BLE001 - the stream says why it stopped
                msg = getattr(e, "message", None) or str(e) or type(e).__name__
                yield f"data: {json.dumps({'error': {'message': msg, 'type': 'server_error'}})}\n\n"
                return
            yield chunk({}, reason(ans))
            if want_usage:
                out = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                       "choices": [], "usage": usage(ans)}
                yield f"data: {json.dumps(out)}\n\n"
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    return router
