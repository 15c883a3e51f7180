"""The offline demo model: a tiny Gemma 3 vision-language model made by this project, never downloaded.

It has the real architecture (`Gemma3ForConditionalGeneration`: SigLIP vision tower, multimodal
projector, Gemma 3 text decoder), a SentencePiece tokenizer trained here on a fixed corpus (the
`tokenizer.model` that llama.cpp's GGUF converter needs), Gemma 3's special tokens and chat
template, and the PIL image processor (torchvision is not usable with our CPU torch). It is saved
as a normal Hugging Face folder, so every other part of the studio loads it exactly like a hub model.

Two stages:
- `build_demo_model` makes the random-weight model (the same seed gives the same bytes, which the
  tests check). It is the starting point of the recipe.
- `assets/demo/pretrain_base.py` pretrains it on generated, captioned images into
  `assets/demo/base/` - the demo base that ships in the repo, that `demo` resolves to and that the
  studio and the tests use (`demo_base_path`).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

from core.demo_corpus import CORPUS_VERSION, corpus_lines
from core.errors import StudioError
from core.fsutil import atomic_dir

RECIPE_VERSION = 2
RECIPE_FILE = "demo_recipe.json"
BASE_DIR = Path(__file__).resolve().parent.parent / "assets" / "demo" / "base"
# What a complete base folder holds (the recipe writes it whole, then renames it into place).
BASE_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
              "processor_config.json", "chat_template.jinja", "generation_config.json", "pretrain.json")

# Vision input: a 2:1 key photo squeezed to 96 px square, 8 px patches -> 12x12 patches, average
# pooled 2x2 into 6x6 = 36 image tokens: enough columns to tell 5-6 cut positions apart while a
# keys example (image + prompt + answer) stays near 140 tokens for CPU training. The vision tower
# is the larger half: a LoRA fine-tune only runs it forward, and it is what pretraining teaches.
RECIPE: dict = {
    "image_size": 96,
    "patch_size": 8,
    "mm_tokens_per_image": 36,
    "vision": {"hidden_size": 192, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4},
    "text": {"hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4, "num_attention_heads": 4,
             "num_key_value_heads": 1, "head_dim": 32, "max_position_embeddings": 1024, "sliding_window": 256},
    "tokenizer": {"model_type": "bpe", "vocab_size": 2048},
}

# Gemma 3's special tokens, at fixed low ids. The pad/eos/bos/unk order matches the real Gemma 3
# vocabulary (0, 1, 2, 3); the others are SentencePiece user-defined symbols so both SentencePiece
# and llama.cpp match them in raw text.
SPECIAL = ["<mask>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>", "<image_soft_token>"]
NEWLINES = ["\n", "\n\n"]  # ordinary pieces (not special): the answers are multi-line

# Gemma 3's chat format, written for this project: system text is folded into the first user turn,
# the assistant role is called "model", an image item becomes <start_of_image> (the processor expands
# it into boi + soft tokens + eoi).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_prefix = messages[0]['content'] ~ '\n\n' -%}"
    "{%- else -%}{%- set first_prefix = messages[0]['content'][0]['text'] ~ '\n\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' ~ role ~ '\n' ~ (first_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def recipe_hash() -> str:
    """Changes whenever the built files could change (recipe, corpus, chat template, library)."""
    import transformers

    corpus = hashlib.sha256("\n".join(corpus_lines()).encode()).hexdigest()
    blob = json.dumps({"recipe": RECIPE, "v": RECIPE_VERSION, "corpus": [CORPUS_VERSION, corpus], "special": SPECIAL,
                       "template": CHAT_TEMPLATE, "transformers": transformers.__version__},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _train_sentencepiece() -> bytes:
    """Trains the tokenizer in memory (no file paths end up in the model proto: same bytes every run)."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()), model_writer=buf,
        model_type=RECIPE["tokenizer"]["model_type"], vocab_size=RECIPE["tokenizer"]["vocab_size"],
        hard_vocab_limit=False,  # the corpus is small: take what it supports, up to vocab_size
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=SPECIAL + NEWLINES, byte_fallback=True, split_digits=True,
        add_dummy_prefix=False, remove_extra_whitespaces=False, normalization_rule_name="identity",
        character_coverage=1.0, num_threads=1, shuffle_input_sentence=False, minloglevel=2,
    )
    proto = pb.ModelProto()
    proto.ParseFromString(buf.getvalue())
    for piece in proto.pieces:  # newlines are plain text, not symbols to hide when decoding
        if piece.piece in NEWLINES:
            piece.type = pb.ModelProto.SentencePiece.NORMAL
    return proto.SerializeToString()


