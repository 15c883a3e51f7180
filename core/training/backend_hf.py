"""The transformers + PEFT + TRL backend: runs anywhere (CPU, any CUDA GPU).

It prepares what SFTTrainer needs - the model (4-bit when asked) with its LoRA/DoRA/rsLoRA
adapter, the processor and the collator - and leaves the training loop to TRL. The adapter is made
here (not from SFTTrainer's `peft_config`) so that DoRA layers can be swapped for fused ones with
a cached norm (core/training/fast_lora.py, fast_dora.py) before training; SFTTrainer still enables input grads for
checkpointing, casts the adapters of a quantized model to bf16 and adds its fused LM head (the
loss over the 262k vocabulary is computed in chunks, never as full logits).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from core.errors import StudioError
from core.training.data import CountingVisionCollator

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class Prepared:
    """What a backend hands to the job."""
    backend: str
    model: object
    processor: object
    collator: object
    peft_config: object | None = None
    sft_overrides: dict = field(default_factory=dict)  # SFTConfig fields a backend needs changed
    notes: list[str] = field(default_factory=list)     # facts worth an "info" event
    liger: bool = False                                  # Liger Kernel's kernels applied


def weight_dtype(cfg, precision: str) -> torch.dtype:
    """LoRA keeps the frozen base in the compute dtype. A full fine-tune under fp16 keeps fp32
    master weights (AMP cannot unscale fp16 gradients)."""
    if cfg.method == "full" and precision == "fp16":
        return torch.float32
    return DTYPES[precision]


def load_base(cfg, device: str, dtype: torch.dtype):
    from core import models

    model = models.load_model(cfg.model_id, device=device, dtype=dtype, load_in_4bit=cfg.load_in_4bit,
                              double_quant=cfg.double_quant, for_training=True)
    return model, models.load_processor(cfg.model_id)


def disable_avx512_bf16_repack(model) -> int:
    """bitsandbytes on a CPU with avx512_bf16 repacks 4-bit weights on the first no-grad forward;
    training afterwards fails ("a view of a leaf Variable..."). Opting each Linear4bit out avoids it."""
    n = 0
    for module in model.modules():
        if type(module).__name__ == "Linear4bit" and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
            n += 1
    return n


def prepare_kbit(model, gradient_checkpointing: bool, keep_16bit: bool):
    """PEFT's prepare_model_for_kbit_training, without its upcast of every 16-bit weight to fp32
    under bf16. That upcast turns Gemma's embedding (tied to the LM head: 262k x hidden) into
    fp32 - +1.25 GiB at 4B, +2 GiB at 12B - and with it the whole residual stream, so every layer
    casts back and forth (measured: thousands of extra kernels a step). Gemma's RMSNorm already
    computes in fp32. Under fp16 (T4) PEFT's behaviour stays as it was: no T4 here to test a 16-bit
    residual stream in fp16, whose range Gemma 3's activations are reported to exceed."""
    if not keep_16bit:
        from peft import prepare_model_for_kbit_training

        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                               gradient_checkpointing_kwargs={"use_reentrant": False})
    for p in model.parameters():
        p.requires_grad_(False)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return model


def lora_config(cfg, model, answer_tokens: list[int] | None = None):
    from peft import LoraConfig

    from core.training.targets import target_regex

    return LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
        target_modules=target_regex(model, cfg), use_dora=cfg.use_dora, use_rslora=cfg.use_rslora,
        bias="none", task_type="CAUSAL_LM", trainable_token_indices=answer_tokens or None,
    )


def expose_head_bias(model) -> None:
    """TRL's fused LM head reads `lm_head.weight` and `lm_head.bias`. PEFT's TrainableTokensWrapper
    on a tied head answers `.weight` with the trained rows merged in (differentiable), but has no
    `.bias` (AttributeError); Gemma's head has none, so it is stated as None."""
    head = model.get_output_embeddings()
    try:
        head.bias
    except AttributeError:
        head.bias = getattr(getattr(head, "original_module", None), "bias", None)


