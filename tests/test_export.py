"""Export of a run as a PEFT adapter and as a merged model, on the offline demo model; a full
fine-tune run (RUN/model/, no adapter) exports as a merged model and refuses the adapter format."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from core.errors import StudioError
from tests.test_export_helpers import greedy, make_full_run, module_workspace
from test_infer import TARGET_A


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained_run):
    import torch

    torch.set_num_threads(1)
    ws, mp = module_workspace(tmp_path_factory, "export")
    from core.export import export_run

    run = trained_run(TARGET_A, seed=1, into=ws / "runs" / "r1", model_id="demo")
    seen = []
    adapter = export_run(run, "adapter", ws / "out" / "adapter", progress=lambda f, m: seen.append((f, m)))
    merged = export_run(run, "merged", ws / "out" / "merged")
    yield {"ws": ws, "run": run, "adapter": adapter, "merged": merged, "progress": seen}
    mp.undo()


def test_adapter_folder_is_standard_peft_and_loads_without_project_code(exported, tmp_path):
    from core import models
    from core.export import sample_inputs

    out = exported["ws"] / "out" / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer.json",
            "tokenizer.model", "processor_config.json", "export_summary.json"} <= {p.name for p in out.iterdir()}
    image, prompt = sample_inputs({"model": "demo", "task": "keys"}, 1)[0]
    image.save(tmp_path / "img.png")
    base = models.resolve("demo")
    # A fresh interpreter started outside the repo: only transformers + peft, the project is not importable.
    script = textwrap.dedent(f"""
        import json, sys, torch
        from PIL import Image
        from peft import PeftModel
        from transformers import AutoModelForImageTextToText, AutoProcessor
        base = AutoModelForImageTextToText.from_pretrained({str(base)!r}, dtype=torch.float32)
        model = PeftModel.from_pretrained(base, {str(out)!r}).eval()
        proc = AutoProcessor.from_pretrained({str(out)!r})
        msgs = [{{"role": "user", "content": [{{"type": "image"}}, {{"type": "text", "text": {prompt!r}}}]}}]
        text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        inputs = proc(text=[text], images=[[Image.open({str(tmp_path / "img.png")!r})]], return_tensors="pt",
                      add_special_tokens=False)
        with torch.inference_mode():
            ids = model.generate(**inputs, do_sample=False, max_new_tokens=12)[0, inputs["input_ids"].shape[1]:]
        assert not any(m == "core" or m.startswith("core.") for m in sys.modules), "project code was imported"
        print(json.dumps(ids.tolist()))
    """)
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-2000:]
    plain_ids = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(plain_ids) > 0
    assert plain_ids == _adapter_answers(exported)[0]


def _adapter_answers(exported, n: int = 2):
    import torch
    from peft import PeftModel

    from core import models
    from core.export import sample_inputs

    if "answers" not in exported:
        samples = sample_inputs({"model": "demo", "task": "keys"}, n)
        base = models.load_model("demo", device="cpu", dtype=torch.float32)
        proc = models.load_processor("demo")
        base_ids = [greedy(base, proc, im, p) for im, p in samples]
        model = PeftModel.from_pretrained(base, str(exported["ws"] / "out" / "adapter")).eval()
        exported["answers"] = [greedy(model, proc, im, p) for im, p in samples]
        exported["base_answers"] = base_ids
    return exported["answers"]


def test_merged_loads_with_plain_transformers_and_matches_adapter(exported):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from core.export import sample_inputs

    out = exported["ws"] / "out" / "merged"
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.model",
            "processor_config.json", "README.md"} <= names
    assert not any(n.startswith("adapter_") for n in names)  # merged, not an adapter folder
    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    proc = AutoProcessor.from_pretrained(out)
    assert model.dtype == torch.float32  # the demo checkpoint's own precision (Gemma 3 hub models: bf16)
    samples = sample_inputs({"model": "demo", "task": "keys"}, 2)
    merged = [greedy(model, proc, im, p) for im, p in samples]
    adapter = _adapter_answers(exported)
    assert merged == adapter
    # The adapter must matter, or this comparison would prove nothing about the merge.
    assert adapter != exported["base_answers"]
    assert exported["merged"]["dtype"] == "float32" and exported["merged"]["loaded_4bit_for_training"] is False


def test_model_card_summary_and_progress(exported):
    card = (exported["ws"] / "out" / "adapter" / "README.md").read_text()
    assert "base_model: demo" in card and "library_name: peft" in card and "`keys`" in card
    assert "PeftModel.from_pretrained" in card and "No evaluation" in card
    summary = json.loads((exported["ws"] / "out" / "adapter" / "export_summary.json").read_text())
    run_cfg = json.loads((exported["run"] / "config.json").read_text())
    assert summary["format"] == "adapter" and summary["peft_type"] == "LORA" and summary["r"] == run_cfg["lora_r"] == 8
    fractions = [f for f, _ in exported["progress"]]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_eval_summary_goes_into_the_card(exported, tmp_path):
    from core.export import export_run

    ev = exported["run"] / "eval"
    ev.mkdir(exist_ok=True)
    (ev / "val.summary.json").write_text(json.dumps({
        "run": "r1", "dataset": "d", "split": "val", "n": 3, "metrics": {"exact_match": 0.667}, "confidence": 0.5}))
    try:
        export_run(exported["run"], "adapter", tmp_path / "a2")
    finally:
        (ev / "val.summary.json").unlink()
    card = (tmp_path / "a2" / "README.md").read_text()
    assert "exact_match" in card and "0.667" in card


def test_bad_requests_are_clear_errors_and_write_nothing(exported, tmp_path):
    from core.export import export_run

    run = exported["run"]
    with pytest.raises(StudioError, match="Unknown export format"):
        export_run(run, "tfjs", tmp_path / "x")
    with pytest.raises(StudioError, match="GGUF only"):
        export_run(run, "adapter", tmp_path / "x", quant="q8_0")
    with pytest.raises(StudioError, match="Unknown GGUF quantization"):
        export_run(run, "gguf", tmp_path / "x", quant="q2_k")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(StudioError, match="not empty"):
        export_run(run, "adapter", busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    with pytest.raises(StudioError, match="not found"):
        export_run(tmp_path / "no-such-run", "adapter", tmp_path / "x")
    bare = exported["ws"] / "runs" / "bare"
    bare.mkdir()
    (bare / "config.json").write_text(json.dumps({"model_id": "demo", "task": "keys"}))
    for fmt in ("adapter", "merged"):
        with pytest.raises(StudioError, match="no trained weights yet"):
            export_run(bare, fmt, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_a_failed_export_leaves_no_folder(exported, tmp_path, monkeypatch):
    import core.export as ex

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ex.shutil, "copy2", boom)  # fails after the processor files were written
    with pytest.raises(RuntimeError, match="disk full"):
        ex.export_run(exported["run"], "adapter", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_cli_exports_and_reports_errors(exported, tmp_path, capsys):
    from core.__main__ import main

    code = main(["export", "--run", str(exported["run"]), "--format", "adapter", "--out", str(tmp_path / "cli")])
    out = capsys.readouterr()
    assert code == 0 and (tmp_path / "cli" / "adapter_model.safetensors").is_file()
    assert "exported r1 as adapter" in out.out and "TF.js" not in out.out and "%]" in out.err  # not asked for
    assert out.out.rstrip().endswith("It loads with transformers like any model folder.")  # the verdict, last
    code = main(["export", "--run", str(exported["run"]), "--format", "adapter", "--out", str(tmp_path / "cli")])
    assert code == 2 and "not empty" in capsys.readouterr().err


# ---------------------------------------------------------------------- full fine-tune runs
@pytest.fixture(scope="module")
def full_export(exported):
    """A run trained by the training engine with method=full, exported as merged (same workspace)."""
    from core.export import export_run

    run = make_full_run(exported["ws"] / "runs")
    seen = []
    summary = export_run(run, "merged", exported["ws"] / "out" / "full-merged",
                         progress=lambda f, m: seen.append((f, m)))
    return {"run": run, "out": exported["ws"] / "out" / "full-merged", "summary": summary, "progress": seen}


def test_full_finetune_merged_loads_plainly_and_answers_like_the_run(full_export):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from core import models
    from core.export import sample_inputs
    from core.infer import read_run_config

    out, run = full_export["out"], full_export["run"]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.model", "tokenizer.json",
            "processor_config.json", "chat_template.jinja", "README.md", "export_summary.json"} <= names
    assert not any(n.startswith("adapter_") for n in names) and "training_args.bin" not in names
    config = json.loads((out / "config.json").read_text())
    assert config.get("use_cache") is not False  # training's memory saving is not exported
    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    proc = AutoProcessor.from_pretrained(out)
    assert model.dtype == torch.float32  # the demo checkpoint's own precision, kept as the LoRA path does
    samples = sample_inputs(read_run_config(run), 2)  # the run's own dataset images
    exported_ids = [greedy(model, proc, im, p) for im, p in samples]
    trained = AutoModelForImageTextToText.from_pretrained(run / "model").eval()
    run_ids = [greedy(trained, proc, im, p) for im, p in samples]
    assert exported_ids == run_ids and all(len(ids) > 0 for ids in run_ids)
    # Training must have changed the answers, or the comparison would not tell the run from the base.
    base = models.load_model("demo", device="cpu", dtype=torch.float32)
    assert [greedy(base, models.load_processor("demo"), im, p) for im, p in samples] != run_ids
    s = full_export["summary"]
    assert s["run_kind"] == "full" and s["full_finetune"] is True and s["dtype"] == "float32"
    assert "float32" in s["dtype_note"] and s["notes"] == [s["dtype_note"]]
    assert s["parameters"] == sum(p.numel() for p in model.parameters())
    fractions = [f for f, _ in full_export["progress"]]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_full_finetune_card_says_what_was_trained(full_export):
    card = (full_export["out"] / "README.md").read_text()
    assert "library_name: transformers" in card and "A full fine-tune of the base model" in card
    assert "| method | \"full\" |" in card and "lora_r" not in card
    assert "AutoModelForImageTextToText.from_pretrained" in card and "float32" in card


def test_full_finetune_has_no_adapter_to_export(full_export, tmp_path):
    from core.export import export_run

    with pytest.raises(StudioError, match="full fine-tune: it has no adapter; export merged or gguf") as e:
        export_run(full_export["run"], "adapter", tmp_path / "a")
    assert "merged" in e.value.hint
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(StudioError, match="may not be inside the run's model folder"):
        export_run(full_export["run"], "merged", full_export["run"] / "model" / "out")


def test_full_finetune_is_cast_to_the_base_models_16_bit(full_export, tmp_path):
    """A Gemma 3 hub checkpoint is bf16: a run trained (and saved) in fp32 is exported in bf16. The base
    here is a local folder whose config.json says bfloat16, as a hub checkpoint's does; the export reads
    that through the real lookup (models.read_model_config)."""
    import shutil

    import torch
    from safetensors import safe_open
    from transformers import AutoModelForImageTextToText

    from core import models
    from core.export import export_run

    base = tmp_path / "bf16-base"
    shutil.copytree(models.resolve("demo"), base)
    config = json.loads((base / "config.json").read_text())
    assert config["dtype"] == "float32"
    (base / "config.json").write_text(json.dumps({**config, "dtype": "bfloat16"}))
    run = shutil.copytree(full_export["run"], tmp_path / "runs" / "full-bf16", ignore=shutil.ignore_patterns("export"))
    run_cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**run_cfg, "model_id": str(base)}))
    s = export_run(run, "merged", tmp_path / "bf16")
    with safe_open(str(tmp_path / "bf16" / "model.safetensors"), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"BF16"}
    assert s["dtype"] == "bfloat16" and s["trained_weights_dtype"] == "float32"
    assert "cast to bfloat16" in s["dtype_note"]
    assert AutoModelForImageTextToText.from_pretrained(tmp_path / "bf16").dtype == torch.bfloat16


def test_cli_exports_a_full_finetune(full_export, tmp_path, capsys):
    from core.__main__ import main

    code = main(["export", "--run", str(full_export["run"]), "--format", "merged", "--out", str(tmp_path / "m")])
    assert code == 0 and (tmp_path / "m" / "model.safetensors").is_file()
    assert "exported full1 as merged" in capsys.readouterr().out
    code = main(["export", "--run", str(full_export["run"]), "--format", "adapter", "--out", str(tmp_path / "a")])
    assert code == 2 and "full fine-tune" in capsys.readouterr().err and not (tmp_path / "a").exists()


def test_a_run_with_trained_answer_tokens_merges_into_a_model_that_answers_like_it(trained_run, tmp_path):
    """The demo recipe's runs also train their answers' embedding rows (PEFT trainable tokens, tied to
    the output layer): the merged model carries them, so it answers as the adapter does."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from core import models
    from core.export import export_run, sample_inputs

    run = trained_run(TARGET_A, seed=3, answer_tokens=True, into=tmp_path / "runs" / "tok", model_id="demo")
    export_run(run, "merged", tmp_path / "merged")
    samples = sample_inputs({"model": "demo", "task": "keys"}, 2)
    proc = models.load_processor("demo")
    base = models.load_model("demo", device="cpu", dtype=torch.float32)
    base_answers = [greedy(base, proc, im, p) for im, p in samples]
    adapter = PeftModel.from_pretrained(base, str(run / "adapter")).eval()
    with_adapter = [greedy(adapter, proc, im, p) for im, p in samples]
    merged = AutoModelForImageTextToText.from_pretrained(tmp_path / "merged").eval()
    assert [greedy(merged, AutoProcessor.from_pretrained(tmp_path / "merged"), im, p) for im, p in samples] \
        == with_adapter != base_answers
