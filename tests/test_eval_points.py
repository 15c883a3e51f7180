"""Issue 27 item 10: eval loss is computed periodically by default, about 10 points per run
(eval_steps -1, derived from the run's steps; 0 = only at the end; N = every N steps), and the Train
tab's loss plot offers a log scale and smoothing."""
from __future__ import annotations

import io

import pytest

from core.errors import StudioError
from core.training.config import EVAL_POINTS, TrainConfig, help_text
from core.training.hardware import CPU_ONLY


def test_eval_steps_default_is_about_ten_points_per_run():
    cfg = TrainConfig(dataset="/d", max_steps=300)
    assert cfg.eval_steps == -1 and EVAL_POINTS == 10
    assert cfg.resolved_eval_steps(cfg.planned_steps(100)) == 30
    assert TrainConfig(max_steps=25).resolved_eval_steps(25) == 3  # 3, 6, ... 24, and the end
    assert TrainConfig(max_steps=5).resolved_eval_steps(5) == 1
    # epochs: 40 examples, batch 2 x accum 4 -> 5 steps an epoch, 2 epochs -> 10 steps -> every step
    by_epochs = TrainConfig(max_steps=-1, num_epochs=2, batch_size=2, gradient_accumulation_steps=4)
    assert by_epochs.planned_steps(40) == 10 and by_epochs.resolved_eval_steps(10) == 1
    assert by_epochs.planned_steps(400) == 100 and by_epochs.resolved_eval_steps(100) == 10
    assert TrainConfig(eval_steps=0).resolved_eval_steps(300) is None   # only at the end
    assert TrainConfig(eval_steps=25).resolved_eval_steps(300) == 25    # explicit
    with pytest.raises(StudioError, match="eval_steps"):
        TrainConfig(dataset="/d", eval_steps=-2).validate(CPU_ONLY)
    assert "-1 = about 10 times" in help_text("eval_steps") and "0 = only at the end" in help_text("eval_steps")


def test_the_trainer_gets_the_resolved_steps(tmp_path):
    from core.training.job import sft_args

    def args(**kw):
        cfg = TrainConfig(dataset="/d", max_steps=20, **kw)
        return sft_args(cfg, CPU_ONLY, tmp_path, "fp32", True, {}, n_train=8)

    a = args()
    assert (a.eval_strategy, a.eval_steps) == ("steps", 2)
    assert args(eval_steps=0).eval_strategy == "no"
    assert args(eval_steps=7).eval_steps == 7
    cfg = TrainConfig(dataset="/d", max_steps=20)
    assert sft_args(cfg, CPU_ONLY, tmp_path, "fp32", False, {}, n_train=8).eval_strategy == "no"  # no val split


def test_a_run_logs_ten_eval_points_by_default(demo_model_path, tmp_path, monkeypatch):
    import torch

    from core.dataset import Dataset
    from core.training.config import default_config
    from core.training.events import read_events
    from core.training.job import run_job
    from core.training.runs import create_run
    from tests.conftest import key_image

    monkeypatch.setenv("TRINITY_WORKSPACE", str(tmp_path / "ws"))
    ds = Dataset.create(tmp_path / "keys", "keys")
    fields = {"keyway": "SC1", "bitting": [1, 2, 5, 3, 7], "brand": "Schlage"}
    for i, shade in enumerate((40, 90, 140, 190, 230, 60)):
        buf = io.BytesIO()
        key_image(shade).save(buf, "PNG")
        rec, _ = ds.add_image(buf.getvalue(), fields=fields)
        ds.save_record({**rec, "split": "val" if i >= 4 else "train"})
    cfg = default_config(str(demo_model_path), CPU_ONLY, dataset=str(ds.path), task="keys", max_steps=20,
                         batch_size=2, gradient_accumulation_steps=1, save_steps=10_000, logging_steps=5,
                         gradient_checkpointing=False)
    assert cfg.eval_steps == -1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = create_run(cfg, run_dir=tmp_path / "run")
        assert run_job(run, progress=False) == 0
    finally:
        torch.set_num_threads(threads)
    events = read_events(run)
    evals = [e["step"] for e in events if e.get("type") == "eval"]
    assert evals == list(range(2, 21, 2)) and all(e.get("eval_loss") is not None for e in events if e.get("type") == "eval")
    start = next(e for e in events if e.get("type") == "start")
    assert start.get("eval_steps") == 2


def test_loss_plot_log_scale_and_smoothing():
    from studio.plots import loss_figure, smooth

    events = [{"type": "log", "step": s, "loss": 2.0 / s} for s in range(1, 51)] + [
        {"type": "eval", "step": 25, "eval_loss": 0.2}]
    plain = loss_figure(events)
    assert [t.name for t in plain.data] == ["train loss", "eval loss"] and plain.layout.yaxis.type in (None, "linear", "-")
    fig = loss_figure(events, log_scale=True, smoothing=0.6)
    assert fig.layout.yaxis.type == "log" and "log scale" in fig.layout.yaxis.title.text
    raw, smoothed, ev = fig.data
    assert raw.name == "train loss (raw)" and raw.opacity == 0.3 and "smoothed 0.60" in smoothed.name
    assert list(smoothed.y) == pytest.approx(smooth([2.0 / s for s in range(1, 51)], 0.6))
    assert smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # debiased: a constant stays itself
    assert smooth([4.0, 0.0], 0.5) == pytest.approx([4.0, 4.0 / 3])


def test_the_live_loss_plot_keeps_the_log_scale_the_user_chose(tmp_path):
    """The Train tab's timer redraws the loss plot with the checkbox's value: a run with a log tail
    stays on a linear axis until Log scale is ticked (the tail's text once stood in for the tick)."""
    import json

    import gradio as gr

    from studio.common import make_state
    from studio.tabs import train

    state = make_state(tmp_path / "ws")
    run = state.workspace / "runs" / "r1"
    run.mkdir(parents=True)
    events = [{"type": "start", "time": 1.0, "max_steps": 20}] + [
        {"type": "log", "time": 1.0 + s, "step": s, "loss": 2.0 / s} for s in range(1, 21)] + [
        {"type": "end", "time": 30.0, "status": "completed"}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    (run / "log.txt").write_text("step 20 loss 0.1\n", encoding="utf-8")
    with gr.Blocks():
        tab = train.build(state, {"dataset": gr.Dropdown([], value=None)})
    budget = tab["budget"].value
    linear = tab["tick"](str(run), budget, {}, False, 0.0)
    assert linear[1].layout.yaxis.type in (None, "linear", "-") and "step 20" in linear[5]
    log = tab["tick"](str(run), budget, {}, True, 0.0)
    assert log[1].layout.yaxis.type == "log"
