"""Random-weight Gemma 3 models with the published shapes, saved as normal Hugging Face folders.

Weights cannot be downloaded here, and memory and speed do not depend on the weights' values, so
the GPU benchmarks build each model from its published config (every field written out below),
`save_pretrained` it to local disk, and then the studio loads it with `from_pretrained` exactly as
it would load google/gemma-3-4b-it.

The tokenizer is an offline word-level one whose special tokens sit at Gemma 3's real ids
(<start_of_image> 255999, <end_of_image> 256000, <image_soft_token> 262144, ...), so the
processor expands an image into the real 256-token block and token ids span the real vocabulary.
Every other word maps to an ordinary id: one whitespace-separated word is one token.

  python3 bench/gpu_models.py --size 4b --path /tmp/gemma3_4b
"""
from __future__ import annotations

import argparse
import json
import os
import time

PAD, EOS, BOS, UNK, MASK = 0, 1, 2, 3, 4
SOT, EOT = 105, 106
BOI, EOI, IMG = 255999, 256000, 262144
VOCAB = 262208
MM_TOKENS = 256

# Text decoders as published in google/gemma-3-{4b,12b}-it config.json; "tiny" is a CPU smoke test.
TEXT_SHAPES = {
    "4b": dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8,
               num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256),
    "12b": dict(hidden_size=3840, intermediate_size=15360, num_hidden_layers=48, num_attention_heads=16,
                num_key_value_heads=8, head_dim=256, query_pre_attn_scalar=256),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=32),
}
# SigLIP-So400m at 896 px, patch 14 (shared by every Gemma 3 vision model)
VISION_SHAPES = {
    "full": dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                 image_size=896, patch_size=14),
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 image_size=224, patch_size=14),
}


def gemma3_config(size: str):
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig

    t = dict(TEXT_SHAPES[size])
    layers = t["num_hidden_layers"]
    text = Gemma3TextConfig(
        **t, vocab_size=VOCAB, hidden_activation="gelu_pytorch_tanh", max_position_embeddings=131072,
        initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
        pad_token_id=PAD, eos_token_id=EOS, bos_token_id=BOS, tie_word_embeddings=True,
        attention_bias=False, attention_dropout=0.0, sliding_window=1024,
        # every 6th layer attends globally (sliding_window_pattern 6), as published
        layer_types=["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(layers)],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                         "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1_000_000.0}},
        final_logit_softcapping=None, attn_logit_softcapping=None, use_bidirectional_attention=False,
    )
    vision = SiglipVisionConfig(
        **VISION_SHAPES["tiny" if size == "tiny" else "full"], num_channels=3, hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6, attention_dropout=0.0, vision_use_head=False,
    )
    cfg = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=MM_TOKENS if size != "tiny" else 16,
                       boi_token_index=BOI, eoi_token_index=EOI, image_token_index=IMG,
                       initializer_range=0.02, tie_word_embeddings=True)
    cfg.architectures = ["Gemma3ForConditionalGeneration"]
    cfg.eos_token_id = [EOS, EOT]
    return cfg


CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] | trim }}{% else %}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<start_of_image>"
    "{% elif item['type'] == 'text' %}{{ item['text'] | trim }}{% endif %}{% endfor %}{% endif %}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")


def word_tokenizer(special: dict, n_ids: int, max_len: int, extra_special: dict, template: str):
    """An offline word-level tokenizer over ids 0..n_ids-1: the special tokens at their real ids, every
    other id an ordinary word w<id> (one whitespace-separated word is one token)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    by_id = {i: tok for tok, i in special.items()}
    vocab = {by_id.get(i, f"w{i}"): i for i in range(n_ids)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.add_special_tokens(list(special))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>", padding_side="right", model_max_length=max_len, extra_special_tokens=extra_special)
    tok.chat_template = template
    return tok


def build_processor(path: str, image_size: int, mm_tokens: int):
    from transformers import Gemma3Processor

    try:  # PIL backend: also runs where torchvision is missing (the CPU smoke test)
        from transformers import Gemma3ImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import Gemma3ImageProcessor as ImageProcessor

    special = {"<pad>": PAD, "<eos>": EOS, "<bos>": BOS, "<unk>": UNK, "<mask>": MASK,
               "<start_of_turn>": SOT, "<end_of_turn>": EOT,
               "<start_of_image>": BOI, "<end_of_image>": EOI, "<image_soft_token>": IMG}
    tok = word_tokenizer(special, IMG + 1, 131072,
                         {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                          "image_token": "<image_soft_token>"}, CHAT_TEMPLATE)
    ip = ImageProcessor(size={"height": image_size, "width": image_size}, image_mean=[0.5] * 3,
                        image_std=[0.5] * 3, do_pan_and_scan=False, resample=2, rescale_factor=1 / 255,
                        do_resize=True, do_rescale=True, do_normalize=True, do_convert_rgb=True)
    proc = Gemma3Processor(image_processor=ip, tokenizer=tok, chat_template=CHAT_TEMPLATE,
                           image_seq_length=mm_tokens)
    proc.save_pretrained(path)
    return proc


def build_folder(path: str, make_config, model_class, towers: dict, make_processor, device: str | None = None) -> dict:
    """Builds (once) a random-weight model_class(make_config()) in bf16 into path, then its processor
    (make_processor(path, cfg)). Returns {"params", one count per tower, "seconds"}, where towers maps a
    count's name to the parameter-name part that marks it; BUILD_OK, holding that, marks a complete folder."""
    import torch

    ok = os.path.join(path, "BUILD_OK")
    if os.path.exists(ok):
        return json.load(open(ok))
    t0 = time.time()
    cfg = make_config()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # init straight in bf16: a 12B fp32 copy would need 48 GB
    try:
        with torch.device(device):
            model = model_class(cfg)
    finally:
        torch.set_default_dtype(torch.float32)
    model.config.dtype = torch.bfloat16
    info = {"params": sum(p.numel() for p in model.parameters()),
            **{name: sum(p.numel() for n, p in model.named_parameters() if part in n) for name, part in towers.items()}}
    model.save_pretrained(path, max_shard_size="4GB")
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    make_processor(path, cfg)
    info["seconds"] = round(time.time() - t0, 1)
    with open(ok, "w") as f:
        json.dump(info, f)
    return info


TOWERS = {"language": "language_model", "vision": "vision_tower"}


def build(size: str, path: str, device: str | None = None) -> dict:
    """Builds (once) and returns {"params", "language", "vision", "seconds"}; BUILD_OK marks a complete folder."""
    from transformers import Gemma3ForConditionalGeneration

    return build_folder(path, lambda: gemma3_config(size), Gemma3ForConditionalGeneration, TOWERS,
                        lambda p, cfg: build_processor(p, cfg.vision_config.image_size, cfg.mm_tokens_per_image),
                        device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(TEXT_SHAPES), required=True)
    ap.add_argument("--path", required=True)
    a = ap.parse_args()
    print(json.dumps(build(a.size, a.path)))


if __name__ == "__main__":
    main()
