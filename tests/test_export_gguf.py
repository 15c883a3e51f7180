"""GGUF export of the demo model: llama.cpp's converter (text + mmproj), read back with gguf-py,
answered by llama.cpp (tests marked `needs_llama_cpp` skip when llama-cpp-python is not installed;
an installed one that does not load fails them), for a LoRA run and for a full fine-tune run (RUN/model/,
trained by the training engine)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.test_export_helpers import make_full_run, module_workspace
from test_infer import TARGET_A

ROOT = Path(__file__).resolve().parent.parent

DEMO_LAYERS = json.loads((ROOT / "assets" / "demo" / "base" / "config.json").read_text())["text_config"][
    "num_hidden_layers"]
LLAMA_CPP_INSTALLED = importlib.util.find_spec("llama_cpp") is not None  # absent: skip; broken: fail
needs_llama_cpp = pytest.mark.skipif(
    not LLAMA_CPP_INSTALLED,
    reason="llama-cpp-python is not installed; install it with `bash scripts/install_llama_cpp.sh` to run "
           "the llama.cpp checks")


@needs_llama_cpp
def test_installed_llama_cpp_loads_with_its_multimodal_library():
    from core.export_gguf import llama_cpp_available

    assert llama_cpp_available() is None


@pytest.fixture(scope="module")
def gguf_export(tmp_path_factory, trained_run):
    import torch

    torch.set_num_threads(1)
    ws, mp = module_workspace(tmp_path_factory, "gguf")
    from core.export import export_run

    # the run that memorised TARGET_A (shared with test_infer): its answer is confident, so f16 rounding
    # cannot flip a near-tie between llama.cpp and transformers (a 4-step run on the pretrained base did)
    run = trained_run(TARGET_A, seed=1, into=ws / "runs" / "r1", model_id="demo")
    out = ws / "out" / "gguf"
    # The converter comes from the pinned sdist (pip download into workspace/tools, unless
    # TRINITY_LLAMA_CPP_DIR points at an unpacked copy).
    summary = export_run(run, "gguf", out, verify=LLAMA_CPP_INSTALLED)
    yield {"ws": ws, "run": run, "out": out, "summary": summary}
    mp.undo()


def _merged_weight_names(ws) -> list[str]:
    from safetensors import safe_open

    from core import models

    with safe_open(str(models.resolve("demo") + "/model.safetensors"), "pt") as f:
        return list(f.keys())


def test_text_and_mmproj_files_read_back_with_gguf_py(gguf_export):
    from core.export_gguf import describe

    s, out = gguf_export["summary"], gguf_export["out"]
    text, mmproj = out / s["gguf"]["file"], out / s["mmproj"]["file"]
    assert text.name == "r1-f16.gguf" and mmproj.name == "mmproj-r1-f16.gguf"
    t, m = describe(text), describe(mmproj)
    names = _merged_weight_names(gguf_export["ws"])
    n_text = sum(n.startswith("language_model.") for n in names)
    n_vision = sum(n.startswith(("vision_tower.", "multi_modal_projector.")) for n in names)
    assert t["architecture"] == "gemma3" and t["n_tensors"] == n_text  # tied embeddings: no output.weight
    assert t["n_layers"] == DEMO_LAYERS and t["has_chat_template"]
    assert m["architecture"] == "clip" and m["projector_type"] == "gemma3" and m["has_vision"]
    assert m["n_tensors"] == n_vision and m["image_size"] == 96
    assert n_text + n_vision == len(names)  # every weight went into one of the two files
    assert s["layer_pattern_written"] is True  # the demo's (sliding, global) layout differs from llama.cpp's default


def test_special_tokens_are_control_tokens_in_the_gguf(gguf_export):
    from core.export_gguf import gguf_reader

    gguf = gguf_reader()
    r = gguf.GGUFReader(str(gguf_export["out"] / gguf_export["summary"]["gguf"]["file"]))
    tokens = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    kinds = {tok: types[i] for i, tok in enumerate(tokens)}
    for special in ("<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>"):
        assert kinds[special] == gguf.TokenType.CONTROL, special
    assert kinds["\n"] == gguf.TokenType.NORMAL


def test_scratch_files_are_gone_and_user_folders_untouched(gguf_export):
    from safetensors import safe_open

    from core import models

    out = gguf_export["out"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["Modelfile", "README.md", "export_summary.json", "mmproj-r1-f16.gguf", "r1-f16.gguf"])
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]  # atomic_dir's scratch
    with safe_open(str(models.resolve("demo") + "/model.safetensors"), "pt") as f:
        assert not any(k.startswith("vision_tower.vision_model.") for k in f.keys())


def test_modelfile_and_ollama_commands(gguf_export):
    s, out = gguf_export["summary"], gguf_export["out"]
    text = (out / "Modelfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms == ["./r1-f16.gguf", "./mmproj-r1-f16.gguf"] and all((out / f).is_file() for f in froms)
    # the decoding the studio scored with (greedy, the keys preset's cap), not Ollama's sampling defaults
    from core.infer import generation_settings
    cap = generation_settings("keys")["max_new_tokens"]
    for line in ('PARAMETER stop "<end_of_turn>"', "PARAMETER temperature 0", "PARAMETER top_k 1",
                 "PARAMETER repeat_penalty 1", f"PARAMETER num_predict {cap}"):
        assert line in text.splitlines()
    assert "top_p" not in text and s["decoding"] == {"max_new_tokens": cap, "do_sample": False}
    assert 'SYSTEM """' in text and "<start_of_turn>model" in text
    oll = s["ollama"]
    assert oll["ran"] is False and "not run here" in oll["note"]
    assert oll["commands"][0].endswith(f"ollama create {oll['name']} -f Modelfile") and str(out) in oll["commands"][0]
    assert oll["commands"][1].startswith(f"ollama run {oll['name']}")


