"""Ollama-compatible routes: /api/tags, /api/chat, /api/generate, /api/show, /api/ps, /api/version.

Images come as Ollama sends them (base64 strings in `images`). `stream` defaults to true as in
Ollama: NDJSON lines, each {"model", "created_at", "message"|"response", "done": false}, then a last
line with "done": true, done_reason and the counts; stream false answers one JSON object.
So `from ollama import chat` works unchanged with OLLAMA_HOST pointing at this server.
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from core.api.common import ApiError, b64_bytes, decode_image, json_body
from core.api.runner import client_gen, last_turn, stream

VERSION = "0.6.0"  # the Ollama API version these routes follow


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _tag(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _details(entry) -> dict:
    return {"parent_model": "", "format": "safetensors", "family": entry.task,
            "families": [entry.task], "parameter_size": "", "quantization_level": "",
            "base_model": entry.describe(False)["base_model"], "run": entry.run.name if entry.run else None}


def _entry_json(entry) -> dict:
    digest = hashlib.sha256(f"{entry.name}|{entry.model}|{entry.run}".encode()).hexdigest()
    when = datetime.fromtimestamp(entry.run.stat().st_mtime, timezone.utc) if entry.run else datetime.now(timezone.utc)
    return {"name": _tag(entry.name), "model": _tag(entry.name), "modified_at": when.isoformat(),
            "size": 0, "digest": digest, "details": _details(entry)}


def ollama_routes(runner, limit_of) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["ollama"])

    def image_of(message: dict):
        imgs = message.get("images") or []
        if not isinstance(imgs, list):
            raise ApiError(400, "images must be a list of base64 strings.", "")
        if len(imgs) > 1:
            raise ApiError(400, "Send one image per request.", "The model reads one picture per answer.")
        text = message.get("content") or ""
        if not isinstance(text, str):
            raise ApiError(400, "content must be a string.", "")
        return text, (b64_bytes(imgs[0], limit_of()) if imgs else None)

    def options(body: dict) -> dict:
        opts = body.get("options") or {}
        if not isinstance(opts, dict):
            raise ApiError(400, "options must be an object.", "")
        return client_gen(opts.get("temperature"), opts.get("top_p"), opts.get("num_predict"))

    async def run(body: dict, prompt: str, data: bytes, target, kind: str):
        t0 = time.perf_counter_ns()
        image = await run_in_threadpool(decode_image, data, limit_of())
        gen = runner.settings(target, options(body))
        cap = runner.max_new_tokens(target, gen)
        name = body.get("model")

        def piece(text: str, done: bool = False) -> dict:
            out = {"model": name, "created_at": _now()}
            out.update({"message": {"role": "assistant", "content": text}} if kind == "chat" else {"response": text})
            out["done"] = done
            return out

        def final(ans) -> dict:
            total = time.perf_counter_ns() - t0
            out = piece("" if body.get("stream", True) else ans.text, True)
            out.update(done_reason="length" if len(ans.token_ids) >= cap else "stop", total_duration=total,
                       load_duration=0, prompt_eval_count=runner.prompt_tokens(target, prompt),
                       prompt_eval_duration=0, eval_count=len(ans.token_ids), eval_duration=total)
            return out

        if body.get("stream", True) is False:
            ans = await runner.answer(target, image, prompt, gen)
            return JSONResponse(await run_in_threadpool(final, ans))
        pieces, fut = stream(runner, target, image, prompt, gen)

        def lines():
            try:
                for p in pieces:
                    yield json.dumps(piece(p)) + "\n"
                ans = fut.result(timeout=60)
            except Exception as e:  # noqa: BLE001 - Ollama reports a failed stream as an error line
                yield json.dumps({"error": getattr(e, "message", None) or str(e) or type(e).__name__}) + "\n"
                return
            yield json.dumps(final(ans)) + "\n"
        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @router.get("/tags")
    def tags():
        """Every served model (each task, each served run), as Ollama lists local models."""
        return {"models": [_entry_json(e) for e in runner.provider.entries()]}

    @router.get("/ps")
    def ps():
        loaded = {s["name"] for s in runner.provider.status().get("served", []) if s.get("loaded")}
        return {"models": [_entry_json(e) for e in runner.provider.entries() if e.name in loaded]}

    @router.get("/version")
    def version():
        return {"version": VERSION}

    @router.post("/show")
    async def show(request: Request):
        body = await json_body(request)
        entry = runner.provider.find(body.get("model") or body.get("name"))
        return {"modelfile": "", "parameters": "", "template": "", "details": _details(entry),
                "model_info": {"general.architecture": entry.task}, "capabilities": ["completion", "vision"],
                "modified_at": _entry_json(entry)["modified_at"]}

    @router.post("/chat")
    async def chat(request: Request):
        body = await json_body(request)
        target = await runner.target(body.get("model"))
        prompt, data = last_turn(body.get("messages"), image_of, target.task.prompt({"fields": {}}))
        return await run(body, prompt, data, target, "chat")

    @router.post("/generate")
    async def generate(request: Request):
        body = await json_body(request)
        target = await runner.target(body.get("model"))
        text = body.get("prompt") or ""
        if not isinstance(text, str):
            raise ApiError(400, "prompt must be a string.", "")
        if not text and not body.get("images"):  # Ollama's way to load a model: an empty request
            return {"model": body.get("model"), "created_at": _now(), "response": "", "done": True,
                    "done_reason": "load"}
        messages = ([{"role": "system", "content": body["system"]}] if body.get("system") else []) + \
            [{"role": "user", "content": text, "images": body.get("images") or []}]
        prompt, data = last_turn(messages, image_of, target.task.prompt({"fields": {}}))
        return await run(body, prompt, data, target, "generate")

    return router
