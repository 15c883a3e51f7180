"""One gate for every API family: /api/v1 (task routes), /api/* (Ollama) and /v1/* (OpenAI).

With a login (USER:PASS) or an API key configured, a request needs HTTP Basic with the login or
`Authorization: Bearer <key>`; anything else is a 401 with a Basic challenge. Credentials are
compared in constant time and never logged (uvicorn's access log writes the path, not headers).
"""
from __future__ import annotations

import base64
import binascii
import hmac
import os

from core.api.common import ApiError, error_response

API_KEY_ENV = "TRINITY_API_KEY"
GUARDED = ("/api/", "/v1/")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def api_key_from(arg: str | None, env=None) -> str | None:
    """--api-key wins, else $TRINITY_API_KEY; an empty value means none."""
    env = os.environ if env is None else env
    key = (arg if arg is not None else env.get(API_KEY_ENV, "")).strip()
    if key and len(key) < 8:
        raise SystemExit("The API key must be at least 8 characters.")
    return key or None


def parse_login(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    user, sep, pw = text.partition(":")
    if not sep or not user or not pw:
        raise SystemExit("--auth must be USER:PASS (both non-empty).")
    return user, pw


def refuse_unsafe_bind(host: str, login, api_key, allow_remote: bool, what: str = "the API") -> None:
    """Beyond loopback only with a login, a key, or an explicit --allow-remote."""
    if host not in LOOPBACK and not (login or api_key or allow_remote):
        raise SystemExit(f"Refusing to expose {what} ({host}) without --auth USER:PASS, --api-key "
                         f"(or ${API_KEY_ENV}) or --allow-remote.")


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class ApiAuth:
    def __init__(self, login: tuple[str, str] | None = None, api_key: str | None = None):
        self.login, self.api_key = login, api_key

    @property
    def enabled(self) -> bool:
        return bool(self.login or self.api_key)

    def allows(self, authorization: str | None) -> bool:
        if not self.enabled:
            return True
        scheme, _, value = (authorization or "").partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer" and value:
            return bool(self.api_key) and _eq(value, self.api_key)
        if scheme == "basic" and self.login:
            try:
                user, sep, pw = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return False
            return bool(sep) and _eq(user, self.login[0]) & _eq(pw, self.login[1])
        return False

    def middleware(self):
        async def check(request, call_next):
            path = request.url.path
            if self.enabled and path.startswith(GUARDED) and request.method != "OPTIONS" \
                    and not self.allows(request.headers.get("authorization")):
                return error_response(path, ApiError(
                    401, "Authentication required.",
                    "Send HTTP Basic with the studio's login, or 'Authorization: Bearer <API key>'.",
                    headers={"WWW-Authenticate": 'Basic realm="Trinity Studio"'}, code="invalid_api_key"))
            return await call_next(request)
        return check
