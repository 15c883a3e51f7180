"""The studio against the engine: the memory gauge agrees with `python -m core plan`, the GPUs
control, the phone-app JSON builder, and Evaluate / Export on a real
(full fine-tune) demo run trained by the Train tab's own start()."""
from __future__ import annotations

import json
import time

import pytest
import torch

from core.errors import StudioError

torch.set_num_threads(1)
GHOST = "Ghost Architect (T4)"


@pytest.fixture
def state(workspace):
    from studio.common import make_state, seed_demo_datasets

    st = make_state(workspace)
    seed_demo_datasets(st)
    return st


def _cli_plan(capsys, *extra) -> dict:
    from core.__main__ import main

    assert main(["plan", "--preset", GHOST, "--gpu", "t4", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("seq,fits", [(1024, True), (2048, False)])
def test_gauge_agrees_with_the_plan_cli_for_the_seed_preset(state, capsys, seq, fits):
    """The knobs as the Train tab sends them (preset -> knob values -> config) give the CLI's number."""
    from studio import planner_logic as P
    from studio import train_logic as T

    vals = T.knob_values(T.preset_config(GHOST, None))
    vals["max_seq_length"] = seq
    cfg, _ = T.config_from_knobs(vals, "google/gemma-3-12b-it", str(state.datasets_dir / "ui2sql"), "ui2sql")
    html = P.planner_html(cfg, "t4")
    # both plan from the dataset's longest example (issue 19), and say so
    cli = _cli_plan(capsys, "--set", f"max_seq_length={seq}", "--dataset", cfg.dataset)
    assert f'data-peak="{cli["predicted_peak_gb"]:.3f}"' in html
    assert f'data-fits="{str(cli["fits"]).lower()}"' in html
    assert cli["sequence"]["source"] == "dataset" and f'data-tokens="{cli["sequence"]["tokens"]}"' in html
    assert _cli_plan(capsys, "--set", f"max_seq_length={seq}")["fits"] is fits  # every example max_seq_length long
    assert "14.75 GiB" in html and "CUDA context" in html and "frozen weights (nf4 4-bit)" in html
    if not cli["fits"]:  # the planner's advice, each with the peak it leads to
        assert cli["advice"] and all(a["change"].replace(">", "&gt;") in html for a in cli["advice"][:4])


def test_preset_note_quotes_the_measured_table():
    from studio.planner_logic import measured_rows, preset_note
    from core.training.config import preset

    rows = {r["train_config"]["max_seq_length"]: r["measured_peak_reserved_gb"] for r in measured_rows(preset(GHOST))}
    assert rows[1024] == pytest.approx(13.195, abs=0.01) and rows[2048] == pytest.approx(14.385, abs=0.01)
    note = preset_note(GHOST, "t4")
    assert "**Fits the T4 · 16 GB at 1024 tokens** (measured 13.20 GiB reserved" in note
    assert "**Does not fit the T4 · 16 GB at 2048 tokens** (measured 14.38 GiB" in note
    assert "Not measured" in preset_note("Keylike", "t4")
    big = preset_note(GHOST, "a100-40")
    assert "Fits the A100 · 40 GB at 2048 tokens" in big and "Does not fit" not in big


def test_a_cpu_machine_plans_for_itself_first():
    """Issue 27: on CPU the Train tab showed "T4 · 16 GB", a CUDA context and a GPU slider. This
    machine is the first budget; a GPU elsewhere can still be planned for."""
    from core.training.config import default_config, preset
    from core.training.hardware import Hardware
    from studio import planner_logic as P

    cpu = Hardware(cpu_count=2)
    choices = P.budget_choices(cpu)
    assert choices[0][1] == P.default_budget(cpu) == "cpu" and choices[0][0].startswith("This machine · CPU")
    assert ("T4 · 16 GB (a GPU elsewhere)", "t4") in choices
    gauge = P.planner_html(default_config("demo", cpu), "cpu")
    assert "CPU" in gauge and "CUDA" not in gauge and "T4" not in gauge
    assert P.usable_gib("cpu") is None
    assert "CUDA context" in P.planner_html(preset(GHOST), "t4")  # a GPU elsewhere: the full plan
    assert "Fits the T4 · 16 GB at 1024 tokens" in P.preset_note(GHOST, "cpu")  # a preset is a GPU recipe
    gpu = Hardware(cuda=True, gpu_count=1, gpu_name="T4", vram_gb=15)
    assert P.budget_choices(gpu) == P.GPU_BUDGETS and P.default_budget(gpu) == "t4"


def test_gpus_control_and_backend_note():
    from core.training.config import preset
    from core.training.hardware import Hardware
    from studio import planner_logic as P

    two = Hardware(cuda=True, gpu_count=2, gpu_name="H200", vram_gb=139, bitsandbytes=True, unsloth=True)
    assert P.gpu_control(two) == {"visible": True, "interactive": True, "maximum": 2, "info": P.gpu_control(two)["info"]}
    one, cpu = Hardware(cuda=True, gpu_count=1, gpu_name="T4", vram_gb=15), Hardware(cpu_count=2)
    assert not P.gpu_control(one)["interactive"] and "One GPU" in P.gpu_control(one)["info"]
    assert not P.gpu_control(cpu)["visible"]  # issue 27: no GPU slider on a CPU machine
    cfg = preset(GHOST, gpus=2)
    note = P.backend_note(cfg, two, 2)
    assert "<b>hf</b> on 2 GPUs" in note and "Unsloth" in note  # Unsloth falls back to HF on several GPUs
    assert "<b>unsloth</b>" in P.backend_note(preset(GHOST, use_dora=False), two, 1)  # one GPU, no DoRA
    forced = preset(GHOST, gpus=2, backend="unsloth")
    assert "ts-msg-err" in P.backend_note(forced, two, 2)


def test_start_passes_the_gpu_count(state, monkeypatch):
    from core.training import hardware, runs
    from studio import train_logic as T

    seen = {}
    monkeypatch.setattr(runs, "start_run_subprocess", lambda run_dir, resume=False, gpus=None: seen.update(
        run=run_dir, resume=resume, gpus=gpus))
    monkeypatch.setattr(hardware, "detect", lambda: hardware.Hardware(cuda=True, gpu_count=2, gpu_name="X",
                                                                      vram_gb=80, bitsandbytes=True))
    vals = T.knob_values(T.preset_config(None, "demo"))
    cfg, _ = T.config_from_knobs(vals, "demo", str(state.datasets_dir / "keys"), "keys", gpus=2)
    run = T.start(state, cfg)
    assert seen == {"run": run, "resume": False, "gpus": 2}
    assert json.loads((run / "config.json").read_text())["gpus"] == 2
    cfg, _ = T.config_from_knobs(vals, "demo", str(state.datasets_dir / "keys"), "keys", demo_mode=True, gpus=2)
    assert cfg.gpus == 1  # demo mode: one device


def test_phone_app_json_fields_catalog_figures_and_failures():
    """Compare's app JSON (compare_logic.payload, the keys route's own builder behind it): the fields,
    the catalog's figures, a keyway outside the catalog, an answer given as text only, a failed parse
    (that the REST route answers alike on a live server is test_studio_client's)."""
    from core.infer import Answer
    from core.tasks import get_task
    from core.tasks.base import Parsed
    from core.tasks.keys.app_json import KeysAnalysis
    from core.tasks.keys.catalog import FIGURE_KEYS, get_keyway
    from studio.compare_logic import payload

    def answer(text, confidence, parsed):
        return Answer(text=text, token_ids=[], token_probs=[], confidence=confidence, parsed=parsed)

    task = get_task("keys")
    text = "KEYWAY: KW1\nBITTING: 3,3,1,6,2\nBRAND: Kwikset"
    out = payload(answer(text, 0.7, task.parse(text)), task)
    assert set(out) == set(KeysAnalysis.model_fields) and out["success"] and out["error"] is None
    assert out["raw"] == text
    assert (out["keyway"], out["bitting"], out["brand"], out["confidence"]) == ("KW1", "3,3,1,6,2", "Kwikset", 0.7)
    assert {k: out[k] for k in FIGURE_KEYS} == get_keyway("KW1").api_figures()
    assert payload(answer(text, 0.5, None), task) == {**out, "confidence": 0.5}  # not parsed yet: parsed here
    odd = payload(answer("", 0.4, Parsed(ok=True, data={"keyway": "ZZ9", "bitting": [1, 2, 3], "brand": "Acme"})),
                  task)
    assert odd["success"] and odd["keyway"] == "ZZ9" and all(odd[k] is None for k in FIGURE_KEYS)  # not in the catalog
    bad = payload(answer("no key here", 0.1, task.parse("no key here")), task)
    assert bad["success"] is False and bad["error"].startswith("The model's answer did not parse")


# ---------------------------------------------------------------- a real demo run (full fine-tune)
@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Two steps of a full fine-tune of the demo model through the Train tab's start(): a subprocess, as in the UI."""
    import os

    from studio.common import make_state, seed_demo_datasets
    from studio import train_logic as T

    ws = tmp_path_factory.mktemp("studio-run") / "workspace"
    old = os.environ.get("TRINITY_WORKSPACE")
    st = make_state(ws)
    seed_demo_datasets(st)
    vals = {**T.knob_values(T.preset_config(None, "demo")), "method": "full", "max_steps": 2, "save_steps": 2,
            "logging_steps": 1}  # full fine-tune: the demo's default is LoRA, full stays an option
    cfg, _ = T.config_from_knobs(vals, "demo", str(st.datasets_dir / "keys"), "keys")
    run = T.start(st, cfg)
    deadline = time.time() + 240
    while time.time() < deadline and T.live(str(run))[0].get("status") in ("created", "running"):
        time.sleep(1)
    status = T.live(str(run))[0]
    assert status["status"] == "completed", (status, T.log_tail(run))
    yield st, run
    if old is None:
        os.environ.pop("TRINITY_WORKSPACE", None)
    else:
        os.environ["TRINITY_WORKSPACE"] = old


def test_evaluate_tab_scores_a_full_finetune_demo_run(demo_run):
    from studio.tabs.evaluate import run_eval, view

    st, run = demo_run
    assert (run / "model" / "config.json").is_file() and not (run / "adapter").exists()
    calls = []
    summary, rows = run_eval(str(run), "val", True, 2, progress=lambda d, t: calls.append((d, t)))
    assert len(rows) == 2 and calls and calls[-1][0] == calls[-1][1]
    assert "keyway" in summary and "base" in summary.lower()
    assert view(str(run), "val") == (summary, rows)  # reopening the run shows the saved results
    assert (run / "eval" / "val.summary.json").is_file() and (run / "eval" / "val.jsonl").is_file()


def test_export_tab_follows_the_run_kind(demo_run):
    import zipfile

    from studio.tabs.export import FORMATS, do_export, formats_for, free_folder

    st, run = demo_run
    choices, value, note = formats_for(str(run))
    assert value == "merged" and ("LoRA adapter (PEFT)", "adapter") not in choices and "full fine-tune" in note
    with pytest.raises(StudioError, match="no adapter"):
        do_export(str(run), "adapter", None, False)
    steps = []
    res, archive = do_export(str(run), "merged", None, False, progress=lambda f, m: steps.append(m))
    assert res["run_kind"] == "full" and (run / "export" / "merged" / "config.json").is_file() and steps
    assert res["verdict"]["status"] == "written" and archive.name == "merged.zip"
    with zipfile.ZipFile(archive) as zf:
        assert "merged/config.json" in zf.namelist() and "merged/model.safetensors" in zf.namelist()
    # the same export again goes to a free folder instead of failing with "already exists"
    assert free_folder(str(run), "merged") == "merged-2"
    again, _ = do_export(str(run), "merged", None, False)
    assert again["out_dir"].endswith("merged-2")
    with pytest.raises(StudioError, match="already exists"):
        do_export(str(run), "merged", None, False, folder="merged")
    with pytest.raises(StudioError, match="not a usable folder name"):
        do_export(str(run), "merged", None, False, folder="../../etc")
    assert formats_for(None)[1] == "adapter" and formats_for(None)[0] == FORMATS


def test_export_defaults_to_the_adapter_for_a_lora_run(tmp_path):
    from studio.tabs.export import FORMATS, formats_for

    run = tmp_path / "lora-run"
    (run / "adapter").mkdir(parents=True)
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "config.json").write_text(json.dumps({"model_id": "demo", "task": "keys"}))
    choices, value, note = formats_for(str(run))
    assert (choices, value) == (FORMATS, "adapter") and "LoRA run" in note
