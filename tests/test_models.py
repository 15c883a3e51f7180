"""The offline demo model (build, reload, run, determinism) and the model registry/loader."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from PIL import Image, ImageDraw

from core import models
from core.demo_model import BASE_DIR, RECIPE, build_demo_model, ensure_demo_model
from core.errors import StudioError

torch.set_num_threads(1)


def key_like_image(bitting=(1, 2, 5, 3, 7), size=(240, 120)) -> Image.Image:
    """A 2:1 picture of a key blade whose cut depths follow `bitting` (like the demo keys data)."""
    img = Image.new("RGB", size, (235, 232, 225))
    d = ImageDraw.Draw(img)
    w, h = size
    d.ellipse([8, h // 2 - 34, 76, h // 2 + 34], fill=(180, 150, 60))  # bow
    top, bottom = h // 2 - 22, h // 2 + 22
    d.rectangle([70, top, w - 12, bottom], fill=(190, 160, 70))  # blade
    step = (w - 100) // len(bitting)
    for i, depth in enumerate(bitting):
        x = 90 + i * step
        d.polygon([(x, top), (x + step // 2, top + 3 * depth), (x + step, top)], fill=(235, 232, 225))
    return img


def chat(with_answer: bool = False):
    msgs = [{"role": "system", "content": [{"type": "text", "text": "Answer in the fixed format."}]},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Read the key."}]}]
    if with_answer:
        msgs.append({"role": "assistant",
                     "content": [{"type": "text", "text": "KEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage"}]})
    return msgs


@pytest.fixture(scope="module")
def loaded(demo_model_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    proc = AutoProcessor.from_pretrained(demo_model_path)
    model = AutoModelForImageTextToText.from_pretrained(demo_model_path).eval()
    return proc, model


def test_folder_is_a_normal_hf_model_with_sentencepiece(demo_model_path):
    import sentencepiece as spm

    names = {p.name for p in demo_model_path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.model", "tokenizer.json", "tokenizer_config.json",
            "processor_config.json", "chat_template.jinja", "generation_config.json"} <= names
    cfg = json.loads((demo_model_path / "config.json").read_text())
    assert cfg["architectures"] == ["Gemma3ForConditionalGeneration"]
    assert cfg["vision_config"]["model_type"] == "siglip_vision_model"
    sp = spm.SentencePieceProcessor(model_file=str(demo_model_path / "tokenizer.model"))
    assert sp.get_piece_size() == cfg["text_config"]["vocab_size"]
    assert [sp.id_to_piece(i) for i in range(4)] == ["<pad>", "<eos>", "<bos>", "<unk>"]
    assert sp.piece_to_id("<image_soft_token>") == cfg["image_token_index"]
    # llama.cpp tokenizes with tokenizer.model, transformers with tokenizer.json: they must agree.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(demo_model_path)
    text = "<start_of_turn>user\nCREATE TABLE users (\n  id INT PRIMARY KEY\n);\nKEYWAY: SC1\nBITTING: 1,2,5,3,7"
    assert tok(text, add_special_tokens=False).input_ids == sp.encode(text)
    assert tok.convert_ids_to_tokens(tok("BITTING: 12537", add_special_tokens=False).input_ids)[-5:] == list("12537")


def test_reload_forward_and_generate(loaded):
    from transformers import Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil

    proc, model = loaded
    assert isinstance(model, Gemma3ForConditionalGeneration)
    assert isinstance(proc.image_processor, Gemma3ImageProcessorPil)
    text = proc.apply_chat_template(chat(), add_generation_prompt=True)
    inputs = proc(images=[key_like_image()], text=text, add_special_tokens=False, return_tensors="pt")
    assert tuple(inputs["pixel_values"].shape) == (1, 3, RECIPE["image_size"], RECIPE["image_size"])
    with torch.no_grad():
        out = model(**inputs)
    assert tuple(out.logits.shape) == (1, inputs["input_ids"].shape[1], model.config.text_config.vocab_size)
    assert torch.isfinite(out.logits).all()
    gen = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new = gen[0, inputs["input_ids"].shape[1]:]
    assert 1 <= len(new) <= 6
    assert isinstance(proc.decode(new, skip_special_tokens=True), str)


def test_the_image_reaches_the_text_model(loaded):
    proc, model = loaded
    text = proc.apply_chat_template(chat(), add_generation_prompt=True)
    logits = []
    for bitting in [(1, 1, 1, 1, 1), (9, 2, 9, 2, 9)]:
        inputs = proc(images=[key_like_image(bitting)], text=text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            logits.append(model(**inputs).logits[0, -1])
    assert not torch.allclose(logits[0], logits[1])


def test_chat_template_expands_image_tokens(loaded):
    proc, model = loaded
    text = proc.apply_chat_template(chat(with_answer=True))
    assert text.startswith("<bos><start_of_turn>user\nAnswer in the fixed format.\n\n<start_of_image>Read the key.")
    assert "<start_of_turn>model\nKEYWAY: SC1\nBITTING: 1,2,5,3,7\nBRAND: Schlage<end_of_turn>\n" in text
    assert proc.apply_chat_template(chat(), add_generation_prompt=True).endswith("<start_of_turn>model\n")
    batch = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image", "image": key_like_image()},
                                      {"type": "text", "text": "Read the key."}]}],
        tokenize=True, return_dict=True, return_tensors="pt")
    ids = batch["input_ids"][0].tolist()
    cfg = model.config
    n = RECIPE["mm_tokens_per_image"]
    assert ids.count(cfg.image_token_index) == n == cfg.mm_tokens_per_image
    start = ids.index(cfg.boi_token_index)
    assert ids[start + 1:start + 1 + n] == [cfg.image_token_index] * n
    assert ids[start + 1 + n] == cfg.eoi_token_index
    assert ids.count(proc.tokenizer.bos_token_id) == 1
    assert int(batch["token_type_ids"][0].sum()) == n


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_build_is_deterministic(tmp_path):
    first = _digests(build_demo_model(tmp_path / "first", seed=0))
    again = _digests(build_demo_model(tmp_path / "a", seed=0))
    assert again == first
    other = _digests(build_demo_model(tmp_path / "b", seed=1))
    assert other["model.safetensors"] != again["model.safetensors"]
    assert other["tokenizer.model"] == again["tokenizer.model"]  # the tokenizer does not depend on the seed


def test_demo_resolves_to_the_shipped_base_and_writes_nothing(workspace):
    assert ensure_demo_model(workspace) == BASE_DIR
    assert models.resolve("demo", workspace) == str(BASE_DIR)
    assert not (workspace / "models").exists()  # nothing built into the workspace


def test_registry_entries_and_unknown_ids():
    assert models.get_model_info("demo").family == "gemma3"
    for hub in ["google/gemma-3-4b-it", "google/gemma-3-12b-it", "google/gemma-3-27b-it",
                "google/gemma-3n-E2B-it", "google/gemma-3n-E4B-it", "unsloth/gemma-3-4b-it",
                "unsloth/gemma-3n-E4B-it"]:
        info = models.MODELS[hub]
        assert info.hub_id == hub and info.params_b > 1 and info.size_note
        assert info.gpu_only == (info.family == "gemma3n")
        assert info.gated == hub.startswith("google/")
    assert models.get_model_info("someone/gemma-3-4b-keys-ft").family == "gemma3"
    assert models.get_model_info("someone/Gemma-3n-E4B-custom").gpu_only
    for bad in ["llama-7b", "someone/llama-3-8b", ""]:
        with pytest.raises(StudioError) as e:
            models.get_model_info(bad)
        assert "google/gemma-3-4b-it" in e.value.hint and "demo" in e.value.hint


def test_local_folders(demo_model_path, tmp_path):
    info = models.get_model_info(str(demo_model_path))
    assert info.family == "gemma3" and not info.gpu_only
    assert 0.0015 < info.params_b < 0.004  # the 2.3M-parameter demo base
    assert models.resolve(str(demo_model_path)) == str(demo_model_path.resolve())
    assert models.read_model_config(str(demo_model_path))["model_type"] == "gemma3"
    (tmp_path / "empty").mkdir()
    with pytest.raises(StudioError, match="no config.json"):
        models.get_model_info(str(tmp_path / "empty"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(StudioError, match="Gemma 3"):
        models.get_model_info(str(tmp_path / "bert"))


def test_load_demo_through_the_loader(demo_model_path):
    proc = models.load_processor(str(demo_model_path))
    model = models.load_model(str(demo_model_path), device="cpu", for_training=True)
    assert model.training and model.config.use_cache is False
    assert next(model.parameters()).dtype == torch.float32
    text = proc.apply_chat_template(chat(with_answer=True))
    inputs = proc(images=[key_like_image()], text=text, add_special_tokens=False, return_tensors="pt")
    out = model(**inputs, labels=inputs["input_ids"])
    out.loss.backward()
    grad = model.model.vision_tower.embeddings.patch_embedding.weight.grad
    assert grad is not None and grad.abs().sum() > 0  # the loss reaches the vision tower


def test_cpu_refusals():
    with pytest.raises(StudioError, match="4-bit"):
        models.load_model("demo", device="cpu", load_in_4bit=True)
    with pytest.raises(StudioError, match="Gemma 3n"):
        models.load_model("google/gemma-3n-E4B-it", device="cpu")
    with pytest.raises(StudioError, match="dtype"):
        models.load_model("demo", device="cpu", dtype="int3")
    q = models.quantization_config("gemma3n", torch.bfloat16)
    assert {"lm_head", "correction_coefs", "prediction_coefs", "altup_projections"} <= set(q.llm_int8_skip_modules)
    assert q.bnb_4bit_quant_type == "nf4" and q.bnb_4bit_use_double_quant
    assert models.quantization_config("gemma3", torch.bfloat16, double_quant=False).llm_int8_skip_modules is None


def test_offline_hub_model_gives_the_fix(monkeypatch):
    # No network here and nothing in the cache: the real from_pretrained path must fail helpfully.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StudioError) as e:
        models.load_model("google/gemma-3-4b-it", device="cpu")
    assert "not downloaded" in e.value.message and "demo" in e.value.hint
    with pytest.raises(StudioError, match="not downloaded"):
        models.read_model_config("unsloth/gemma-3-12b-it")


def test_gated_and_missing_errors_say_what_to_do():
    import httpx
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    response = httpx.Response(403, request=httpx.Request("GET", "https://huggingface.co/google/gemma-3-4b-it"))
    try:
        try:
            raise GatedRepoError("403 gated", response=response)
        except GatedRepoError as inner:
            raise OSError("You are trying to access a gated repo.") from inner
    except OSError as outer:
        err = models.hub_error("google/gemma-3-4b-it", outer)
    assert "licence" in err.message
    assert "https://huggingface.co/google/gemma-3-4b-it" in err.hint and "HF_TOKEN" in err.hint
    missing = models.hub_error("google/gemma-3-5b-it", RepositoryNotFoundError("404", response=response))
    assert "no model" in missing.message and "demo" in missing.hint


def test_hf_token_from_env_and_dotenv(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("# secrets\nexport HF_TOKEN='hf_from_dotenv'\nOTHER=1\n")
    assert models.hf_token() == "hf_from_dotenv"
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "hf_from_env")
    assert models.hf_token() == "hf_from_env"


def test_display_id_names_the_shipped_base_demo():
    """A run trained on `demo` records the base's folder; everything shown to a person says `demo`."""
    from core.models import display_id, resolve

    assert display_id(resolve("demo")) == "demo"
    assert display_id("google/gemma-3-4b-it") == "google/gemma-3-4b-it"
    assert display_id("/data/models/my-gemma") == "my-gemma"
