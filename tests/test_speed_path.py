"""The fast path a run takes: the speed levers' variables checked at start, the compile caches kept in
the workspace for Unsloth, the one-line path event, and the Train tab's compiling phase."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import StudioError
from core.training.events import EventWriter, last_of, read_events
from core.training.hardware import CPU_ONLY, Hardware

KEYS = Path(__file__).resolve().parent.parent / "assets" / "demo" / "keys"
GPU = Hardware(cuda=True, gpu_count=1, gpu_name="H200", vram_gb=139, bf16=True, bitsandbytes=True, unsloth=True)
CACHE_VARS = ("TORCHINDUCTOR_CACHE_DIR", "UNSLOTH_COMPILE_LOCATION", "UNSLOTH_MEGA_CACHE_DIR")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in (*CACHE_VARS, "FAST_LORA", "FAST_DORA", "TRINITY_DATA_WORKERS", "UNSLOTH_COMPILE_DISABLE",
                 "UNSLOTH_MEGA_CACHE"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("name,bad,allowed", [
    ("FAST_LORA", "fast", "dora, all, none"), ("FAST_DORA", "maybe", "1, on, true"),
    ("UNSLOTH_COMPILE_DISABLE", "yes", "0, 1, partial"), ("UNSLOTH_MEGA_CACHE", "2", "1, on"),
    ("TRINITY_DATA_WORKERS", "two", "whole number")])
def test_a_bad_lever_value_names_the_variable_the_value_and_the_choices(monkeypatch, name, bad, allowed):
    from core.training.levers import check_env

    monkeypatch.setenv(name, bad)
    with pytest.raises(StudioError) as e:
        check_env()
    text = e.value.message + " " + e.value.hint
    assert f"{name}='{bad}'" in text and allowed in text


def test_good_lever_values_pass_and_normalize(monkeypatch):
    from core.training.levers import check_env, env_choice

    for name, value, meant in [("FAST_LORA", "OFF", "none"), ("FAST_LORA", "1", "all"), ("FAST_DORA", "false", "0"),
                               ("UNSLOTH_COMPILE_DISABLE", "partial", "partial"), ("UNSLOTH_MEGA_CACHE", "", "")]:
        monkeypatch.setenv(name, value)
        check_env()
        assert env_choice(name) == meant
    monkeypatch.delenv("FAST_LORA")
    assert env_choice("FAST_LORA") == "dora"  # the measured default


def test_a_cache_variable_must_name_a_folder(monkeypatch, tmp_path):
    from core.training.levers import check_env

    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "file"))
    with pytest.raises(StudioError, match="TORCHINDUCTOR_CACHE_DIR=.* is not a folder"):
        check_env()
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", " ")
    with pytest.raises(StudioError, match="TORCHINDUCTOR_CACHE_DIR is set but empty"):
        check_env()


def test_liger_kernel_field_is_validated():
    from core.training.config import TrainConfig

    cfg = TrainConfig(dataset=str(KEYS), liger_kernel="fast")
    with pytest.raises(StudioError, match="liger_kernel") as e:
        cfg.validate(CPU_ONLY)
    assert "auto, on, off" in e.value.hint
    with pytest.raises(StudioError, match="needs a CUDA GPU"):
        TrainConfig(dataset=str(KEYS), liger_kernel="on").validate(CPU_ONLY)
    with pytest.raises(StudioError, match="not installed"):
        TrainConfig(dataset=str(KEYS), model_id="google/gemma-3-4b-it", liger_kernel="on").validate(GPU)
    with pytest.raises(StudioError, match="not to backend=unsloth"):
        TrainConfig(dataset=str(KEYS), liger_kernel="on", backend="unsloth").validate(GPU)
    liger_gpu = Hardware(**{**GPU.__dict__, "liger": True})
    assert TrainConfig(model_id="google/gemma-3-4b-it").resolved_liger(liger_gpu, "hf") is False  # off until measured
    auto = TrainConfig(model_id="google/gemma-3-4b-it", liger_kernel="auto")
    assert auto.resolved_liger(liger_gpu, "hf") is True  # auto, Gemma 3, CUDA
    assert auto.resolved_liger(GPU, "hf") is False      # not installed
    assert auto.resolved_liger(liger_gpu, "unsloth") is False
    assert auto.resolved_liger(CPU_ONLY, "hf") is False
    assert TrainConfig(model_id="google/gemma-3-4b-it", liger_kernel="on").resolved_backend(liger_gpu) == "hf"
    from studio.planner_logic import backend_note  # the Train tab says it before the start

    assert "on 1x H200 (139 GB) · Liger kernels on" in backend_note(
        TrainConfig(model_id="google/gemma-3-4b-it", use_dora=True, liger_kernel="auto"), liger_gpu, 1)


def _started_env(monkeypatch, cfg, ws):
    """The environment start_run_subprocess gives the job (the process itself is not started)."""
    from core.training import hardware, runs

    seen = {}

    class FakePopen:
        def __init__(self, cmd, env=None, **kw):
            seen.update(env=env, cmd=cmd)
            self.pid = 999999

    monkeypatch.setattr(hardware, "_cached", GPU)
    monkeypatch.setattr(runs.subprocess, "Popen", FakePopen)
    run = runs.create_run(cfg, ws, check=False)
    runs.start_run_subprocess(run)
    return seen["env"], run


def test_unsloth_jobs_get_compile_caches_in_the_workspace(monkeypatch, workspace):
    from core.training.config import TrainConfig

    env, _ = _started_env(monkeypatch, TrainConfig(dataset=str(KEYS), model_id="google/gemma-3-4b-it", load_in_4bit=True), workspace)
    cache = workspace.resolve() / "cache"  # backend=auto on a GPU with unsloth -> Unsloth
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(cache / "inductor")
    assert env["UNSLOTH_COMPILE_LOCATION"] == str(cache / "unsloth_compiled")
    assert env["UNSLOTH_MEGA_CACHE_DIR"] == str(cache / "unsloth_mega")
    for folder in (*(env[name] for name in CACHE_VARS), cache):  # owner-only (Unsloth's mega-cache
        assert os.stat(folder).st_mode & 0o077 == 0                  # refuses one others can write)
    from core.training.speed_path import _torch_default

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", _torch_default())  # torch's own default, not a choice
    env, _ = _started_env(monkeypatch, TrainConfig(dataset=str(KEYS), model_id="google/gemma-3-4b-it"), workspace)
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(cache / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/mine")  # the user's own choice stays
    env, _ = _started_env(monkeypatch, TrainConfig(dataset=str(KEYS), model_id="google/gemma-3-4b-it", backend="unsloth"),
                          workspace)
    assert env["TORCHINDUCTOR_CACHE_DIR"] == "/mine" and env["UNSLOTH_COMPILE_LOCATION"].startswith(str(cache))


def test_hf_jobs_get_no_compile_cache_variables(monkeypatch, workspace):
    from core.training.config import TrainConfig

    env, _ = _started_env(monkeypatch, TrainConfig(dataset=str(KEYS), model_id="google/gemma-3-4b-it", backend="hf"), workspace)
    assert not any(name in env for name in CACHE_VARS)
    assert not (workspace / "cache").exists()


def test_cache_state_and_the_unsloth_path_line(tmp_path):
    from core.training.config import TrainConfig
    from core.training.speed_path import cache_state, describe

    env = {name: str(tmp_path / name) for name in CACHE_VARS}
    for d in env.values():
        os.makedirs(d)
    cfg = TrainConfig()
    assert cache_state(env) == "cold"
    assert describe(cfg, "unsloth", None, False, env)["message"] == "backend: unsloth, compiled, cache cold"
    (tmp_path / "UNSLOTH_MEGA_CACHE_DIR" / "megacache.bin").write_bytes(b"x")
    assert describe(cfg, "unsloth", None, False, env)["message"] == "backend: unsloth, compiled, cache warm"
    off = describe(cfg, "unsloth", None, False, {**env, "UNSLOTH_COMPILE_DISABLE": "1"})
    assert off["message"] == "backend: unsloth, not compiled"


def test_hf_run_says_its_path_and_has_no_compile_phase(workspace):
    """A real (1-step) DoRA run of the demo model on CPU: the event names the hf path and its fused layers."""
    from core.training.config import default_config
    from core.training.job import run_job
    from core.training.runs import create_run

    cfg = default_config("demo", CPU_ONLY, dataset=str(KEYS), task="keys", method="lora", use_dora=True,
                         max_steps=1, batch_size=1, save_steps=100, eval_split="", max_seq_length=256)
    run = create_run(cfg, run_id="path-hf")
    assert run_job(run, progress=False) == 0, last_of(read_events(run), "end")
    events = read_events(run)
    path = next(e for e in events if e.get("path"))
    assert path["path"] == "hf" and path["liger"] is False and path["fused_layers"] > 0
    assert path["message"] == f"backend: hf (transformers + PEFT), fused DoRA layers ({path['fused_layers']}), liger off"
    phases = [e["phase"] for e in events if e.get("phase")]
    assert phases == ["loading_model", "training", "saving"]  # no compiling phase: nothing compiles


def test_a_bad_lever_fails_the_job_with_an_end_event(workspace, monkeypatch):
    from core.training.config import default_config
    from core.training.job import run_job
    from core.training.runs import create_run

    run = create_run(default_config("demo", CPU_ONLY, dataset=str(KEYS), max_steps=1), run_id="bad-lever")
    monkeypatch.setenv("FAST_DORA", "fast")
    assert run_job(run, progress=False) == 2
    end = last_of(read_events(run), "end")
    assert end["status"] == "failed" and "FAST_DORA='fast'" in end["error"] and "0, off" in end["hint"]


def test_compile_phase_ends_at_the_first_micro_batch(tmp_path):
    from core.training.callbacks import EventsCallback, StopFlag

    writer = EventWriter(tmp_path, enabled=True)
    cb = EventsCallback(writer, StopFlag(tmp_path), {}, "cpu")
    cb.compiling_since = 0.0  # set by the job when the backend compiles
    cb.on_substep_end(None, None, None)
    cb.on_substep_end(None, None, None)
    done = [e for e in read_events(tmp_path) if e.get("phase")]
    assert len(done) == 1 and done[0]["phase"] == "training" and done[0]["compile_s"] > 0


def test_train_tab_shows_compiling_as_its_own_phase():
    from studio.train_logic import path_text, phase_text, status_html

    events = [{"type": "info", "phase": "loading_model", "time": 100.0},
              {"type": "info", "path": "unsloth", "message": "backend: unsloth, compiled, cache cold", "time": 130.0},
              {"type": "info", "phase": "compiling", "message": "compiling, first run only", "time": 131.0},
              {"type": "start", "max_steps": 60, "time": 132.0}]
    st = {"status": "running", "run_id": "r", "max_steps": 60, "device": "1x H200 (139 GB)", "backend": "unsloth"}
    assert phase_text("running", events, now=214.0) == "compiling, first run only · 83 s"
    html = status_html(st, events, now=214.0)
    assert "compiling, first run only · 83 s" in html and "backend: unsloth, compiled, cache cold" in html
    events.append({"type": "info", "phase": "training", "compile_s": 84.2, "time": 215.2})
    assert phase_text("running", events, now=300.0) is None  # the step counter speaks now
    assert path_text(events) == "backend: unsloth, compiled, cache cold · first step compiled in 84 s"
    assert phase_text("completed", events[:3], now=300.0) is None
    resumed = events + [{"type": "info", "path": "unsloth", "message": "backend: unsloth, compiled, cache warm"}]
    assert path_text(resumed) == "backend: unsloth, compiled, cache warm"  # the earlier job's compile is not this one's


def test_liger_auto_trains_without_kernels_it_cannot_apply_and_on_fails_clearly():
    from torch import nn

    from core.training.backend_hf import apply_liger

    notes: list[str] = []
    assert apply_liger(nn.Linear(2, 2), required=False, notes=notes) is False  # not Gemma 3 / no Triton here
    assert notes and notes[-1].startswith("Liger's kernels could not be applied (")
    with pytest.raises(StudioError, match="Liger's kernels could not be applied") as e:
        apply_liger(nn.Linear(2, 2), required=True, notes=[])
    assert "liger_kernel=auto" in e.value.hint
