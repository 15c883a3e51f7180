"""The Unsloth backend (CUDA only): FastVisionModel, its LoRA, its vision collator and its
gradient checkpointing. Same config, same SFTTrainer loop, same events, same PEFT adapter output.

Nothing here is imported unless the backend is chosen: importing unsloth needs a GPU and patches
transformers/TRL globally. Unsloth's own API is used as documented (FastVisionModel.from_pretrained
/ get_peft_model / for_training, unsloth.trainer.UnslothVisionDataCollator).
"""
from __future__ import annotations

from core.errors import StudioError
from core.training.backend_hf import Prepared, weight_dtype
from core.training.data import TruncationStats, truncate_batch
from core.training.targets import select_modules

# Gemma 3 / 3n chat turns, as Unsloth's docs give them for train_on_responses_only.
GEMMA_INSTRUCTION = "<start_of_turn>user\n"
GEMMA_RESPONSE = "<start_of_turn>model\n"


class _MessagesCollator:
    """Turns our prompt/completion examples into the messages shape Unsloth's collator reads,
    and counts truncation the same way as the HF path (its processor call is left untruncated)."""

    def __init__(self, inner, max_length: int | None):
        self.inner, self.max_length, self.stats = inner, max_length, TruncationStats()

    def __call__(self, examples):
        converted = []
        for ex in examples:
            image = ex["images"][0]
            converted.append({"messages": [
                {"role": "user", "content": [{"type": "image", "image": image},
                                             {"type": "text", "text": ex["prompt"][0]["content"]}]},
                {"role": "assistant", "content": [{"type": "text", "text": ex["completion"][0]["content"]}]},
            ], "images": [image]})
        return truncate_batch(self.inner(converted), self.max_length, self.stats)


def _check_applied(model, cfg) -> None:
    """Some Unsloth versions accept but drop use_dora / use_rslora; never train the wrong thing."""
    peft_cfg = getattr(model, "peft_config", {}).get("default")
    for key in ("use_dora", "use_rslora"):
        if getattr(cfg, key) and not getattr(peft_cfg, key, False):
            raise StudioError(f"This Unsloth version does not apply {key}.",
                              "Use backend=hf for DoRA / rsLoRA, or turn the option off.")


def prepare(cfg, hw, precision: str) -> Prepared:
    if not hw.cuda:
        raise StudioError("Unsloth needs a CUDA GPU.", "Use backend=hf (or auto) on this machine.")
    if cfg.method != "lora":
        raise StudioError("The Unsloth backend here trains LoRA adapters only.", "Use backend=hf for method=full.")
    try:
        from unsloth import FastVisionModel  # must come before transformers/peft imports take effect
        from unsloth.trainer import UnslothVisionDataCollator
    except Exception as e:  # ImportError, or its GPU checks failing
        raise StudioError(f"Unsloth could not be imported: {e}", "Use backend=hf, or fix the unsloth install.") from e

    from core import models

    gc = "unsloth" if cfg.gradient_checkpointing else False
    model, processor = FastVisionModel.from_pretrained(
        models.resolve(cfg.model_id), load_in_4bit=cfg.load_in_4bit, dtype=weight_dtype(cfg, precision),
        use_gradient_checkpointing=gc, max_seq_length=cfg.max_seq_length,
    )
    # target_modules=None lets Unsloth build its regex from the four part/kind switches (its
    # "all-linear" would switch them all on); named layers go in as our own selection.
    explicit = [t for t in cfg.target_modules if t != "all-linear"]
    model = FastVisionModel.get_peft_model(
        model,
        finetune_vision_layers=cfg.finetune_vision_layers,
        finetune_language_layers=cfg.finetune_language_layers,
        finetune_attention_modules=cfg.finetune_attention_modules,
        finetune_mlp_modules=cfg.finetune_mlp_modules,
        target_modules=select_modules(model, cfg) if explicit else None,
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
        use_rslora=cfg.use_rslora, use_dora=cfg.use_dora, random_state=cfg.seed,
        use_gradient_checkpointing=gc,
    )
    _check_applied(model, cfg)
    notes = []
    if cfg.use_dora:  # Unsloth's fast LoRA kernels skip DoRA layers, which fall back to PEFT's
        from core.training.backend_hf import fast_dora_note

        notes += fast_dora_note(model)
    FastVisionModel.for_training(model)
    side = cfg.image_size
    inner = UnslothVisionDataCollator(
        model, processor, max_seq_length=None, resize=side if side else "min",
        train_on_responses_only=True, instruction_part=GEMMA_INSTRUCTION, response_part=GEMMA_RESPONSE,
    )
    # It falls back to model.max_seq_length and truncates inside the processor, where nothing can
    # count the cut; truncate_batch cuts (and counts) instead, exactly like the HF path.
    inner.max_seq_length, inner.truncation = None, False
    # Unsloth's collator does its own formatting: TRL must pass examples through untouched.
    overrides = {"remove_unused_columns": False, "dataset_text_field": "",
                 "dataset_kwargs": {"skip_prepare_dataset": True}}
    notes.append("Unsloth compiles each layer on the first step: the first step can take minutes "
                 "(Gemma 3n: over 7 minutes was seen on an H100).")
    return Prepared("unsloth", model, processor, _MessagesCollator(inner, cfg.max_seq_length),
                    None, overrides, notes)
