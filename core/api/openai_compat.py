"""OpenAI-compatible routes: GET /v1/models and POST /v1/chat/completions (image_url as data: URIs,
non-streaming, and streaming as server-sent events ending with `data: [DONE]`). Each served task
and run is a model id.

`response_format` is honoured: "text" (the default) answers the model's text; "json_object" answers
the task's parsed structure as a JSON object (Task.parse); "json_schema" does the same for a task
that has a JSON Schema of its own (the json task), and checks the answer against the schema the
client sent. An answer that does not parse is a 422 with the reason and the raw text, never text
posing as JSON; any other format is a 400 naming the supported ones. With a JSON format a stream
carries the whole object in one chunk, once it is parsed."""
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


def response_kinds(task) -> tuple[str, ...]:
    """The response_format types a task's model can answer: json_schema only where the task has a
    JSON Schema of its own (Task.schema, the json task's)."""
    return ("text", "json_object") + (("json_schema",) if isinstance(getattr(task, "schema", None), dict) else ())


def response_kind(fmt, task, model: str) -> tuple[str, dict | None]:
    """(type, the client's JSON Schema or None) of a request's response_format; ApiError 400 for a
    format this model cannot answer."""
    if fmt is None:
        return "text", None
    kind = fmt.get("type") if isinstance(fmt, dict) else fmt
    supported = response_kinds(task)
    if kind not in supported:
        why = (f"Model '{model}' has no JSON Schema of its own (only the json task's models do)"
               if kind == "json_schema" else f"response_format type {json.dumps(kind)} is not supported")
        raise ApiError(400, f"{why}.", f"Supported response_format types here: {', '.join(supported)}.",
                       code="unsupported_response_format")
    if kind != "json_schema":
        return kind, None
    spec = fmt.get("json_schema") if isinstance(fmt, dict) else None
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if schema is not None and not isinstance(schema, dict):
        raise ApiError(400, "response_format.json_schema.schema must be a JSON Schema object.",
                       'Send {"type": "json_schema", "json_schema": {"name": "...", "schema": {...}}}.')
    if schema:
        import jsonschema

        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.exceptions.SchemaError as e:
            raise ApiError(400, f"response_format.json_schema.schema is not a valid JSON Schema: {e.message}",
                           "Send the schema of the model's task (GET /api/v1/tasks lists it).") from None
    return kind, schema or None


def json_content(ans, task, schema: dict | None) -> str:
    """The task's parsed answer as the message content (a JSON object); ApiError 422 when the
    answer did not parse or does not fit the client's schema."""
    parsed = ans.parsed if ans.parsed is not None else task.parse(ans.text)
    raw = (ans.text or "").strip().replace("\n", " ")[:200]
    if not parsed.ok:
        raise ApiError(422, f"{parsed.error_text().rstrip('.')}. Its text: {raw!r}.",
                       "Retry, or ask with response_format text to read the raw answer.", code="answer_did_not_parse")
    if schema:
        import jsonschema

        err = next(iter(jsonschema.validators.validator_for(schema)(schema).iter_errors(parsed.data)), None)
        if err is not None:
            where = ".".join(str(p) for p in err.absolute_path) or "the top level"
            raise ApiError(422, f"The model's answer does not fit the response_format's schema at {where}: "
                           f"{err.message}.", "Send the schema of the model's task, or leave it out.",
                           code="answer_does_not_fit_schema")
    return json.dumps(parsed.data, ensure_ascii=False)


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
        kind, schema = response_kind(body.get("response_format"), target.task, target.entry.name)
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

        want_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if not body.get("stream") or kind != "text":
            ans = await runner.answer(target, image, prompt, gen)
            content = ans.text if kind == "text" else json_content(ans, target.task, schema)
            if body.get("stream"):  # a JSON format streams the parsed object whole
                return StreamingResponse(_whole(chunker(cid, created, name), content, reason(ans),
                                                await run_in_threadpool(usage, ans) if want_usage else None),
                                         media_type="text/event-stream")
            return {"id": cid, "object": "chat.completion", "created": created, "model": name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "logprobs": None, "finish_reason": reason(ans)}],
                    "usage": await run_in_threadpool(usage, ans)}
        pieces, fut = stream(runner, target, image, prompt, gen)

        chunk = chunker(cid, created, name)

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
                yield chunk(None, usage=usage(ans))
            yield "data: [DONE]\n\n"
        return StreamingResponse(events(), media_type="text/event-stream")

    return router


def chunker(cid: str, created: int, name: str):
    """chunk(delta, finish=None, **extra) -> one server-sent event; delta None = a usage-only chunk."""
    def chunk(delta: dict | None, finish=None, **extra) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
        out = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
               "choices": choices, **extra}
        return f"data: {json.dumps(out)}\n\n"
    return chunk


def _whole(chunk, content: str, finish: str, usage: dict | None):
    """The events of an answer known in full: role, the content, the finish, usage, [DONE]."""
    yield chunk({"role": "assistant", "content": ""})
    yield chunk({"content": content})
    yield chunk({}, finish)
    if usage is not None:
        yield chunk(None, usage=usage)
    yield "data: [DONE]\n\n"
