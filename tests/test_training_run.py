"""Real training runs of the offline demo model on the demo keys dataset, on CPU (small budgets)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.training.events import last_of, read_events

ROOT = Path(__file__).resolve().parent.parent
KEYS = ROOT / "assets" / "demo" / "keys"


@pytest.fixture(autouse=True)
def _one_thread():
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _types(events):
    return [e["type"] for e in events]


def test_cli_full_finetune_loss_falls(workspace, tmp_path):
    """python -m core train --dataset ... --set method=full ...: a full fine-tune of the demo base learns."""
    from core.__main__ import main

    run = tmp_path / "run"
    code = main(["train", "--dataset", str(KEYS), "--out", str(run), "--no-progress", "--set", "method=full",
                 "--set", "max_steps=14", "--set", "batch_size=4", "--set", "logging_steps=1",
                 "--set", "save_steps=100", "--set", "warmup_ratio=0", "--set", "learning_rate=2e-3"])
    events = read_events(run)
    assert code == 0, last_of(events, "end")
    types = _types(events)
    assert types.index("start") < types.index("log") < types.index("end")
    start, end = last_of(events, "start"), last_of(events, "end")
    assert end["status"] == "completed" and end["step"] == 14
    assert start["backend"] == "hf" and start["trainable_params"] > 0 and start["config_hash"]
    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs] == list(range(1, 15))
    for key in ("loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s", "rss_gb", "eta_s", "truncated"):
        assert key in logs[-1], key
    first = sum(e["loss"] for e in logs[:3]) / 3
    last = sum(e["loss"] for e in logs[-3:]) / 3
    assert last < first - 0.5, (first, last)
    assert "eval" in types  # the demo dataset has a val split: evaluated once at the end
    assert json.loads((run / "backend.json").read_text())["backend"] == "hf"
    assert any((run / "tb").iterdir())

    from transformers import AutoModelForImageTextToText
    model = AutoModelForImageTextToText.from_pretrained(run / "model")
    assert sum(p.numel() for p in model.parameters()) == start["total_params"]


def test_stop_then_resume_continues_and_adapter_loads(workspace, tmp_path, wait_for_event):
    """The UI path: a detached job, a STOP file, then --resume from the checkpoint it saved."""
    from core.training.config import default_config
    from core.training.hardware import CPU_ONLY
    from core.training.job import run_job
    from core.training.runs import create_run, list_runs, run_status, start_run_subprocess, stop_run

    cfg = default_config("demo", CPU_ONLY, dataset=str(KEYS), task="keys", method="lora", learning_rate=5e-3,
                         max_steps=60, batch_size=2, logging_steps=1, save_steps=100, eval_split="")
    run = create_run(cfg, run_id="stop-resume")
    assert run.parent == workspace / "runs" and run_status(run)["status"] == "created"

    proc = start_run_subprocess(run)
    try:
        wait_for_event(run, proc, lambda e: e["type"] == "log" and e["step"] >= 2, 240)
        assert run_status(run)["status"] == "running"
        stop_run(run)
        assert proc.wait(timeout=180) == 0, (run / "log.txt").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    # the job's log (the Train tab's tail) carries no FutureWarning of transformers about PEFT (issue 27)
    assert "is_gradient_checkpointing" not in (run / "log.txt").read_text()
    events = read_events(run)
    end = last_of(events, "end")
    assert end["status"] == "stopped" and end["stopped_by"] == "STOP file", end
    stopped_at = end["step"]
    assert 2 <= stopped_at < 60
    ckpt = last_of(events, "checkpoint")
    assert ckpt["step"] == stopped_at and Path(ckpt["path"]).is_dir()
    assert run_status(run)["status"] == "stopped"

    assert run_job(run, resume=True, progress=False) == 0
    events = read_events(run)
    start, end = last_of(events, "start"), last_of(events, "end")
    assert start["resumed_from_step"] == stopped_at
    assert end["status"] == "completed" and end["step"] == 60
    resumed_logs = [e["step"] for e in events[events.index(start):] if e["type"] == "log"]
    assert resumed_logs == list(range(stopped_at + 1, 61))
    # the LR schedule continues too: linear decay means lr keeps falling from where it stopped
    lrs = [e["lr"] for e in events if e["type"] == "log"]
    assert lrs[-1] < lrs[stopped_at - 1]
    status = run_status(run)
    assert status["status"] == "completed" and status["has_adapter"]
    assert [r["run_id"] for r in list_runs()] == ["stop-resume"]

    from peft import PeftModel
    from core import models
    base = models.load_model("demo", device="cpu")
    model = PeftModel.from_pretrained(base, run / "adapter")
    assert any("lora_A" in n for n, _ in model.named_parameters())
    cfg_json = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert cfg_json["peft_type"] == "LORA" and cfg_json["r"] == cfg.lora_r


def test_failures_end_with_a_failed_event(workspace, tmp_path):
    from core.errors import StudioError
    from core.training.config import default_config
    from core.training.hardware import CPU_ONLY
    from core.training.job import run_job
    from core.training.runs import create_run

    cfg = default_config("demo", CPU_ONLY, dataset=str(KEYS), max_steps=2, max_seq_length=20)
    run = create_run(cfg, run_id="too-short")
    assert run_job(run, progress=False) == 2
    end = last_of(read_events(run), "end")
    assert end["status"] == "failed" and "max_seq_length" in end["error"] and "Raise max_seq_length" in end["hint"]

    cfg = default_config("demo", CPU_ONLY, dataset=str(tmp_path / "nope"), max_steps=2)
    with pytest.raises(StudioError, match="not a dataset"):
        create_run(cfg, run_id="refused")  # checked before launch: no folder is left behind
    assert not (workspace / "runs" / "refused").exists()
    run = create_run(cfg, run_id="no-dataset", check=False)  # e.g. the dataset moved after creation
    assert run_job(run, progress=False) == 2
    assert last_of(read_events(run), "end")["status"] == "failed"

    cfg = default_config("demo", CPU_ONLY, dataset=str(KEYS), max_steps=2)
    run = create_run(cfg, run_id="nothing-to-resume")
    assert run_job(run, resume=True, progress=False) == 2
    assert "no checkpoint" in last_of(read_events(run), "end")["error"]


def test_target_modules_follow_the_switches(workspace):
    import re

    from core import models
    from core.errors import StudioError
    from core.training.config import TrainConfig
    from core.training.targets import select_modules, target_regex

    model = models.load_model("demo", device="cpu")
    names = select_modules(model, TrainConfig())
    assert names and all("language_model" in n for n in names)
    assert {n.rsplit(".", 1)[-1] for n in names} == {"q_proj", "k_proj", "v_proj", "o_proj",
                                                      "gate_proj", "up_proj", "down_proj"}
    both = select_modules(model, TrainConfig(finetune_vision_layers=True))
    assert any("vision_tower" in n for n in both) and set(names) < set(both)
    attn = select_modules(model, TrainConfig(finetune_mlp_modules=False))
    assert attn and all("self_attn" in n for n in attn)
    only = select_modules(model, TrainConfig(target_modules=["q_proj", "v_proj"]))
    assert {n.rsplit(".", 1)[-1] for n in only} == {"q_proj", "v_proj"}
    regex = target_regex(model, TrainConfig())
    all_names = [n for n, _ in model.named_modules()]
    assert sorted(n for n in all_names if re.fullmatch(regex, n)) == sorted(names)
    with pytest.raises(StudioError, match="No layer"):
        select_modules(model, TrainConfig(target_modules=["qkv_fused"]))


def test_collator_trains_on_the_answer_only_and_counts_truncation(workspace):
    """TRL's prompt/completion collation: prompt, image tokens and padding are out of the loss."""
    from core import models
    from core.dataset import Dataset
    from core.errors import StudioError
    from core.training.data import CountingVisionCollator, VisionExamples

    processor = models.load_processor("demo")
    ds = Dataset.open(KEYS)
    examples = VisionExamples(ds, ds.task, "train", 96)
    batch_in = [examples[i] for i in range(3)]
    targets = [ex["completion"][0]["content"] for ex in batch_in]
    collator = CountingVisionCollator(processor=processor, max_length=1024, completion_only_loss=True)
    out = collator([dict(ex) for ex in batch_in])
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image_soft_token>")
    assert (out["input_ids"] == image_id).sum() == 3 * 36  # the image really is in the input...
    for row in range(3):
        labels = out["labels"][row]
        trained = labels[labels != -100].tolist()
        assert image_id not in trained  # ...but never in the loss
        assert tok.decode(trained).strip() == targets[row] + "<end_of_turn>"
    pads = out["attention_mask"] == 0
    assert pads.any() and (out["labels"][pads] == -100).all()
    assert collator.stats.truncated == 0

    longest = int(out["attention_mask"].sum(1).max())
    short = CountingVisionCollator(processor=processor, max_length=longest - 2, completion_only_loss=True)
    cut = short([dict(ex) for ex in batch_in])
    assert cut["input_ids"].shape[1] == longest - 2 and short.stats.truncated >= 1
    with pytest.raises(StudioError, match="image tokens"):
        CountingVisionCollator(processor=processor, max_length=30, completion_only_loss=True)(
            [dict(ex) for ex in batch_in])