def prepare(cfg, hw, precision: str) -> Prepared:
    device = "cuda" if hw.cuda else "cpu"
    model, processor = load_base(cfg, device, weight_dtype(cfg, precision))
    notes = []
    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_kbit(model, cfg.gradient_checkpointing, keep_16bit=precision == "bf16")
        if device == "cpu" and disable_avx512_bf16_repack(model):
            notes.append("avx512_bf16 weight repacking turned off on the 4-bit layers")
    if cfg.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    if cfg.method == "lora":
        tokens = None
        if cfg.train_answer_tokens:
            from core.training.data import answer_token_ids

            tokens = answer_token_ids(cfg, processor)
            notes.append(f"train_answer_tokens: the embedding rows of {len(tokens)} answer tokens train too")
        model = add_adapter(model, lora_config(cfg, model, tokens), notes)
        if tokens:
            expose_head_bias(model)
    collator = CountingVisionCollator(processor=processor, max_length=cfg.max_seq_length,
                                      completion_only_loss=True)
    liger = cfg.resolved_liger(hw, "hf") and apply_liger(model, cfg.liger_kernel == "on", notes)
    return Prepared("hf", model, processor, collator, None, notes=notes, liger=liger)


def apply_liger(model, required: bool, notes: list[str]) -> bool:
    """Liger Kernel's Gemma 3 kernels on this model instance: RMSNorm, GEGLU, RoPE and the vision
    tower's LayerNorm. Its cross-entropy kernels stay off: they would replace the forward that
    TRL's fused LM head patches. With liger_kernel=auto a failure to apply them is a note and
    training goes on without them; with liger_kernel=on it fails the run."""
    try:
        from liger_kernel.transformers import apply_liger_kernel_to_gemma3

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        apply_liger_kernel_to_gemma3(rope=True, cross_entropy=False, fused_linear_cross_entropy=False,
                                     layer_norm=True, rms_norm=True, geglu=True, model=base)
    except Exception as e:  # noqa: BLE001 - ImportError (no Triton), TypeError (another model class), ...
        why = f"{type(e).__name__}: {e}"
        if required:
            raise StudioError(f"Liger's kernels could not be applied ({why}).",
                              "Use liger_kernel=auto (it then trains without them) or off.") from e
        notes.append(f"Liger's kernels could not be applied ({why}): training without them")
        return False
    notes.append("Liger kernels: RMSNorm, GEGLU, RoPE and the vision LayerNorm")
    return True


def add_adapter(model, peft_config, notes: list[str]):
    """The PEFT model, with fast DoRA layers when the config asks for DoRA. Same parameters and
    the same saved adapter as PEFT's own; FAST_DORA=0 in the environment keeps PEFT's layers."""
    from peft import get_peft_model

    model = get_peft_model(model, peft_config)
    if peft_config.use_dora:
        notes += fast_dora_note(model)
    notes += fast_lora_note(model)
    return model


def fast_lora_note(model) -> list[str]:
    """Fuses adapted linear layers into one autograd function each (core/training/fast_lora.py:
    the DoRA ones by default); returns the note for the events."""
    from core.training.fast_lora import enable_fast_lora

    n = enable_fast_lora(model)
    return [f"fast LoRA: {n} layers train through one fused function each"] if n else []


def fast_dora_note(model) -> list[str]:
    """Swaps in fast DoRA layers unless FAST_DORA=0 is set; returns the note for the events."""
    from core.training.levers import env_choice

    if env_choice("FAST_DORA") == "0":
        return ["fast DoRA off (FAST_DORA=0): PEFT's DoRA layers"]
    from core.training.fast_dora import enable_fast_dora

    n = enable_fast_dora(model)
    return [f"fast DoRA: {n} layers compute the weight norm once per optimizer step"] if n else []