def _build_processor(spm_path: Path):
    from tokenizers import AddedToken
    from tokenizers.models import BPE
    from transformers import Gemma3ImageProcessorPil, Gemma3Processor, GemmaTokenizer
    from transformers.convert_slow_tokenizer import SentencePieceExtractor

    extracted = SentencePieceExtractor(str(spm_path)).extract(BPE)
    tok = GemmaTokenizer(
        vocab=extracted["vocab"], merges=extracted["merges"], add_bos_token=True, add_eos_token=False,
        model_max_length=RECIPE["text"]["max_position_embeddings"],
        extra_special_tokens={"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>",
                              "image_token": "<image_soft_token>"},
    )
    # special=True so decode(skip_special_tokens=True) drops turn and image markers, as Gemma 3 does.
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL], special_tokens=True)
    size = RECIPE["image_size"]
    image_processor = Gemma3ImageProcessorPil(
        size={"height": size, "width": size}, do_resize=True, resample=2,  # bilinear
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], do_convert_rgb=True, do_pan_and_scan=False,
    )
    return Gemma3Processor(image_processor=image_processor, tokenizer=tok, chat_template=CHAT_TEMPLATE,
                           image_seq_length=RECIPE["mm_tokens_per_image"])


def _build_config(tok):
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig

    v, t = RECIPE["vision"], RECIPE["text"]
    ids = {name: tok.convert_tokens_to_ids(name) for name in SPECIAL}
    vision = SiglipVisionConfig(
        hidden_size=v["hidden_size"], intermediate_size=v["intermediate_size"],
        num_hidden_layers=v["num_hidden_layers"], num_attention_heads=v["num_attention_heads"],
        num_channels=3, image_size=RECIPE["image_size"], patch_size=RECIPE["patch_size"],
        hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6, attention_dropout=0.0, vision_use_head=False,
    )
    text = Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=t["hidden_size"], intermediate_size=t["intermediate_size"],
        num_hidden_layers=t["num_hidden_layers"], num_attention_heads=t["num_attention_heads"],
        num_key_value_heads=t["num_key_value_heads"], head_dim=t["head_dim"],
        hidden_activation="gelu_pytorch_tanh", max_position_embeddings=t["max_position_embeddings"],
        initializer_range=0.02, rms_norm_eps=1e-6, use_cache=True,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
        tie_word_embeddings=True, attention_bias=False, attention_dropout=0.0,
        query_pre_attn_scalar=t["head_dim"], sliding_window=t["sliding_window"],
        layer_types=["sliding_attention"] * (t["num_hidden_layers"] - 1) + ["full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0},
                         "full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0}},
        final_logit_softcapping=None, attn_logit_softcapping=None,
    )
    return Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=RECIPE["mm_tokens_per_image"],
        boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"], initializer_range=0.02, tie_word_embeddings=True,
    )


def build_demo_model(out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Builds the demo model into out_dir (replaced if present) and returns its path.

    Written to a temporary sibling folder first, so out_dir is either complete or absent."""
    import torch
    from transformers import Gemma3ForConditionalGeneration, GenerationConfig

    out = Path(out_dir).resolve()
    with atomic_dir(out) as tmp:
        (tmp / "tokenizer.model").write_bytes(_train_sentencepiece())
        processor = _build_processor(tmp / "tokenizer.model")
        tok = processor.tokenizer
        config = _build_config(tok)
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
            torch.manual_seed(seed)
            model = Gemma3ForConditionalGeneration(config).to(torch.float32).eval()
            # transformers starts the projector at zero (real checkpoints overwrite it); from scratch
            # that would hide the image from the text model until the projector has grown.
            with torch.no_grad():
                model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, config.initializer_range)
        model.generation_config = GenerationConfig(
            bos_token_id=tok.bos_token_id, pad_token_id=tok.pad_token_id, do_sample=False,
            eos_token_id=[tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>")],
        )
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        recipe = {"recipe": RECIPE, "recipe_version": RECIPE_VERSION, "corpus_version": CORPUS_VERSION,
                  "hash": recipe_hash(), "seed": seed}
        (tmp / RECIPE_FILE).write_text(json.dumps(recipe, indent=2, sort_keys=True) + "\n")
    return out


def demo_base_path() -> Path:
    """The shipped, pretrained demo base (assets/demo/base); a clear error when it is incomplete."""
    missing = [name for name in BASE_FILES if not (BASE_DIR / name).is_file()]
    if missing:
        raise StudioError(f"The demo base in {BASE_DIR} is incomplete (missing {', '.join(missing)}).",
                          "Restore it with `git checkout -- assets/demo/base`, or rebuild it with "
                          "`python -m core demo --base` (minutes on a GPU, much longer on a CPU).")
    return BASE_DIR


def ensure_demo_model(workspace: str | os.PathLike | None = None) -> Path:
    """The folder `demo` loads from: the shipped base. Nothing is built or written (the workspace
    argument is kept for callers; the base is read-only and shared)."""
    return demo_base_path()
