"""Multi-process (data-parallel) training through `accelerate launch`, on CPU over gloo.

No GPU is needed: `--multi_gpu --num_processes 2` starts two torchrun ranks that train the offline
demo model on CPU. What a GPU machine adds (NCCL, per-GPU memory, FSDP sharding, speed) is in
bench/multigpu_scaling.py and bench/RESULTS.md.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from core.errors import StudioError
from core.training.events import last_of, read_events

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "assets" / "demo" / "keys"


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch):
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # each rank: one thread (2 shared cores)
    yield
    torch.set_num_threads(before)


def _config(model_path, **overrides):
    from core.training.config import default_config
    from core.training.hardware import CPU_ONLY

    values = dict(dataset=str(KEYS), task="keys", method="full", batch_size=2, logging_steps=1, save_steps=100,
                  learning_rate=2e-3, warmup_ratio=0, eval_split="")
    cfg = default_config("demo", CPU_ONLY, **{**values, **overrides})
    cfg.model_id = str(model_path)
    return cfg


def _segments(events):
    """The events of each launch: a new segment starts at each 'loading_model' info event."""
    out = []
    for e in events:
        if e["type"] == "info" and e.get("phase") == "loading_model":
            out.append([])
        out[-1].append(e)
    return out


# ------------------------------------------------------------------------- the command line
def test_job_command_for_n_gpus(tmp_path):
    from accelerate.commands.launch import launch_command_parser

    from core.training.runs import FSDP_FILE, job_command, write_fsdp_config

    run = tmp_path / "run"
    run.mkdir()
    assert job_command(run, False, 1) == [sys.executable, "-m", "core", "train", "--run", str(run)]

    cmd = job_command(run, True, 4)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])  # accelerate's own parser reads it as meant
    assert args.multi_gpu and not args.use_fsdp and args.num_processes == 4 and args.num_machines == 1
    assert args.module and args.training_script == "core"
    assert args.training_script_args == ["train", "--run", str(run), "--resume"]
    assert args.mixed_precision == "no" and args.main_process_port == 0  # a free port per launch

    with pytest.raises(StudioError):
        write_fsdp_config(run, 1)
    write_fsdp_config(run, 4)
    import yaml
    fsdp = yaml.safe_load((run / FSDP_FILE).read_text())
    assert fsdp["distributed_type"] == "FSDP" and fsdp["fsdp_config"]["fsdp_version"] == 2
    assert fsdp["fsdp_config"]["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    args = launch_command_parser().parse_args(job_command(run, False, 4)[3:])
    assert args.config_file == str(run / FSDP_FILE) and not args.multi_gpu
    assert args.training_script_args == ["train", "--run", str(run)]


def test_cli_gpus_flag_is_checked_against_the_machine(workspace, tmp_path, demo_model_path, capsys):
    from core.__main__ import main
    from core.training.runs import create_run

    run = create_run(_config(demo_model_path, max_steps=2), run_dir=tmp_path / "run")
    assert main(["train", "--run", str(run), "--gpus", "2"]) == 2  # this CPU machine has no GPU
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--num_processes 2" in err
    assert main(["train", "--run", str(run), "--fsdp"]) == 2
    assert "--fsdp shards the model" in capsys.readouterr().err
    assert read_events(run) == []  # nothing started


def test_unsloth_falls_back_to_hf_on_several_gpus():
    from core.training.hardware import Hardware
    from core.training.job import choose_backend

    two = Hardware(cuda=True, gpu_count=2, gpu_name="GPU", vram_gb=80, bf16=True, bitsandbytes=True, unsloth=True)
    cfg = _config("demo", method="lora", train_answer_tokens=False)  # the demo recipe's tokens keep it on hf
    cfg.model_id = "demo"
    assert choose_backend(cfg, two, world=1) == ("unsloth", None)
    cfg.gpus = 2
    backend, note = choose_backend(cfg, two, world=2)
    assert backend == "hf" and "Unsloth" in note and "one GPU" in note
    cfg.gpus, cfg.backend = 1, "unsloth"
    with pytest.raises(StudioError):
        choose_backend(cfg, two, world=2)  # forced Unsloth launched on 2 processes by hand


# ------------------------------------------------------------------------- real 2-rank runs
def test_two_ranks_train_stop_on_sigterm_and_resume(workspace, tmp_path, demo_model_path, wait_for_event):
    """2 ranks over gloo: one events file, one start/end per launch, global batch = 2 x per-device,
    per-rank memory, SIGTERM to the launcher stops both ranks at one checkpoint, resume continues."""
    from core.training.runs import create_run, run_status, start_run_subprocess

    run = create_run(_config(demo_model_path, max_steps=24), run_dir=tmp_path / "run")
    proc = start_run_subprocess(run, gpus=2)
    try:
        wait_for_event(run, proc, lambda e: e["type"] == "log" and e["step"] >= 3, 150)
        assert run_status(run)["status"] == "running", (run / "log.txt").read_text()[-3000:]
        os.kill(proc.pid, signal.SIGTERM)  # the launcher; torchrun forwards it to both ranks
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    end = last_of(read_events(run), "end")
    assert end and end["status"] == "stopped" and end["stopped_by"] == "SIGTERM", (run / "log.txt").read_text()[-3000:]
    stopped_at = end["step"]
    assert 3 <= stopped_at < 24 and (run / "checkpoints" / f"checkpoint-{stopped_at}").is_dir()

    proc = start_run_subprocess(run, resume=True, gpus=2)
    assert proc.wait(timeout=180) == 0, (run / "log.txt").read_text()[-3000:]

    assert [p.relative_to(run) for p in run.rglob("events.jsonl")] == [Path("events.jsonl")]
    events = read_events(run)
    first, second = _segments(events)
    for seg in (first, second):
        assert [e["type"] for e in seg].count("start") == 1 and [e["type"] for e in seg].count("end") == 1
    start, end = last_of(second, "start"), last_of(second, "end")
    assert start["world_size"] == 2 and start["accelerate"] == "MULTI_CPU" and start["distributed"] == "ddp"
    assert start["global_batch"] == 2 * start["per_device_batch"] * start["gradient_accumulation_steps"] == 4
    assert start["resumed_from_step"] == stopped_at
    assert end["status"] == "completed" and end["step"] == 24
    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs] == list(range(1, 25))
    assert all(len(e["rss_gb_per_rank"]) == 2 and all(v > 0 for v in e["rss_gb_per_rank"]) for e in logs)
    assert len(end["rss_gb_per_rank"]) == 2
    # loss falls, and the resumed run starts from the checkpoint's weights, not the base model's
    resumed = [e for e in second if e["type"] == "log"]
    assert resumed[0]["loss"] < logs[0]["loss"] - 0.5, (logs[0]["loss"], resumed[0]["loss"])
    assert sum(e["loss"] for e in logs[-3:]) / 3 < sum(e["loss"] for e in logs[:3]) / 3 - 1.0
    # rank 0 alone wrote the outputs: one model folder, one TensorBoard file per launch
    outputs = sorted(p.name for p in run.iterdir() if p.name in ("model", "adapter") or p.name.endswith(".tmp"))
    assert outputs == ["model"] and (run / "model" / "model.safetensors").is_file()
    assert len(list((run / "tb").rglob("events.out.tfevents.*"))) == 2
    ckpt = run / "checkpoints" / "checkpoint-24"
    assert (ckpt / "rng_state_0.pth").is_file() and (ckpt / "rng_state_1.pth").is_file()


def test_fsdp_launch_on_cpu_runs_data_parallel_and_says_so(workspace, tmp_path, demo_model_path):
    """The FSDP config path launches and trains, but accelerate 1.15 turns FSDP on only for GPU
    process groups: on CPU/gloo the ranks run plain DDP, and an info event says so. The LoRA
    adapter is the standard PEFT format (same keys and shapes as a single-process PEFT model, the demo
    recipe's trained answer tokens included)."""
    import torch
    from peft import get_peft_model, get_peft_model_state_dict
    from safetensors.torch import load_file

    from core import models
    from core.training.backend_hf import lora_config
    from core.training.data import answer_token_ids
    from core.training.runs import create_run, start_run_subprocess, write_fsdp_config

    cfg = _config(demo_model_path, method="lora", max_steps=3)
    run = create_run(cfg, run_dir=tmp_path / "run")
    write_fsdp_config(run, 2)
    proc = start_run_subprocess(run, gpus=2)
    assert proc.wait(timeout=180) == 0, (run / "log.txt").read_text()[-3000:]
    events = read_events(run)
    assert [e["type"] for e in events].count("end") == 1 and last_of(events, "end")["status"] == "completed"
    start = last_of(events, "start")
    assert start["distributed"] == "fsdp" and start["accelerate"] == "MULTI_CPU"
    assert any("FSDP was requested" in e.get("message", "") for e in events if e["type"] == "info")

    saved = load_file(run / "adapter" / "adapter_model.safetensors")
    base = models.load_model(str(demo_model_path), device="cpu")
    assert cfg.train_answer_tokens
    tokens = answer_token_ids(cfg, models.load_processor(str(demo_model_path)))
    expected = get_peft_model_state_dict(get_peft_model(base, lora_config(cfg, base, tokens)))
    assert {k: tuple(v.shape) for k, v in saved.items()} == {k: tuple(v.shape) for k, v in expected.items()}
    assert all(torch.isfinite(v).all() for v in saved.values())
