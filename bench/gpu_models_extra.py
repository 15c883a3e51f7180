"""Random-weight Gemma 3n (E4B, E2B) and Gemma 3 27B folders with the published shapes.

The companion of bench/gpu_models.py (Gemma 3 4B / 12B) for the memory benchmark: the same idea
(build from the published config, `save_pretrained`, then the studio loads the folder with
`from_pretrained` as a user would), for the models that file does not build.

- Gemma 3n: `Gemma3nConfig()`'s defaults are E4B (35 layers, MLP 16384, 15 KV-shared layers); E2B
  is 30 layers, MLP 8192, 10 KV-shared layers. Vision = timm's mobilenetv5_300m_enc (needs timm,
  which the GPU box has), audio = the default Conformer. The processor is Gemma3nProcessor with a
  word-level tokenizer whose special tokens sit at Gemma 3n's ids (<image_soft_token> 262145, ...)
  and a chat template that emits <image_soft_token> for an image, as the published one does.
- Gemma 3 27B: the text decoder of google/gemma-3-27b-it (62 layers, hidden 5376, head_dim 128,
  query_pre_attn_scalar 168) on the shared SigLIP tower, through gpu_models.build.

  python3 bench/gpu_models_extra.py --size e4b --path /tmp/gemma3_e4b
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_models  # noqa: E402

gpu_models.TEXT_SHAPES.setdefault("27b", dict(hidden_size=5376, intermediate_size=21504, num_hidden_layers=62,
                                              num_attention_heads=32, num_key_value_heads=16, head_dim=128,
                                              query_pre_attn_scalar=168))
N3_TEXT = {"e4b": dict(num_hidden_layers=35, intermediate_size=16384, num_kv_shared_layers=15),
           "e2b": dict(num_hidden_layers=30, intermediate_size=8192, num_kv_shared_layers=10)}
# Gemma 3n special token ids (configuration_gemma3n.Gemma3nConfig)
N3_SPECIAL = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "<start_of_turn>": 105,
              "<end_of_turn>": 106, "<start_of_image>": 255999, "<start_of_audio>": 256000,
              "<end_of_image>": 262144, "<image_soft_token>": 262145, "<end_of_audio>": 262272,
              "<audio_soft_token>": 262273}
N3_VOCAB = 262400
N3_TEMPLATE = gpu_models.CHAT_TEMPLATE.replace("<start_of_image>", "<image_soft_token>")


def gemma3n_config(size: str):
    from transformers import Gemma3nAudioConfig, Gemma3nConfig, Gemma3nTextConfig, Gemma3nVisionConfig

    t = N3_TEXT[size]
    L = t["num_hidden_layers"]
    text = Gemma3nTextConfig(
        vocab_size=N3_VOCAB, vocab_size_per_layer_input=262144, hidden_size=2048, hidden_size_per_layer_input=256,
        intermediate_size=[t["intermediate_size"]] * L, num_hidden_layers=L, num_attention_heads=8,
        num_key_value_heads=2, head_dim=256, hidden_activation="gelu_pytorch_tanh", max_position_embeddings=32768,
        rms_norm_eps=1e-6, sliding_window=512, final_logit_softcapping=30.0, altup_num_inputs=4,
        altup_active_idx=0, altup_coef_clip=120.0, altup_correct_scale=True, laurel_rank=64,
        num_kv_shared_layers=t["num_kv_shared_layers"],
        layer_types=["full_attention" if (i + 1) % 5 == 0 else "sliding_attention" for i in range(L)],
        activation_sparsity_pattern=[0.95] * 10 + [0.0] * (L - 10),
        pad_token_id=0, eos_token_id=1, bos_token_id=2)
    cfg = Gemma3nConfig(text_config=text, vision_config=Gemma3nVisionConfig(), audio_config=Gemma3nAudioConfig(),
                        vision_soft_tokens_per_image=256, audio_soft_tokens_per_image=188)
    cfg.architectures = ["Gemma3nForConditionalGeneration"]
    cfg.eos_token_id = [1, 106]
    return cfg


def build_3n_processor(path: str):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import Gemma3nAudioFeatureExtractor, Gemma3nProcessor, PreTrainedTokenizerFast

    try:
        from transformers import SiglipImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import SiglipImageProcessor as ImageProcessor
    by_id = {i: tok for tok, i in N3_SPECIAL.items()}
    vocab = {by_id.get(i, f"w{i}"): i for i in range(N3_VOCAB)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.add_special_tokens(list(N3_SPECIAL))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>", padding_side="right", model_max_length=32768,
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>", "boa_token": "<start_of_audio>",
                              "eoa_token": "<end_of_audio>", "audio_token": "<audio_soft_token>"})
    tok.chat_template = N3_TEMPLATE
    ip = ImageProcessor(size={"height": 768, "width": 768}, image_mean=[0.0] * 3, image_std=[1.0] * 3,
                        resample=2, rescale_factor=1 / 255, do_resize=True, do_rescale=True, do_normalize=False,
                        do_convert_rgb=True)
    proc = Gemma3nProcessor(feature_extractor=Gemma3nAudioFeatureExtractor(), image_processor=ip, tokenizer=tok,
                            chat_template=N3_TEMPLATE, audio_seq_length=188, image_seq_length=256)
    proc.save_pretrained(path)
    return proc


def build(size: str, path: str) -> dict:
    if size not in N3_TEXT:
        return gpu_models.build(size, path)
    import torch
    from transformers import Gemma3nForConditionalGeneration

    ok = os.path.join(path, "BUILD_OK")
    if os.path.exists(ok):
        return json.load(open(ok))
    t0 = time.time()
    cfg = gemma3n_config(size)
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = Gemma3nForConditionalGeneration(cfg)
    finally:
        torch.set_default_dtype(torch.float32)
    model.config.dtype = torch.bfloat16
    info = {"params": sum(p.numel() for p in model.parameters()),
            "language": sum(p.numel() for n, p in model.named_parameters() if "language_model" in n),
            "vision": sum(p.numel() for n, p in model.named_parameters() if "vision_tower" in n),
            "audio": sum(p.numel() for n, p in model.named_parameters() if "audio_tower" in n)}
    model.save_pretrained(path, max_shard_size="4GB")
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    build_3n_processor(path)
    info["seconds"] = round(time.time() - t0, 1)
    with open(ok, "w") as f:
        json.dump(info, f)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted([*N3_TEXT, *gpu_models.TEXT_SHAPES]), required=True)
    ap.add_argument("--path", required=True)
    a = ap.parse_args()
    print(json.dumps(build(a.size, a.path)))


if __name__ == "__main__":
    main()