def test_data_workers_train_the_same_and_count_truncation(workspace, monkeypatch):
    """Collating in worker processes (the GPU default) trains on the same batches in the same order,
    and the truncation the workers count reaches the end event."""
    from core import models
    from core.dataset import Dataset
    from core.training.config import default_config
    from core.training.data import CountingVisionCollator, VisionExamples
    from core.training.hardware import CPU_ONLY
    from core.training.job import run_job
    from core.training.runs import create_run

    processor = models.load_processor("demo")
    ds = Dataset.open(KEYS)
    examples = VisionExamples(ds, ds.task, "train", 96)
    out = CountingVisionCollator(processor=processor, completion_only_loss=True)([examples[i] for i in range(8)])
    lengths = out["attention_mask"].sum(1)
    limit = int(lengths.max()) - 3  # cuts the longest answers, never a prompt

    ends, losses = {}, {}
    for workers in ("0", "2"):
        monkeypatch.setenv("TRINITY_DATA_WORKERS", workers)
        cfg = default_config("demo", CPU_ONLY, dataset=str(KEYS), task="keys", method="lora", max_steps=4,
                             batch_size=2, logging_steps=1, save_steps=100, eval_split="",
                             max_seq_length=limit, lora_dropout=0.0)
        run = create_run(cfg, run_id=f"workers-{workers}")
        assert run_job(run, progress=False) == 0, last_of(read_events(run), "end")
        ends[workers] = last_of(read_events(run), "end")
        losses[workers] = [e["loss"] for e in read_events(run) if e["type"] == "log"]
    assert losses["0"] == pytest.approx(losses["2"], rel=1e-5)
    t0, t2 = ends["0"]["truncation"], ends["2"]["truncation"]
    # workers prefetch ahead of the trainer, so they may have collated more examples by the end
    assert t2["examples_seen"] >= t0["examples_seen"] >= 8
    assert t2["longest_tokens"] == t0["longest_tokens"] > limit
    assert t2["truncated"] >= t0["truncated"] >= 1
