"""What this machine can train with: CUDA, bf16, bitsandbytes, Unsloth. Detected once, cheaply.

Config defaults and validation read this instead of probing torch themselves, so tests can pass a
made-up Hardware (e.g. "a T4") without owning one.
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Hardware:
    cuda: bool = False
    gpu_count: int = 0
    gpu_name: str = ""
    vram_gb: float = 0.0
    bf16: bool = False          # the GPU computes in bf16 (Ampere and newer)
    bitsandbytes: bool = False  # importable (4-bit loading, 8-bit optimizers)
    unsloth: bool = False       # importable; only checked on CUDA (importing it needs a GPU)
    liger: bool = False         # liger-kernel importable; only checked on CUDA (Triton kernels)
    cpu_count: int = 1

    @property
    def device(self) -> str:
        return "cuda" if self.cuda else "cpu"

    def to_dict(self) -> dict:
        return asdict(self) | {"device": self.device}

    def describe(self) -> str:
        if self.cuda:
            return f"{self.gpu_count}x {self.gpu_name} ({self.vram_gb:.0f} GB)"
        return f"CPU ({self.cpu_count} cores)"


CPU_ONLY = Hardware(cpu_count=os.cpu_count() or 1)

_cached: Hardware | None = None


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def detect(refresh: bool = False) -> Hardware:
    global _cached
    if _cached is not None and not refresh:
        return _cached
    import torch

    cuda = torch.cuda.is_available()
    hw = Hardware(cpu_count=os.cpu_count() or 1, bitsandbytes=_has("bitsandbytes"))
    if cuda:
        props = torch.cuda.get_device_properties(0)
        hw = Hardware(
            cuda=True, gpu_count=torch.cuda.device_count(), gpu_name=props.name,
            vram_gb=props.total_memory / 2**30,
            bf16=torch.cuda.is_bf16_supported(including_emulation=False),  # a T4 only emulates bf16
            bitsandbytes=hw.bitsandbytes, unsloth=_has("unsloth"), liger=_has("liger_kernel"), cpu_count=hw.cpu_count,
        )
    _cached = hw
    return hw
