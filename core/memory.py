"""VRAM planner: the peak GPU memory a training run will reserve, before it is launched.

    plan(model_config, train_config, gpu, backend="hf") -> {"predicted_peak_gb", "fits", "gpu_gb",
                                                            "breakdown", "advice", "notes"}
    core.memory_data.plan_dataset(...)  -> the same, with the tokens per example from the dataset

The model is physical: parameter counts come from the model's config.json (any Gemma 3 / 3n size,
no weights needed; core/memory_models.py), and memory is bytes per parameter / token / image. A few
constants (`K`) were fitted to peaks measured on lent H100 / H200 GPUs through the studio's own
training job (assets/memory_measurements.json, bench/gpu_memory.py) - on the in-sample rows only:
a fixed third of the rows, by a hash of their config (core/memory_fit.py), is held out, and
tests/test_memory.py states both errors (held out: never more than 5% under, at most 10% over).
All sizes are GiB (2**30 bytes), the unit torch reports.

What a run holds at its peak (HF backend = transformers + PEFT + TRL, as core/training runs it):
- frozen weights: 4-bit nf4 linear layers (0.5 byte + block scales); every other weight
  (embeddings, norms, projector) stays 16-bit under bf16 and is upcast to fp32 under fp16 (peft's
  prepare_model_for_kbit_training, which the job keeps for fp16 only). Without 4-bit, all 16-bit.
- adapter weights, their gradients (fp32) and optimizer states (adamw_8bit: 2 bytes per weight).
- activations, in two phases whose larger one sets the peak:
  * vision phase: the SigLIP tower encodes the batch's images; its attention over 4096 patches is
    the largest transient (about 1 GiB per image).
  * text phase: with gradient checkpointing, each decoder layer keeps its input (Gemma 3n: its 4
    AltUp streams) and one layer is recomputed at a time; without it every layer keeps all its activations. The loss over the 262k
    vocabulary is computed in tiles by TRL's fused LM head (no full logits); under fp16 4-bit the
    fp32 tied embedding is cast to 16-bit for it.
- allocator overhead: reserved = allocated * (1 + f) + c + per-example cache. CUDA's own context (~0.6 GiB, outside
  torch's allocator) is added only to decide whether the run fits.
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, is_dataclass

from core.errors import StudioError
from core.memory_models import published_config, shapes  # noqa: F401 - published_config: part of the API

GiB = 2**30
# Total memory CUDA reports for each card (torch.cuda.get_device_properties().total_memory), GiB.
GPUS = {"t4": 14.75, "l4": 21.96, "a10g": 21.99, "a100-40": 39.39, "a100-80": 79.25, "h100": 79.18}
NO_BF16 = {"t4"}  # of GPUS: cards without bf16, where precision 'auto' means fp16
CUDA_CONTEXT_GB = 0.60  # measured on the H100: context + cuBLAS, outside torch's allocator

# Fitted constants (python3 bench/gpu_memory.py fit: on the in-sample rows only, centred on +3% so that
# errors fall on the safe side; see bench/RESULTS.md). Everything else is counted.
K = {
    "ckpt_q4": 7.807,        # bytes per token x layer x hidden kept by checkpointing, 4-bit path (fp32 residual stream)
    "ckpt_16": 4.539,        # same, 16-bit path (about the 2-byte hidden state plus its share of rotary/mask inputs)
    "layer_q4": 1.0,        # one decoder layer's activations / (its saved-tensor count x 2 bytes), 4-bit path
    "layer_16": 1.0,        # same, 16-bit path (both counted, not fitted: every row without checkpointing is held out)
    "img_q4": 1.372,         # bytes per vision attention score (heads x patches^2) per image, 4-bit path
    "img_16": 0.11,         # same, 16-bit path (never the peak in the measured rows: weakly determined)
    "vision_keep": 4.196,    # bytes per patch x hidden x vision layer kept for the backward pass, per image
    "unsloth_logits": 0.894, # share of Unsloth's full 16-bit + fp32 logits alive at the peak (one measured row)
    "ckpt_n3": 6.828,         # Gemma 3n: bytes per token x layer x AltUp stream x hidden kept by checkpointing
    "alloc_const_gb": 0.056, # allocator rounding
    "alloc_per_example_gb": 0.0,  # allocator cache per example of the micro-batch
    "alloc_frac": 0.001,      # allocator cache in proportion to what is allocated
    "grads_live": 0.407,      # share of the adapter's gradients alive at the text peak (no accumulation)
    "nogc_margin": 0.10,    # safety margin on the counted activations without checkpointing (not fitted)
}

OPT_BYTES = {"adamw_8bit": 2.0, "paged_adamw_8bit": 2.0, "adamw_torch": 8.0, "adafactor": 0.5, "sgd": 0.0}
NF4_BYTES = {True: 0.5 + 1 / 64 + 4 / (64 * 256), False: 0.5 + 4 / 64}  # double quant: 8-bit block scales


# ---------------------------------------------------------------------- the estimate
def _cfg_dict(train_config) -> dict:
    from core.training.config import TrainConfig

    if is_dataclass(train_config):
        return asdict(train_config)
    if isinstance(train_config, dict):
        return TrainConfig.from_dict(train_config).to_dict()
    raise StudioError("train_config must be a TrainConfig or a dict of its fields.", "See core/training/config.py.")


def adapter_params(s: dict, c: dict) -> int:
    """LoRA (and DoRA magnitude) weights the config adds - the same layers core/training/targets.py picks."""
    if c["method"] != "lora":
        return 0
    explicit = {t for t in c["target_modules"] if t != "all-linear"}
    names = {"attention": ["q_proj", "k_proj", "v_proj", "o_proj"], "mlp": ["gate_proj", "up_proj", "down_proj"]}
    layers = []
    if c["finetune_language_layers"]:
        for kind, ls in s["text_linears"].items():
            for name, (i, o) in zip(names[kind], ls):
                if (name in explicit) if explicit else c[f"finetune_{'attention' if kind == 'attention' else 'mlp'}_modules"]:
                    layers += [(i, o)] * (s["L"] - (s["kv_shared"] if name in ("k_proj", "v_proj") else 0))
    v = s["vision"]
    if c["finetune_vision_layers"] and v is not None:
        vnames = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
        for idx, (i, o) in enumerate(v["linears"]):
            kind = "attention" if idx < 4 else "mlp"
            if v["Lv"] == 0:  # Gemma 3n: only the embedding projection is a linear layer on the vision side
                layers.append((i, o))
            elif (vnames[idx] in explicit) if explicit else c[f"finetune_{kind}_modules"]:
                layers += [(i, o)] * v["Lv"]
    r = c["lora_r"]
    return sum(r * (i + o) + (o if c["use_dora"] else 0) for i, o in layers)


def _optimizer(c: dict) -> str:
    return "adamw_8bit" if c["optimizer"] == "auto" else c["optimizer"]


def estimate(model_config: dict, train_config, backend: str = "hf") -> dict:
    """Breakdown in GiB plus the predicted reserved peak (no GPU needed)."""
    s = shapes(model_config)
    c = _cfg_dict(train_config)
    backend = "hf" if backend in ("auto", None) else backend
    q4 = bool(c["load_in_4bit"]) and c["method"] == "lora"
    unsloth = backend == "unsloth"
    wbytes = 4 if c["precision"] == "fp32" else 2
    full = c["method"] == "full"
    if full and c["precision"] == "fp16":
        wbytes = 4  # fp32 master weights (core/training/backend_hf.weight_dtype)
    linear = s["text_linear"] + s["other_linear"] + (s["vision_params"] - _vision_nonlinear(s)) + s["audio_params"]
    nonlinear = s["embed"] + s["norms"] + s["other_16bit"] + _vision_nonlinear(s)
    # HF under fp16 (T4): peft's prepare_model_for_kbit_training upcasts every non-4-bit weight to
    # fp32, and the fp32 embedding makes the residual stream fp32; under bf16 the job keeps them
    # 16-bit (core/training/backend_hf.prepare_kbit), as Unsloth does
    fp32_stream = q4 and not unsloth and c["precision"] == "fp16"
    if q4:
        frozen = linear * NF4_BYTES[bool(c["double_quant"])] + nonlinear * (4 if fp32_stream else 2)
    else:
        frozen = (linear + nonlinear) * wbytes
    n_train = adapter_params(s, c) if not full else linear + nonlinear
    opt = OPT_BYTES.get(_optimizer(c), 8.0)
    if full:
        adapter_w, grads = 0.0, n_train * wbytes
        frozen = n_train * wbytes
    else:
        adapter_w, grads = n_train * 4.0, n_train * 4.0
    optim = n_train * opt

    # ---- activations
    b, seq = c["batch_size"], c["max_seq_length"]
    T = b * seq
    h, inter, L = s["h"], s["inter"], s["L"]
    path = "q4" if fp32_stream else "16"
    layer_elems = 7 * h + 4 * s["q"] + 2 * s["kv"] + 3 * inter  # tensors one decoder layer saves, per token
    # Gemma's RMSNorms (4 per layer, and q/k norms) save their input upcast to fp32: 2 bytes more each
    layer_elems += 4 * h + s["q"] + s["kv"]
    if c["use_dora"] and not full:
        layer_elems += s["q"] + 2 * s["kv"] + 2 * h + 2 * inter  # DoRA keeps each layer's base output too
    one_layer = T * layer_elems * 2 * K[f"layer_{path}"]
    if c["gradient_checkpointing"]:
        # Gemma 3n keeps its 4 AltUp streams (and the per-layer inputs) for each layer
        per = K["ckpt_n3"] * s["streams"] * K[f"ckpt_{path}"] / K["ckpt_16"] if s["streams"] > 1 else K[f"ckpt_{path}"]
        ckpt = 0.0 if unsloth else T * L * h * per
        text_act = ckpt + one_layer
    else:
        # no in-sample row runs without checkpointing (core/memory_fit: all are held out), so the
        # counted activations are planned with a margin on the safe side
        text_act = L * one_layer * (1 + K["nogc_margin"])
    if unsloth:  # Unsloth's vision path returns full logits (16-bit) and takes the loss in fp32
        loss = T * s["V"] * 6 * K["unsloth_logits"]
    else:  # TRL's fused LM head: one logits tile + per-token outputs, never the full logits
        loss = min(T, 4096) * 32768 * 2 + T * 16
    if full and not unsloth:  # the fused LM head accumulates the tied embedding's gradient in fp32, then casts it
        loss += s["V"] * h * (4 + wbytes)
    v = s["vision"]
    vision_phase = vision_keep = 0.0
    if v is not None and v["patches"]:
        vision_phase = b * v["nhv"] * v["patches"] ** 2 * K[f"img_{path}"]
        # transformers' enable_input_require_grads hooks the vision embeddings too, so the tower's
        # activations stay for the backward pass even when no vision layer is adapted - except on
        # the bf16 QLoRA path without checkpointing, where the job does not call it (backend_hf.prepare_kbit)
        keeps = c["finetune_vision_layers"] or c["gradient_checkpointing"] or not q4 or fp32_stream or unsloth
        if not keeps:
            vision_keep = 0.0
        elif c["gradient_checkpointing"]:
            vision_keep = b * v["patches"] * v["hv"] * v["Lv"] * K["vision_keep"]
        else:
            vision_keep = b * v["patches"] * v["Lv"] * (6 * v["hv"] + 2 * v["linears"][4][1]) * 2 * K[f"layer_{path}"]
    # gradients exist during the vision forward only while accumulating (set to None after each update)
    grads_in_vision = grads if (full or c["gradient_accumulation_steps"] > 1) else 0.0
    if full:  # no in-sample full fine-tune row either: its gradients and states get the same margin
        optim *= 1 + K["nogc_margin"]
    static = frozen + adapter_w + optim
    # without accumulation the adapter's gradients are still being made while the activations
    # peak (the backward pass frees one while it fills the other): only a share is alive
    live = grads if (full or c["gradient_accumulation_steps"] > 1) else grads * K["grads_live"]
    text_peak = static + live + vision_keep + text_act + loss
    vis_peak = static + grads_in_vision + vision_phase
    alloc = max(text_peak, vis_peak)
    # the allocator's cached, fragmented blocks grow with the micro-batch (per-example buffers)
    reserved = alloc * (1 + K["alloc_frac"]) + (K["alloc_const_gb"] + K["alloc_per_example_gb"] * b) * GiB
    act = max(text_act + loss + vision_keep, vision_phase + grads_in_vision - grads)
    bd = {
        "frozen_weights": frozen / GiB,
        "frozen_weights_detail": {"quantization": ("nf4 4-bit" if q4 else f"{wbytes * 8}-bit"),
                                  "linear_params_b": linear / 1e9, "other_params_b": nonlinear / 1e9,
                                  "other_params_dtype": "fp32" if fp32_stream else f"{wbytes * 8}-bit"},
        "adapter_weights": adapter_w / GiB, "trainable_params": int(n_train),
        "gradients": grads / GiB, "optimizer_states": optim / GiB, "optimizer": _optimizer(c),
        "activations": act / GiB,
        "activations_detail": {"text_layers": text_act / GiB, "gradient_checkpointing": bool(c["gradient_checkpointing"]),
                               "vision_tower": max(vision_phase, vision_keep) / GiB,
                               "logits_loss": loss / GiB,
                               "peak_phase": "text" if text_peak >= vis_peak else "vision"},
        "cuda_allocator_overhead": (reserved - alloc) / GiB,
        "predicted_peak_allocated": alloc / GiB,
        "cuda_context_outside_peak": CUDA_CONTEXT_GB,
    }
    return {"predicted_peak_gb": round(reserved / GiB, 3), "breakdown": _round(bd)}


def _vision_nonlinear(s: dict) -> float:
    return s.get("vision_16bit", 0)


def _round(d):
    if isinstance(d, dict):
        return {k: _round(v) for k, v in d.items()}
    return round(d, 3) if isinstance(d, float) else d


# ---------------------------------------------------------------------- fit and advice
def gpu_gb(gpu) -> float:
    """GiB of a named GPU (t4, l4, a10g, a100-40, a100-80, h100) or a number of GiB."""
    if isinstance(gpu, (int, float)) and not isinstance(gpu, bool):
        val = float(gpu)
    else:
        key = str(gpu).strip().lower().replace("_", "-")
        if key in GPUS:
            return GPUS[key]
        try:
            val = float(key.removesuffix("gb").removesuffix("gib"))
        except ValueError:
            raise StudioError(f"Unknown GPU '{gpu}'.", f"Use one of {', '.join(GPUS)} or a size in GB, e.g. 24.") from None
    if not math.isfinite(val) or val <= 0:
        raise StudioError(f"GPU memory must be a positive number, not {gpu}.", "For example --gpu 24.")
    return val


def _advice_steps(c: dict, s: dict) -> list[tuple[str, dict]]:
    """Changes in the order that costs the least quality and speed first."""
    steps = []
    if not c["gradient_checkpointing"]:
        steps.append(("turn gradient checkpointing on (~30% slower)", {"gradient_checkpointing": True}))
    if c["optimizer"] == "adamw_torch":
        steps.append(("use the 8-bit AdamW optimizer", {"optimizer": "adamw_8bit"}))
    b = c["batch_size"]
    while b > 1:
        b //= 2
        ga = c["gradient_accumulation_steps"] * c["batch_size"] // b
        steps.append((f"batch_size {b} with gradient_accumulation_steps {ga} (same effective batch)",
                      {"batch_size": b, "gradient_accumulation_steps": ga}))
    if c["method"] == "lora" and not c["load_in_4bit"]:
        steps.append(("load the base model in 4-bit (QLoRA)", {"load_in_4bit": True}))
    if c["finetune_vision_layers"] and c["method"] == "lora":
        steps.append(("stop adapting the vision layers", {"finetune_vision_layers": False}))
    if c["use_dora"] and c["method"] == "lora":
        steps.append(("turn DoRA off", {"use_dora": False}))
    if c["method"] == "lora" and c["lora_r"] > 16:
        steps.append((f"lora_r {c['lora_r']} -> 16", {"lora_r": 16}))
    seq, floor = c["max_seq_length"], max(512, s["mm_tokens"] + 128)
    while seq // 2 >= floor:
        seq //= 2
        steps.append((f"max_seq_length {seq} (longer examples get truncated)", {"max_seq_length": seq}))
    if c["method"] == "full":
        steps.append(("train a LoRA adapter instead of every weight", {"method": "lora"}))
    return steps


def plan(model_config: dict, train_config, gpu, backend: str = "hf") -> dict:
    """Will this config fit this GPU, where does the memory go, and what is the cheapest change
    that makes it fit. advice: single changes that fit on their own (cheapest first); when none
    does, the shortest chain of changes, in order, that fits."""
    cap = gpu_gb(gpu)
    c = _cfg_dict(train_config)
    if c["precision"] == "auto" and str(gpu).strip().lower() in NO_BF16:
        c["precision"] = "fp16"  # what the job resolves 'auto' to there (core/training/config.py)
    est = estimate(model_config, c, backend)
    fits = est["predicted_peak_gb"] + CUDA_CONTEXT_GB <= cap
    advice = []
    if not fits:
        s = shapes(model_config)
        steps = _advice_steps(c, s)
        for text, change in steps:
            if any(set(a["set"]) == set(change) for a in advice):
                continue  # e.g. max_seq_length 1024 already fits: 512 is not advice
            p = estimate(model_config, {**c, **change}, backend)["predicted_peak_gb"]
            if p + CUDA_CONTEXT_GB <= cap:
                advice.append({"change": text, "set": change, "predicted_peak_gb": p, "fits": True})
        if not advice:
            cur, done = copy.deepcopy(c), []
            for text, change in steps:
                cur.update(change)
                done.append(text)
                p = estimate(model_config, cur, backend)["predicted_peak_gb"]
                if p + CUDA_CONTEXT_GB <= cap:
                    advice.append({"change": "; then ".join(done), "set": {k: cur[k] for _, ch in steps[:len(done)] for k in ch},
                                   "predicted_peak_gb": p, "fits": True})
                    break
        if not advice:
            advice.append({"change": "a smaller model or a GPU with more memory", "set": {},
                           "predicted_peak_gb": None, "fits": False})
    notes = []
    if c["precision"] == "fp16":
        notes.append("fp16 GPU (e.g. T4): planned from rows measured in bf16 plus the counted fp16 difference "
                     "(peft upcasts the non-4-bit weights to fp32); no fp16 GPU was measured, so this is not a "
                     "measurement.")
    return {"predicted_peak_gb": est["predicted_peak_gb"], "fits": fits, "gpu_gb": cap,
            "breakdown": est["breakdown"], "advice": advice, "notes": notes}


def oom_advice(train_config, gpu_gb_total: float | None, backend: str = "hf") -> str | None:
    """The planner's advice for a run that just ran out of memory on a GPU of gpu_gb_total GiB:
    'Planner: <change> (predicted X GiB); ...', or None when the model's shapes are unknown."""
    from core import models

    c = _cfg_dict(train_config)
    mc = published_config(c["model_id"])  # known shapes first: no hub round trip after a crash
    if mc is None:
        try:
            mc = models.read_model_config(c["model_id"])
        except Exception:  # noqa: BLE001
            mc = None
    if not mc or not gpu_gb_total:
        return None
    result = plan(mc, c, gpu_gb_total, backend)
    if result["fits"]:
        # It ran out of memory all the same (other processes, fragmentation): ask for changes that
        # take the prediction at least 10% below what was predicted.
        tighter = max(0.5, result["predicted_peak_gb"] * 0.9 + CUDA_CONTEXT_GB)
        result = {**plan(mc, c, tighter, backend), "predicted_peak_gb": result["predicted_peak_gb"]}
    tips = [f"{a['change']} (predicted {a['predicted_peak_gb']:.1f} GiB)" if a.get("predicted_peak_gb")
            else a["change"] for a in result["advice"][:3]]
    head = f"Planner: predicted peak {result['predicted_peak_gb']:.1f} GiB on this {gpu_gb_total:.0f} GiB GPU"
    return head + (". To fit: " + "; ".join(tips) + "." if tips else ".")
