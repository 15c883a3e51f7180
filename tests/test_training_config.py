"""TrainConfig: presets as the issue states them, overrides, validation, events reading. No training."""
from __future__ import annotations

import json
import os
import signal

import pytest

from core.errors import StudioError
from core.training.config import PRESETS, TrainConfig, default_config, preset
from core.training.events import EventWriter, oom_hint, read_events
from core.training.hardware import CPU_ONLY, Hardware

T4 = Hardware(cuda=True, gpu_count=1, gpu_name="Tesla T4", vram_gb=15.0, bf16=False, bitsandbytes=True)
H100 = Hardware(cuda=True, gpu_count=1, gpu_name="H100", vram_gb=80.0, bf16=True, bitsandbytes=True, unsloth=True)


def cfg(**kw) -> TrainConfig:
    return TrainConfig(dataset="/data/keys", **kw)


def test_presets_match_the_seed_documents():
    ghost = preset("Ghost Architect (T4)")
    assert ghost.model_id == "google/gemma-3-12b-it" and ghost.load_in_4bit and ghost.method == "lora"
    assert (ghost.lora_r, ghost.use_dora, ghost.use_rslora) == (64, True, True)
    assert (ghost.batch_size, ghost.gradient_accumulation_steps) == (1, 4)

    k = preset("Keylike")
    assert k.model_id == "google/gemma-3n-E4B-it" and k.load_in_4bit
    assert (k.lora_r, k.lora_alpha, k.lora_dropout) == (32, 32, 0.05)
    assert k.finetune_vision_layers and k.finetune_language_layers
    assert (k.batch_size, k.gradient_accumulation_steps) == (1, 8)
    assert (k.learning_rate, k.lr_scheduler, k.warmup_ratio, k.num_epochs) == (1e-4, "cosine", 0.05, 2.0)
    assert (k.optimizer, k.weight_decay, k.max_grad_norm, k.seed, k.eval_steps) == ("adamw_8bit", 0.01, 1.0, 3407, 25)
    assert set(PRESETS) == {"Ghost Architect (T4)", "Keylike"}


def test_presets_validate_on_a_gpu_and_explain_on_cpu():
    preset("Ghost Architect (T4)", dataset="/d").validate(T4)
    preset("Keylike", dataset="/d").validate(H100)
    with pytest.raises(StudioError, match="4-bit"):
        preset("Ghost Architect (T4)", dataset="/d").validate(CPU_ONLY)
    with pytest.raises(StudioError, match="Gemma 3n"):
        preset("Keylike", dataset="/d", load_in_4bit=False, optimizer="adamw_torch").validate(CPU_ONLY)


def test_round_trip_and_hash(tmp_path):
    c = cfg(lora_r=8, target_modules=["q_proj", "v_proj"], image_size=224)
    c.save(tmp_path / "config.json")
    back = TrainConfig.load(tmp_path / "config.json")
    assert back == c and back.config_hash() == c.config_hash()
    assert cfg(lora_r=9).config_hash() != c.config_hash()


def test_overrides_convert_types():
    c = cfg().apply_overrides(["max_steps=10", "learning_rate=3e-4", "use_dora=true", "lora_dropout=0.1",
                               "target_modules=q_proj, v_proj", "image_size=none", "num_epochs=2",
                               "lr_scheduler=cosine", "batch_size=1e1"])
    assert c.max_steps == 10 and isinstance(c.max_steps, int)
    assert c.learning_rate == 3e-4 and c.use_dora is True and c.lora_dropout == 0.1
    assert c.target_modules == ["q_proj", "v_proj"] and c.image_size is None
    assert c.num_epochs == 2.0 and c.lr_scheduler == "cosine" and c.batch_size == 10


@pytest.mark.parametrize("pair, message", [
    ("max_stepz=10", "Unknown config key 'max_stepz'"),
    ("max_steps", "not key=value"),
    ("max_steps=ten", "Invalid value for max_steps"),
    ("batch_size=2.5", "Invalid value for batch_size"),
    ("use_dora=maybe", "Invalid value for use_dora"),
])
def test_bad_overrides_are_clear(pair, message):
    with pytest.raises(StudioError, match=message) as e:
        cfg().apply_overrides([pair])
    assert e.value.hint


