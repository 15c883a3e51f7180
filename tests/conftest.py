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


def key_image(shade: int = 128):
    """A synthetic key photo: grey with a few "cuts", so images differ in content, not just colour."""
    from PIL import Image

    im = Image.new("RGB", (192, 96), (shade, shade, shade))
    for x in range(20, 170, 30):
        im.paste((255 - shade, 40, 40), (x, 30, x + 8, 30 + (x % 50)))
    return im


@pytest.fixture(scope="session")
def trained_run(demo_model_path, tmp_path_factory):
    """trained_run(target, task="keys", steps=60, seed=0, into=None, dataset=None, model_id=None,
    answer_tokens=True) -> a
    LoRA run folder made by the product's training job (core.training: create_run + run_job, a few CPU
    steps) on three key photos all labelled `target`, so its adapter answers `target`. Trained once per
    session per (target, task, steps, seed) on the session's demo model folder. With `into` the run is
    copied there, so a test may change its copy; dataset / model_id then replace those entries of its
    config.json (model_id="demo": the registry id of the same deterministic build). answer_tokens: the
    run also trains its answers' embedding rows (train_answer_tokens, the demo recipe's default). Without
    them the shipped base's LoRA memorised "BRAND:" only now and then ("ep: Schlage" in a full run).
    schema (task "json"): the dataset's JSON Schema; target is then the canonical JSON answer."""
    import io
    import json
    import shutil

    cache: dict[tuple, Path] = {}

    def train(target: str, task: str = "keys", steps: int = 60, seed: int = 0, into: Path | None = None,
              dataset: str | None = None, model_id: str | None = None, answer_tokens: bool = True,
              schema: dict | None = None) -> Path:
        key = (target, task, steps, seed, answer_tokens, json.dumps(schema, sort_keys=True))
        if key not in cache:
            import torch

            from core.dataset import Dataset
            from core.tasks import get_task
            from core.training.config import default_config
            from core.training.events import last_of, read_events
            from core.training.hardware import CPU_ONLY
            from core.training.job import run_job
            from core.training.runs import create_run

            config = {"schema": schema} if schema is not None else None
            t = get_task(task).configure(config or {}) if config else get_task(task)
            fields = t.fields_from_parsed(t.parse(target))
            assert t.target({"fields": fields}) == target, "the label would not render as the target"
            root = tmp_path_factory.mktemp(f"trained-{task}")
            ds = Dataset.create(root / "dataset", task, config=config)
            for shade in (60, 128, 200):
                buf = io.BytesIO()
                key_image(shade).save(buf, "PNG")
                rec, _ = ds.add_image(buf.getvalue(), fields=fields)
                ds.save_record({**rec, "split": "train"})
            # LoRA memorises one answer against the pretrained demo base's caption prior only with a high,
            # constant rate: 60 steps for a keys answer, 120 for the SQL one (measured, 3 of 3 images)
            cfg = default_config(str(demo_model_path), CPU_ONLY, dataset=str(ds.path), task=task, method="lora",
                                 lora_r=8, lora_alpha=16, learning_rate=1e-2, lr_scheduler="constant",
                                 warmup_ratio=0, max_steps=steps, batch_size=3, gradient_accumulation_steps=1,
                                 gradient_checkpointing=False, eval_split="", save_steps=10_000,
                                 logging_steps=10, seed=seed, train_answer_tokens=answer_tokens)
            threads = torch.get_num_threads()
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("TRINITY_WORKSPACE", str(root / "workspace"))
                torch.set_num_threads(1)
                try:
                    run = create_run(cfg, run_dir=root / "run")
                    code = run_job(run, progress=False)
                finally:
                    torch.set_num_threads(threads)
            end = last_of(read_events(run), "end")
            assert code == 0 and end and end["status"] == "completed", end
            assert (run / "adapter" / "adapter_config.json").is_file()
            cache[key] = run
        if into is None:
            return cache[key]
        run = Path(into)
        shutil.copytree(cache[key], run)
        changes = {k: v for k, v in (("dataset", dataset), ("model_id", model_id)) if v is not None}
        if changes:
            cfg_file = run / "config.json"
            cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), **changes}, indent=2))
        return run

    return train


@pytest.fixture(scope="session")
def start_studio():
    """`with start_studio(ws, extra_env) as s:` runs `python app.py` on a free loopback port with that
    workspace and yields s.url, s.ws, s.proc, s.log (the server's output); on exit it stops the server
    and any training job it started."""
    import contextlib
    import signal
    from types import SimpleNamespace

    from bench.live_server import free_port, live_server

    @contextlib.contextmanager
    def run(ws: Path, extra_env: dict | None = None, timeout: float = 120):
        port = free_port()
        ws.mkdir(parents=True, exist_ok=True)
        log = ws.parent / f"server-{port}.log"
        with live_server(["app.py", "--workspace", str(ws)], {"TRINITY_WORKSPACE": str(ws), **(extra_env or {})},
                         log=log, timeout=timeout, port=port) as s:
            try:
                yield SimpleNamespace(url=s.url, ws=ws, proc=s.proc, log=log)
            finally:
                for pid_file in (ws / "runs").glob("*/pid"):  # training jobs started through the UI
                    try:
                        os.killpg(int(pid_file.read_text()), signal.SIGTERM)
                    except (OSError, ValueError):
                        pass

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
