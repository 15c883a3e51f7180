"""What every API family shares: the error type, the upload limit, and turning what a client sent
(a multipart file, Ollama's base64 string, an OpenAI data URI) into an RGB image."""
from __future__ import annotations

import base64
import binascii
import json
import os
import re

from pydantic import BaseModel
from starlette.responses import JSONResponse

from core.errors import StudioError

PREFIX = "/api/v1"
# A phone photo is 2-8 MB; 10 MB leaves room without letting one request fill memory.
DEFAULT_MAX_UPLOAD = int(os.environ.get("TRINITY_API_MAX_UPLOAD", 10 * 1024 * 1024))
MULTIPART_SLACK = 64 * 1024  # form boundaries and headers around the file in the request body
DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[\w-]+=[^;,]*)*;base64,(?P<data>.*)$", re.S)


class ApiError(Exception):
    """An error answer. Each API family renders it in its own shape (core/api/app.py)."""

    def __init__(self, status: int, error: str, hint: str = "", headers: dict | None = None,
                 code: str | None = None):
        super().__init__(error)
        self.status, self.error, self.hint, self.headers, self.code = status, error, hint, headers or {}, code


class ErrorBody(BaseModel):
    success: bool = False
    error: str
    hint: str = ""


def error_response(path: str, exc: ApiError) -> JSONResponse:
    """The error in the shape the caller's client library reads: OpenAI's {"error": {...}} under
    /v1, Ollama's {"error": "..."} under /api, and {"success": false, "error", "hint"} under /api/v1."""
    from core.secrets import scrub

    error, hint = scrub(exc.error), scrub(exc.hint)
    if path.startswith("/v1/"):
        kind = {401: "authentication_error", 404: "invalid_request_error", 503: "server_error"}.get(
            exc.status, "invalid_request_error" if exc.status < 500 else "server_error")
        body = {"error": {"message": f"{error} {hint}".strip(), "type": kind, "param": None, "code": exc.code}}
    elif path.startswith("/api/") and not path.startswith(PREFIX + "/"):
        body = {"error": f"{error} {hint}".strip()}
    else:
        body = {"success": False, "error": error, "hint": hint}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"The upload is larger than the limit of {limit:,} bytes.",
                    "Send a smaller image (downscale or compress it).")


def decode_image(data: bytes, limit: int):
    """Bytes -> RGB image. The size is checked before decoding; corrupt or huge images get the
    image loader's own message as a 400."""
    from core.images import load_image

    if len(data) > limit:
        raise too_large(limit)
    try:
        return load_image(data)
    except StudioError as e:
        raise ApiError(400, e.message, e.hint) from None


def b64_bytes(text: str, limit: int, what: str = "image") -> bytes:
    """Ollama's images (plain base64) and OpenAI's data URIs -> bytes, refusing oversized input
    before decoding it."""
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, f"The {what} is empty.", "Send the picture as base64 (Ollama) or a data: URI (OpenAI).")
    m = DATA_URI.match(text.strip())
    payload = m.group("data") if m else text.strip()
    if len(payload) * 3 // 4 > limit + 3:
        raise too_large(limit)
    try:
        return base64.b64decode(re.sub(r"\s+", "", payload), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"The {what} is not valid base64.",
                       "Send the file's bytes base64-encoded, e.g. base64.b64encode(open(path, 'rb').read()).") from None


def image_from_url(url: str, limit: int):
    """An OpenAI image_url: only data: URIs (the server never fetches a URL a client names)."""
    if not isinstance(url, str) or not url.startswith("data:"):
        raise ApiError(400, "Only data: URIs are accepted as image_url.",
                       "Embed the picture: data:image/png;base64,<base64 of the file>. The server does not "
                       "download URLs.")
    return decode_image(b64_bytes(url, limit), limit)


async def json_body(request) -> dict:
    """The request's JSON object (an empty body is {}); a clear 400 for anything else."""
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as e:
        raise ApiError(400, f"The JSON body is malformed: {e}.", "Send a JSON object.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.", "")
    return body
