"""Fast DoRA: PEFT's DoRA layer with the weight norm computed without the dense update, and cached.

PEFT's DoRA (peft/tuners/lora/dora.py) rebuilds, on every forward of every adapted layer, the dense
update s·BA (through an identity matrix the size of the input), dequantizes the 4-bit base weight
W, adds the two and takes the row norms ||W + s·BA||. The norm is detached (DoRA paper, section
4.3), so it is a constant of the weights, not of the batch: it only changes when A or B change,
i.e. once per optimizer step. With gradient checkpointing (each forward runs twice) and gradient
accumulation PEFT recomputes it 2 x accumulation times per step.

Here each row's squared norm is expanded instead of materialised:

    ||W_o + s B_o A||^2 = ||W_o||^2 + 2s B_o·(W A^T)_o + s^2 B_o (A A^T) B_o^T

||W_o||^2 never changes (computed once); W A^T is an (out x r) product taken once per optimizer
step; A A^T is r x r. The result is cached until an optimizer step (a global optimizer hook, which
also sees bitsandbytes' 8-bit AdamW, whose in-place kernels do not bump tensor versions) or an
in-place change of A or B. Everything else - the forward formula, the magnitude parameter, the
state dict - is PEFT's, so the saved adapter is a plain PEFT DoRA adapter.

Use `enable_fast_dora(peft_model)` after the adapter exists; it swaps the class of each DoRA
linear layer in place and returns how many it swapped.
"""
from __future__ import annotations

import torch
from peft.tuners.lora.dora import DoraLinearLayer
from peft.utils.integrations import dequantize_module_weight
from peft.utils.other import transpose

_ROW_CHUNK = 4096  # rows of W dequantized and upcast at a time: bounds the transient fp32 copy
_generation = 0    # bumped after every optimizer step anywhere in the process
_hook = None


def _bump(*_args, **_kwargs) -> None:
    global _generation
    _generation += 1


def _install_hook() -> None:
    global _hook
    if _hook is None:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        _hook = register_optimizer_step_post_hook(_bump)


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    """fp32 for the 16-bit weights of training; fp64 stays fp64 (the exactness tests)."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _key(t: torch.Tensor) -> tuple:
    return t.data_ptr(), t._version, t.device, t.dtype


class FastDoraLinearLayer(DoraLinearLayer):
    """DoraLinearLayer whose forward reads a cached, analytically expanded weight norm."""

    def _base_terms(self, base_layer, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(||W_o||^2 for every row, W A^T) in fp32 (at least); the first is cached for good."""
        weight = dequantize_module_weight(base_layer)
        weight = transpose(weight, self.fan_in_fan_out)  # (out, in)
        acc = _acc_dtype(A)
        a_t = A.detach().to(acc).t()
        cached = getattr(self, "_fast_w_norm2", None)
        need_norm = cached is None or cached[0] != (weight.shape, weight.device)
        if need_norm:  # once per layer: ||W_o||^2 in fp32, a bounded chunk at a time
            w_norm2 = torch.empty(weight.shape[0], device=weight.device, dtype=acc)
            for i in range(0, weight.shape[0], _ROW_CHUNK):
                w_norm2[i:i + _ROW_CHUNK] = weight[i:i + _ROW_CHUNK].to(acc).pow(2).sum(1)
            self._fast_w_norm2 = ((weight.shape, weight.device), w_norm2)
        else:
            w_norm2 = cached[1]
        if weight.dtype in (torch.bfloat16, torch.float16):
            # every optimizer step: one tensor-core product (fp32 accumulation); it only feeds the
            # cross term, a small correction to ||W_o||^2
            wa = (weight @ a_t.to(weight.dtype)).to(acc)
        else:
            wa = weight.to(acc) @ a_t
        return w_norm2, wa

    # Out of torch.compile's graphs (Unsloth compiles each decoder layer around these layers): the
    # cache key is Python state that changes every optimizer step, and traced, each change failed a
    # guard and recompiled the layer - every step, up to Unsloth's recompile limit of 1024.
    @torch.compiler.disable
    @torch.no_grad()
    def fast_weight_norm(self, lora_A, lora_B, scaling, base_layer) -> torch.Tensor:
        """||W + scaling·BA|| per output row, fp32, detached; recomputed only when A, B or the
        optimizer generation changed."""
        A, B = lora_A.weight, lora_B.weight
        key = (_generation, _key(A), _key(B), float(scaling), self.fan_in_fan_out)
        cached = getattr(self, "_fast_norm", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        w_norm2, wa = self._base_terms(base_layer, A)
        a32, b32 = A.to(_acc_dtype(A)), B.to(_acc_dtype(A))
        cross = (b32 * wa).sum(1)                       # B_o · (W A^T)_o
        ba_norm2 = ((b32 @ (a32 @ a32.t())) * b32).sum(1)  # B_o (A A^T) B_o^T
        norm = (w_norm2 + (2 * scaling) * cross + (scaling * scaling) * ba_norm2).clamp_min(0).sqrt()
        self._fast_norm = (key, norm)
        return norm

    def forward(self, x, *, lora_A, lora_B, scaling, base_layer, base_result=None, adapter_name="default"):
        # same formula and dtypes as DoraLinearLayer.forward; only the norm's origin differs
        weight_norm = self.fast_weight_norm(lora_A, lora_B, scaling, base_layer).to(x.dtype)
        mag_norm_scale = (self.weight / weight_norm).view(1, -1)
        lora_result = lora_B(lora_A(x))
        bias = base_layer.bias
        if base_result is None:  # dropout active: the base output of the dropped-out input
            base_result = base_layer(x)
        if bias is not None:
            base_result = base_result - bias
        return (mag_norm_scale - 1) * base_result + mag_norm_scale * lora_result * scaling

    def __repr__(self) -> str:
        return "lora.fast_dora." + super(DoraLinearLayer, self).__repr__()


def enable_fast_dora(model) -> int:
    """Swaps every PEFT DoRA linear layer of `model` for FastDoraLinearLayer (in place, same
    parameters and state-dict keys). Returns the number swapped; 0 when the model has no DoRA."""
    n = 0
    for module in model.modules():
        if type(module) is DoraLinearLayer:  # not the Embedding / Conv variants (other formulas)
            module.__class__ = FastDoraLinearLayer
            n += 1
    if n:
        _install_hook()
    return n