def test_unknown_key_in_file_is_refused(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"lora_rank": 8}))
    with pytest.raises(StudioError, match="lora_rank"):
        TrainConfig.load(tmp_path / "c.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(StudioError, match="not valid JSON"):
        TrainConfig.load(tmp_path / "bad.json")


@pytest.mark.parametrize("changes, hw, message", [
    ({"load_in_4bit": True}, CPU_ONLY, "needs a CUDA GPU"),
    ({"lora_r": 0}, CPU_ONLY, "lora_r"),
    ({"lora_r": -4}, CPU_ONLY, "lora_r"),
    ({"target_modules": []}, CPU_ONLY, "No target modules"),
    ({"finetune_language_layers": False}, CPU_ONLY, "Neither language nor vision"),
    ({"finetune_attention_modules": False, "finetune_mlp_modules": False}, CPU_ONLY, "Neither attention nor MLP"),
    ({"learning_rate": 0.0}, CPU_ONLY, "learning_rate"),
    ({"learning_rate": -1e-4}, CPU_ONLY, "learning_rate"),
    ({"lora_dropout": 1.5}, CPU_ONLY, "lora_dropout"),
    ({"warmup_ratio": 1.0}, CPU_ONLY, "warmup_ratio"),
    ({"batch_size": 0}, CPU_ONLY, "batch_size"),
    ({"max_steps": 0}, CPU_ONLY, "max_steps"),
    ({"image_size": 4}, CPU_ONLY, "image_size"),
    ({"method": "qlora"}, CPU_ONLY, "method"),
    ({"method": "full", "load_in_4bit": True}, T4, "full fine-tune"),
    ({"precision": "bf16"}, CPU_ONLY, "needs a GPU"),
    ({"precision": "bf16"}, T4, "no bf16"),
    ({"optimizer": "adamw_8bit"}, CPU_ONLY, "8-bit"),
    ({"backend": "unsloth"}, CPU_ONLY, "Unsloth needs a CUDA GPU"),
    ({"backend": "unsloth", "train_answer_tokens": True}, H100, "transformers\\+PEFT path"),
    ({"gpus": 2}, T4, "1 GPU"),
    ({"model_id": "no-such-model"}, CPU_ONLY, "Unknown model"),
    ({"model_id": "google/gemma-3n-E4B-it"}, CPU_ONLY, "GPU only"),
    ({"dataset": ""}, CPU_ONLY, "No dataset"),
])
def test_invalid_combinations_fail_before_launch(changes, hw, message):
    c = cfg()
    for k, v in changes.items():
        setattr(c, k, v)
    with pytest.raises(StudioError, match=message) as e:
        c.validate(hw)
    assert e.value.hint


def test_auto_choices_follow_the_hardware():
    c = cfg()
    assert (c.resolved_optimizer(CPU_ONLY), c.resolved_precision(CPU_ONLY), c.resolved_backend(CPU_ONLY)) == \
        ("adamw_torch", "fp32", "hf")
    assert (c.resolved_optimizer(T4), c.resolved_precision(T4), c.resolved_backend(T4)) == ("adamw_8bit", "fp16", "hf")
    assert (c.resolved_precision(H100), c.resolved_backend(H100)) == ("bf16", "unsloth")
    # Gemma 3n's first Unsloth step compiled for minutes: auto keeps it on the HF backend
    assert cfg(model_id="google/gemma-3n-E4B-it").resolved_backend(H100) == "hf"
    assert cfg(method="full").resolved_backend(H100) == "hf"
    # DoRA skips Unsloth's fast kernels: measured slower than the HF path, so auto keeps it on hf
    assert cfg(use_dora=True).resolved_backend(H100) == "hf"
    # PEFT's trainable tokens are the transformers model's (the demo recipe trains its answer tokens)
    assert cfg(train_answer_tokens=True).resolved_backend(H100) == "hf"
    with pytest.raises(StudioError, match="Unsloth backend trains LoRA"):
        cfg(method="full", backend="unsloth").validate(H100)


def test_default_config_is_valid_for_the_demo_model_on_cpu():
    c = default_config("demo", CPU_ONLY, dataset="/d")
    c.validate(CPU_ONLY)
    assert c.method == "lora" and c.max_steps > 0 and not c.load_in_4bit  # the demo base's LoRA recipe
    assert default_config("demo", CPU_ONLY, task="ui2sql").max_seq_length >= 700  # SQL answers are long
    assert default_config("demo", CPU_ONLY, method="full").method == "full"    # full stays an option
    assert c.train_answer_tokens  # the demo base never wrote the formats' tokens (DEMO_RECIPE's comment)
    default_config("demo", CPU_ONLY, dataset="/d", method="full").validate(CPU_ONLY)  # meaningless there, not wrong
    g = default_config("google/gemma-3-4b-it", T4, dataset="/d")
    g.validate(T4)
    assert g.method == "lora" and g.load_in_4bit


def test_events_reader_tolerates_a_partial_last_line(tmp_path):
    w = EventWriter(tmp_path, enabled=True)
    w.write("start", backend="hf")
    w.write("log", step=1, loss=float("nan"))
    w.end("failed", error="boom", hint="do x")
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"type": "log", "step": 2, "lo')  # a job killed mid-write
    events = read_events(tmp_path)
    assert [e["type"] for e in events] == ["start", "log", "end"]
    assert events[2]["status"] == "failed" and events[2]["hint"] == "do x"
    assert read_events(tmp_path / "missing") == []


def test_oom_hint_lists_what_to_lower():
    hint = oom_hint(cfg(batch_size=4, max_seq_length=2048, lora_r=64, use_dora=True))
    for word in ("batch_size", "load_in_4bit", "max_seq_length", "lora_r", "use_dora"):
        assert word in hint


def test_sigterm_sets_the_stop_flag(tmp_path):
    from core.training.callbacks import StopFlag

    flag = StopFlag(tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    flag.install()
    try:
        assert flag.reason() is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert flag.reason() == "SIGTERM"
    finally:
        flag.restore()
    assert signal.getsignal(signal.SIGTERM) == before
    flag2 = StopFlag(tmp_path)
    (tmp_path / "STOP").write_text("")
    assert flag2.reason() == "STOP file"


def test_layer_classification_keeps_gemma3n_traps_out():
    from core.training.targets import classify

    assert classify("model.language_model.layers.3.self_attn.q_proj") == ("language", "attention")
    assert classify("model.language_model.layers.3.mlp.down_proj") == ("language", "mlp")
    assert classify("model.vision_tower.vision_model.encoder.layers.0.mlp.fc1") == ("vision", "mlp")
    assert classify("model.embed_vision.embedding_projection") == ("vision", "other")
    for never in ("lm_head", "model.language_model.altup_projections.0",
                  "model.language_model.layers.0.altup.correction_coefs",
                  "model.language_model.layers.0.altup.prediction_coefs",
                  "model.audio_tower.conformer.0.attention.attn.q_proj"):
        assert classify(never) is None, never


def test_demo_recipe_takes_the_tasks_own_overrides(monkeypatch):
    from core.tasks import get_task
    from core.training.config import DEMO_RECIPE, demo_recipe

    # The bundled tasks all use the shared recipe now; a task's own override still wins.
    assert demo_recipe("ui2sql") == demo_recipe("keys") == demo_recipe(None) == DEMO_RECIPE
    monkeypatch.setattr(type(get_task("ui2sql")), "demo_recipe", {"max_steps": 120, "batch_size": 4})
    assert demo_recipe("ui2sql") == {**DEMO_RECIPE, "max_steps": 120, "batch_size": 4}
    assert demo_recipe("keys") == DEMO_RECIPE
