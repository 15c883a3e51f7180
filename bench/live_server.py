"""The studio (`app.py`) or `python -m core serve` as a real process on a free loopback port, up once
`GET /api/v1/health` answers 200. The load benchmarks and the tests that need a live server share it:

    with live_server(["-m", "core", "serve"], {"TRINITY_WORKSPACE": ws}, log=path) as s:
        requests.get(s.url + "/api/v1/health")
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import requests

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class DidNotStart(RuntimeError):
    """The server exited, or did not answer its health check in time (the message has its log's tail)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float, auth=None, log: Path | None = None) -> float:
    """Polls URL/api/v1/health until it answers 200; returns the seconds that took."""
    t0 = time.perf_counter()
    while True:
        try:
            if requests.get(url + "/api/v1/health", auth=auth, timeout=2).status_code == 200:
                return time.perf_counter() - t0
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.perf_counter() - t0 > timeout:
            what = f"exited with {proc.returncode}" if proc.poll() is not None else f"did not start in {timeout:.0f} s"
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise DidNotStart(f"{' '.join(proc.args[1:])}: {what}" + (f"\n{tail}" if tail else ""))
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def live_server(args: list[str], env: dict | None = None, log: Path | None = None, auth=None,
                timeout: float = 120, port: int | None = None, cwd: Path = REPO):
    """Runs `python ARGS --port PORT` (a free one by default) in the repo, offline, with os.environ plus
    ENV (a None value removes that variable; SPACE_ID is always removed, so it runs as on a desktop);
    stdout and stderr go to LOG (or nowhere). Yields url, port, proc, log and startup_s once healthy
    (auth: what the health check sends); stops the process on exit."""
    port = port or free_port()
    full = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    full = {k: str(v) for k, v in full.items() if v is not None and k != "SPACE_ID"}
    with open(log, "wb") if log else contextlib.nullcontext(subprocess.DEVNULL) as out:
        proc = subprocess.Popen([sys.executable, *args, "--port", str(port)], cwd=cwd, env=full,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://{HOST}:{port}"
    try:
        startup = wait_healthy(url, proc, timeout, auth, log)
        yield SimpleNamespace(url=url, port=port, proc=proc, log=log, startup_s=startup)
    finally:
        stop(proc)