def test_the_verdict_says_what_was_checked(gguf_export):
    """Without llama-cpp-python the export reads "Not verified" first, and its notes claim nothing more."""
    s, out = gguf_export["summary"], gguf_export["out"]
    v = s["verdict"]
    if LLAMA_CPP_INSTALLED:
        assert v["status"] == "verified" and v["text"].startswith("Verified: llama.cpp answered 2 sample images")
    else:
        assert v["status"] == "not_verified" and v["text"].startswith("Not verified:")
        card = (out / "README.md").read_text()
        assert "what the export verified" not in card and "Not verified:" in card
    assert json.loads((out / "export_summary.json").read_text())["verdict"] == v


def test_converter_comes_from_the_pinned_sdist(gguf_export):
    from core.export_gguf import LLAMA_CPP_PYTHON, converter_dir

    conv = converter_dir()
    assert (conv / "convert_hf_to_gguf.py").is_file() and (conv / "gguf-py" / "gguf" / "gguf_reader.py").is_file()
    assert gguf_export["summary"]["llama_cpp_python"] == LLAMA_CPP_PYTHON


@needs_llama_cpp
def test_llama_cpp_answers_like_the_merged_model(gguf_export):
    ver = gguf_export["summary"]["verification"]
    assert ver["ran"] is True and len(ver["answers"]) == 2
    for row in ver["answers"]:
        # Same prompt (text tokens + 36 image embeddings) on both sides, same greedy tokens.
        assert row["prompt_tokens"]["llama_cpp"] == row["prompt_tokens"]["transformers"]
        assert row["llama_cpp_tokens"] == row["transformers_tokens"], row
        assert row["first_step_max_abs_logprob_diff"] < 0.02  # f16 weights vs the fp32 checkpoint
    assert ver["all_equal"] is True


@needs_llama_cpp
def test_llama_cpp_answer_depends_on_the_image(full_gguf):
    """On the full fine-tune's export (3 steps: it still describes the image it is shown)."""
    from PIL import Image

    from core.export import sample_inputs
    from core.export_gguf import answer_images

    s, out = full_gguf["summary"], full_gguf["out"]
    (a, prompt), (b, _) = sample_inputs({"model": "demo", "task": "keys"}, 2)
    blank = Image.new("RGB", a.size, (128, 128, 128))
    answers = answer_images(out / s["gguf"]["file"], out / s["mmproj"]["file"],
                            [(a, prompt), (b, prompt), (blank, prompt), (a, prompt)], max_tokens=8)
    first = [ans["first_logprobs"] for ans in answers]

    def diff(x, y):
        return max(abs(p - q) for p, q in zip(x, y))

    assert diff(first[0], first[3]) < 1e-6          # same image, same logits: deterministic
    assert diff(first[0], first[1]) > 1e-3 and diff(first[0], first[2]) > 1e-3
    assert len({tuple(ans["tokens"]) for ans in answers[:3]}) > 1  # and different token streams


