"""Layer micro-benchmarks of the fused LoRA / DoRA layers (GPU): `python3 bench/gpu_speed.py layer`
(one nf4 projection) and `python3 bench/gpu_speed.py stack` (checkpointed blocks, host-bound regime).
Moved out of bench/gpu_speed.py unchanged."""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def layer_bench() -> str:
    """One Gemma-3-4B MLP projection (2560 -> 10240, nf4 double-quant), 822 tokens, r=64 rsLoRA:
    forward + backward time of LoRA, PEFT DoRA and fast DoRA (norm cached / recomputed each call)."""
    import copy

    import bitsandbytes as bnb
    import torch
    from peft import LoraConfig, get_peft_model
    from torch import nn

    import core.training.fast_dora as fd

    torch.manual_seed(0)
    q = bnb.nn.Linear4bit(2560, 10240, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4",
                          compress_statistics=True)
    q.weight = bnb.nn.Params4bit(torch.randn(10240, 2560) * 0.02, requires_grad=False, quant_type="nf4",
                                 compress_statistics=True)
    base = nn.Sequential(q).cuda()
    x = torch.randn(822, 2560, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    lines = []
    for name, dora, fast, bump in [("LoRA", False, False, False), ("PEFT DoRA", True, False, False),
                                   ("fast DoRA, norm cached", True, True, False),
                                   ("fast DoRA, norm recomputed", True, True, True)]:
        m = get_peft_model(copy.deepcopy(base), LoraConfig(r=64, lora_alpha=64, use_rslora=True, use_dora=dora,
                                                           target_modules=["0"]))
        for p in m.parameters():
            if p.requires_grad:
                p.data = p.data.to(torch.bfloat16)
        if fast:
            fd.enable_fast_dora(m)
        times = []
        for i in range(25):
            if bump:
                fd._bump()
            torch.cuda.synchronize()
            t = time.perf_counter()
            m(x).float().pow(2).mean().backward()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        lines.append(f"| {name} | {statistics.median(times[5:]) * 1e3:.2f} ms |")
    return "| one nf4 layer 2560->10240, 822 tokens, fwd+bwd | median |\n|---|---|\n" + "\n".join(lines)


def stack_bench(blocks: int = 8, iters: int = 12) -> str:
    """Host-bound regime in miniature: `blocks` checkpointed blocks of five nf4 Gemma-3-4B
    projections (q, o, gate, up, down) with r=64 LoRA, 822 tokens, forward + backward, timed
    unsynchronised (as training runs) and synchronised after every call; PEFT's layers vs fast
    LoRA. CUDA sync debug mode counts the implicit host-device synchronisations of one iteration."""
    import copy
    import warnings

    import bitsandbytes as bnb
    import torch
    from peft import LoraConfig, get_peft_model
    from torch import nn
    from torch.utils.checkpoint import checkpoint

    import core.training.fast_lora as fl

    shapes = {"q": (2560, 2048), "o": (2048, 2560), "gate": (2560, 10240), "up": (2560, 10240), "down": (10240, 2560)}

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            for name, (i, o) in shapes.items():
                q = bnb.nn.Linear4bit(i, o, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4",
                                      compress_statistics=True)
                q.weight = bnb.nn.Params4bit(torch.randn(o, i) * 0.02, requires_grad=False, quant_type="nf4",
                                             compress_statistics=True)
                setattr(self, name, q)

        def forward(self, x):
            x = x + self.o(self.q(x))
            return x + self.down(nn.functional.gelu(self.gate(x), approximate="tanh") * self.up(x))

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(Block() for _ in range(blocks))

        def forward(self, x):
            for b in self.blocks:
                x = checkpoint(b, x, use_reentrant=False)
            return x

    torch.manual_seed(0)
    base = Stack().cuda()
    x = torch.randn(1, 822, 2560, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    peft_model = get_peft_model(base, LoraConfig(r=64, lora_alpha=64, use_rslora=True,
                                                 target_modules=list(shapes)))
    for p in peft_model.parameters():
        if p.requires_grad:
            p.data = p.data.to(torch.bfloat16)
    fast = copy.deepcopy(peft_model)
    fl.enable_fast_lora(fast, "all")

    def run(model, sync_each: bool) -> float:
        for _ in range(3):
            model(x).float().pow(2).mean().backward()
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(iters):
            model(x).float().pow(2).mean().backward()
            if sync_each:
                torch.cuda.synchronize()
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / iters * 1e3

    def syncs(model) -> int:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode(1)
            model(x).float().pow(2).mean().backward()
            torch.cuda.set_sync_debug_mode(0)
        return sum("synchroniz" in str(m.message) for m in w)

    lines = [f"| {blocks} checkpointed blocks x 5 nf4 layers, r=64, 822 tokens | unsynced ms/iter | synced ms/iter "
             "| implicit syncs per iter |", "|---|---|---|---|"]
    for name, model in [("PEFT layers", peft_model), ("fast LoRA", fast)]:
        lines.append(f"| {name} | {run(model, False):.1f} | {run(model, True):.1f} | {syncs(model)} |")
    return "\n".join(lines)
