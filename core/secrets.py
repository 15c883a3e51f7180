"""Keeps the Hugging Face token out of anything shown or written: errors, events, logs, responses."""
from __future__ import annotations


def scrub(text: str) -> str:
    """Replaces the token (from the environment or .env) wherever a library's message quotes it."""
    try:
        from core.models import hf_token
        token = hf_token()
    except Exception:
        token = None
    text = str(text)
    return text.replace(token, "***") if token and len(token) > 4 else text
