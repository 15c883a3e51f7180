"""Export of a run as a PEFT adapter and as a merged model, on the offline demo model."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from core.errors import StudioError
from tests.test_export_helpers import greedy, make_run, module_workspace


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    ws, mp = module_workspace(tmp_path_factory, "export")
    from core.export import export_run

    run = make_run(ws / "runs")
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
    assert summary["format"] == "adapter" and summary["peft_type"] == "LORA" and summary["r"] == 4
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
    with pytest.raises(StudioError, match="No trained adapter"):
        export_run(bare, "adapter", tmp_path / "x")
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
    assert "exported r1 as adapter" in out.out and "TF.js" in out.out and "%]" in out.err
    code = main(["export", "--run", str(exported["run"]), "--format", "adapter", "--out", str(tmp_path / "cli")])
    assert code == 2 and "not empty" in capsys.readouterr().err
