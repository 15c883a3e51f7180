"""Model shapes for the VRAM planner (core/memory.py): sizes from a config.json, and the published
config.json shapes of the registry's Gemma 3 / 3n models for planning offline."""
from __future__ import annotations

from core.errors import StudioError


def _g(d: dict, key: str, default):
    v = d.get(key)
    return default if v is None else v


def shapes(model_config: dict) -> dict:
    """Sizes the planner needs, from a Gemma 3 / Gemma 3 text-only / Gemma 3n config.json (missing
    keys take the library defaults, as the published configs rely on them)."""
    if not isinstance(model_config, dict):
        raise StudioError("The model config must be the contents of a config.json (a JSON object).",
                          "Pass a model id or a folder that holds config.json.")
    mt = model_config.get("model_type", "")
    if mt in ("gemma3", "gemma3n"):
        text = model_config.get("text_config") or {}
        vision = model_config.get("vision_config") or {}
    elif mt == "gemma3_text":
        text, vision = model_config, None
    else:
        raise StudioError(f"The planner knows Gemma 3 and Gemma 3n models, not '{mt or 'unknown'}'.",
                          "Pick a Gemma 3 / 3n model (its config.json has model_type gemma3, gemma3_text or gemma3n).")
    n3 = mt == "gemma3n"
    h = _g(text, "hidden_size", 2048 if n3 else 2304)
    inter = _g(text, "intermediate_size", 16384 if n3 else 9216)
    L = _g(text, "num_hidden_layers", 35 if n3 else 26)
    inter = max(inter) if isinstance(inter, list) else inter  # Gemma 3n lists it per layer
    nh, nkv = _g(text, "num_attention_heads", 8), _g(text, "num_key_value_heads", 2 if n3 else 4)
    hd = _g(text, "head_dim", 256)
    V = _g(text, "vocab_size", 262400 if n3 else 262208)
    q, kv = nh * hd, nkv * hd
    # (in, out) of each adaptable linear layer of one decoder layer, by kind
    text_linears = {"attention": [(h, q), (h, kv), (h, kv), (q, h)], "mlp": [(h, inter), (h, inter), (inter, h)]}
    per_layer = sum(i * o for ls in text_linears.values() for i, o in ls)
    s = {"family": mt, "h": h, "inter": inter, "L": L, "q": q, "kv": kv, "V": V, "nh": nh,
         "text_linears": text_linears, "embed": V * h, "norms": L * 4 * h, "streams": 1, "kv_shared": 0,
         "text_linear": L * per_layer, "other_16bit": 0, "other_linear": 0, "vision": None}
    if n3:
        ple = _g(text, "hidden_size_per_layer_input", 256)
        rank = _g(text, "laurel_rank", 64)
        # the last num_kv_shared_layers reuse an earlier layer's keys and values: no k_proj / v_proj
        s["kv_shared"] = _g(text, "num_kv_shared_layers", 15)
        s["text_linear"] -= s["kv_shared"] * 2 * h * kv
        s["streams"] = _g(text, "altup_num_inputs", 4)  # AltUp carries 4 copies of the hidden state
        s["embed"] += _g(text, "vocab_size_per_layer_input", 262144) * L * ple  # per-layer embeddings
        s["other_linear"] = L * (2 * h * ple + 2 * h * rank) + h * L * ple
        # AltUp weights stay 16-bit (core/models.GEMMA3N_SKIP_4BIT); the timm vision tower is
        # convolutions (bitsandbytes quantizes only nn.Linear: it stays 16-bit); audio by size
        s["other_16bit"] = L * 4 * 4 * 4 + 2 * 3 * h * h
        s["vision_params"], s["audio_params"] = 0.30e9, (0.68e9 if model_config.get("audio_config") is not None else 0)
        s["vision_16bit"] = s["vision_params"]
        s["mm_tokens"] = _g(model_config, "vision_soft_tokens_per_image", 256) if vision is not None else 0
        s["vision"] = {"linears": [(_g(vision, "hidden_size", 2048), h)], "Lv": 0, "hv": 0, "nhv": 0, "patches": 0}
        return s
    if vision is not None:
        hv, iv = _g(vision, "hidden_size", 768), _g(vision, "intermediate_size", 3072)
        Lv, nhv = _g(vision, "num_hidden_layers", 12), _g(vision, "num_attention_heads", 12)
        P = (_g(vision, "image_size", 224) // _g(vision, "patch_size", 16)) ** 2
        lin = [(hv, hv)] * 4 + [(hv, iv), (iv, hv)]
        s["vision"] = {"hv": hv, "Lv": Lv, "nhv": nhv, "patches": P, "linears": lin}
        s["vision_params"] = Lv * (sum(i * o for i, o in lin) + 4 * hv + 2 * hv) + P * hv + 3 * 14 * 14 * hv
        s["vision_16bit"] = Lv * 6 * hv + P * hv + 3 * 14 * 14 * hv  # norms, biases, position and patch embeddings
        s["other_16bit"] = hv * h + hv  # multi-modal projector (a parameter, not a Linear)
        s["mm_tokens"] = _g(model_config, "mm_tokens_per_image", 256)
    else:
        s["vision_params"], s["vision_16bit"], s["mm_tokens"] = 0, 0, 0
    s["audio_params"] = 0
    return s


_SIGLIP = {"hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16,
           "image_size": 896, "patch_size": 14, "model_type": "siglip_vision_model"}
_TEXT = {  # published text shapes (hidden, intermediate, layers, heads, kv heads, head_dim)
    "gemma-3-4b": (2560, 10240, 34, 8, 4, 256), "gemma-3-12b": (3840, 15360, 48, 16, 8, 256),
    "gemma-3-27b": (5376, 21504, 62, 32, 16, 128),
}


def published_config(model_id: str) -> dict | None:
    """The published config.json shapes of the registry's Gemma 3 / 3n models, for planning offline
    (the planner reads shapes only). None for a model it does not know."""
    name = (model_id or "").lower()
    for key, (h, i, L, nh, nkv, hd) in _TEXT.items():
        if key in name:
            text = {"model_type": "gemma3_text", "hidden_size": h, "intermediate_size": i, "num_hidden_layers": L,
                    "num_attention_heads": nh, "num_key_value_heads": nkv, "head_dim": hd, "vocab_size": 262208}
            return {"model_type": "gemma3", "text_config": text, "vision_config": dict(_SIGLIP),
                    "mm_tokens_per_image": 256}
    if "gemma-3n-e4b" in name or "gemma-3n-e2b" in name:
        L, inter = (35, 16384) if "e4b" in name else (30, 8192)
        text = {"model_type": "gemma3n_text", "hidden_size": 2048, "intermediate_size": [inter] * L,
                "num_hidden_layers": L, "num_kv_shared_layers": 15 if "e4b" in name else 10, "altup_num_inputs": 4,
                "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 256,
                "vocab_size": 262400, "vocab_size_per_layer_input": 262144, "hidden_size_per_layer_input": 256}
        return {"model_type": "gemma3n", "text_config": text, "vision_config": {"hidden_size": 2048},
                "audio_config": {"hidden_size": 1536}}
    return None


