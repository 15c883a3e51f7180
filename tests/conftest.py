"""Shared fixtures. Each test gets its own workspace folder so nothing leaks between tests."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    ws = tmp_path / "workspace"
    ws.mkdir()
    monkeypatch.setenv("TRINITY_WORKSPACE", str(ws))
    return ws


@pytest.fixture(scope="session")
def demo_model_path():
    """The shipped demo base (assets/demo/base): what `demo` loads. Read-only: copy it to change it."""
    from core.demo_model import demo_base_path

    return demo_base_path()


@pytest.fixture(scope="session")
def start_studio():
    """`with start_studio(ws, extra_env) as s:` runs `python app.py` on a free loopback port with that
    workspace and yields s.url, s.ws, s.proc, s.log (the server's output); on exit it stops the server
    and any training job it started."""
    import contextlib
    import signal
    import socket
    import subprocess
    import time
    import urllib.request
    from types import SimpleNamespace

    @contextlib.contextmanager
    def run(ws: Path, extra_env: dict | None = None, timeout: float = 120):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ws.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TRINITY_WORKSPACE": str(ws), "HF_HUB_OFFLINE": "1", **(extra_env or {})}
        env.pop("SPACE_ID", None)
        log = ws.parent / f"server-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--workspace", str(ws)],
                                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    urllib.request.urlopen(url + "/api/v1/health", timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError("the studio did not start:\n" + log.read_text()[-3000:])
                    time.sleep(0.5)
            yield SimpleNamespace(url=url, ws=ws, proc=proc, log=log)
        finally:
            for pid_file in (ws / "runs").glob("*/pid"):  # training jobs started through the UI
                try:
                    os.killpg(int(pid_file.read_text()), signal.SIGTERM)
                except (OSError, ValueError):
                    pass
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    return run


@pytest.fixture
def wait_for_event():
    """wait(run, proc, pred, timeout): polls RUN/events.jsonl until an event satisfies pred, the
    process ends or the timeout passes; returns whether such an event was seen."""
    import time

    from core.training.events import read_events

    def wait(run, proc, pred, timeout: float) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            if any(pred(e) for e in read_events(run)):
                return True
            time.sleep(0.1)
        return any(pred(e) for e in read_events(run))
    return wait