@needs_llama_cpp
def test_q4_k_m_quantizes_the_text_model_only(gguf_export, tmp_path):
    from core.export import export_run

    s = export_run(gguf_export["run"], "gguf", tmp_path / "q4", quant="q4_k_m")
    assert s["gguf"]["file"] == "r1-q4_k_m.gguf" and s["gguf"]["file_type"] == 15  # LLAMA_FTYPE_MOSTLY_Q4_K_M
    assert s["gguf"]["n_tensors"] == gguf_export["summary"]["gguf"]["n_tensors"]
    assert s["gguf"]["bytes"] < gguf_export["summary"]["gguf"]["bytes"]
    assert s["mmproj"]["file_type"] == 1  # the projector stays f16
    # Answers are produced from the image; with 4-bit weights on this near-random tiny model they
    # need not equal the fp32 model's greedy tokens (recorded, not asserted).
    ver = s["verification"]
    assert ver["ran"] and all(len(r["llama_cpp_tokens"]) > 0 for r in ver["answers"])
    assert json.loads((tmp_path / "q4" / "export_summary.json").read_text())["quant"] == "q4_k_m"


# ---------------------------------------------------------------------- full fine-tune runs
@pytest.fixture(scope="module")
def full_gguf(gguf_export):
    from core.export import export_run

    run = make_full_run(gguf_export["ws"] / "runs")
    out = gguf_export["ws"] / "out" / "full-gguf"
    summary = export_run(run, "gguf", out, verify=LLAMA_CPP_INSTALLED)
    return {"run": run, "out": out, "summary": summary}


def test_full_finetune_gguf_files_read_back(full_gguf):
    from safetensors import safe_open

    from core.export_gguf import describe, gguf_reader

    s, out, run = full_gguf["summary"], full_gguf["out"], full_gguf["run"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["Modelfile", "README.md", "export_summary.json", "mmproj-full1-f16.gguf", "full1-f16.gguf"])
    assert s["run_kind"] == "full" and s["merged"]["full_finetune"] is True and s["layer_pattern_written"] is True
    # The run's folder has no tokenizer.model (transformers 5 writes none): the export took the base's.
    assert not (run / "model" / "tokenizer.model").exists()
    with safe_open(str(run / "model" / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert not any(n.startswith("vision_tower.vision_model.") for n in names)  # the run folder is untouched
    t, m = describe(out / "full1-f16.gguf"), describe(out / "mmproj-full1-f16.gguf")
    n_text = sum(n.startswith("language_model.") for n in names)
    n_vision = sum(n.startswith(("vision_tower.", "multi_modal_projector.")) for n in names)
    assert t["architecture"] == "gemma3" and t["n_tensors"] == n_text and t["n_layers"] == DEMO_LAYERS
    assert m["architecture"] == "clip" and m["projector_type"] == "gemma3" and m["n_tensors"] == n_vision
    assert n_text + n_vision == len(names)
    gguf = gguf_reader()
    tokens = gguf.GGUFReader(str(out / "full1-f16.gguf")).fields["tokenizer.ggml.tokens"].contents()
    config = json.loads((run / "model" / "config.json").read_text())
    assert len(tokens) == config["text_config"]["vocab_size"] and "<start_of_image>" in tokens
    assert "FROM ./full1-f16.gguf" in (out / "Modelfile").read_text()
    assert "library_name: gguf" in (out / "README.md").read_text()


@needs_llama_cpp
def test_llama_cpp_answers_like_the_full_finetune(full_gguf):
    """llama.cpp's answer equals the greedy answer of the run's own model (RUN/model, plain transformers)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from core.export import REF_TOKENS, hf_greedy, sample_inputs
    from core.infer import read_run_config

    ver, run = full_gguf["summary"]["verification"], full_gguf["run"]
    assert ver["ran"] is True and ver["all_equal"] is True and len(ver["answers"]) == 2
    model = AutoModelForImageTextToText.from_pretrained(run / "model").eval()
    proc = AutoProcessor.from_pretrained(run / "model")
    samples = sample_inputs(read_run_config(run), 2)
    for row, (image, prompt) in zip(ver["answers"], samples):
        own = hf_greedy(model, proc, image, prompt, max_new_tokens=REF_TOKENS)
        assert row["llama_cpp_tokens"] == own["tokens"] and row["llama_cpp_text"] == own["text"]
        assert row["prompt_tokens"]["llama_cpp"] == own["prompt_tokens"]
        assert row["first_step_max_abs_logprob_diff"] < 0.02
