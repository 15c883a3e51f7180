"""torch.compile of the small-operation parts of each transformer block, for training on a GPU.

A Gemma 3 block is many small operations (six RMSNorms with their fp32 round trips, rotary
embeddings, GELU-gated MLP, residual adds): on an H100 a QLoRA step launches ~15k kernels and the
GPU is busy a third of the time. Compiling lets Inductor fuse those into a few Triton kernels.
Modules of one class share their compiled code (parameters are graph inputs), so a model compiles
a handful of graphs, not one per layer; the fused LoRA layers stay out of the graphs
(core/training/fast_lora.py marks them), so bitsandbytes and PEFT are never traced.

TRINITY_COMPILE=0 / 1 in the environment forces it off / on.
"""
from __future__ import annotations

import os

# Compiled in place: norms everywhere; attention and MLP of the decoder (with a graph break at
# each adapted linear layer); whole vision encoder blocks (frozen: nothing breaks them). Whole
# decoder blocks cannot be compiled under gradient checkpointing: the checkpoint is traced as one
# higher-order op, and any graph break inside it (the adapted layers) makes it all run eagerly.
SUFFIXES = ("RMSNorm", "Attention", "MLP", "EncoderLayer")

def compile_wanted(hw, cfg) -> bool:
    forced = os.environ.get("TRINITY_COMPILE")
    if forced is not None:
        return forced == "1"
    return False  # default decided by bench/gpu_speed.py measurements (see bench/RESULTS.md)


def compile_blocks(model) -> int:
    """Compiles, in place, the norms, attention and MLP modules and vision encoder blocks of
    `model` (not those inside an already chosen block); returns how many."""
    import torch

    chosen: list = []
    for name, module in model.named_modules():
        if type(module).__name__.endswith(SUFFIXES) and not any(name.startswith(p + ".") for p, _ in chosen):
            chosen.append((name, module))
    # parameters are graph inputs, so modules of one class share code; the limits leave room
    # for the few variants (sliding / global attention, shapes)
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    for _, module in chosen:
        module.compile()
    return len(chosen)
