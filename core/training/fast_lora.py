"""Fast LoRA: one autograd function per adapted linear layer, for training.

PEFT's LoRA layer on a bitsandbytes 4-bit base runs, per forward, bitsandbytes' own autograd
function (dequantize + matmul), a defensive clone, dtype casts, the dropout, lora_A and lora_B as
two modules, a multiply by the scaling and an add; backward mirrors each of them. On a GPU the
step of a 4B model is bound by the host launching those small operations (measured on an H100:
~20k kernel launches per step, the GPU busy 30% of the time, bench/RESULTS.md). Here the whole
layer is one function with a hand-written backward:

    forward:   xa = x A^T;  y = x W^T + s xa B^T                              (DoRA: y *= m / n)
    backward:  dB = s g^T xa;  ga = s g B;  dA = ga^T x;  dx = g W + ga A     (DoRA: g *= m / n)

x W^T of a 4-bit W is bitsandbytes' fused kernel; backward dequantizes W (as bitsandbytes does).
For DoRA the norm n of W + sBA comes from the fast DoRA layer (core/training/fast_dora.py: cached
between optimizer steps); m's gradient is sum_t g * y_pre / n. The parameters, their names and the saved adapter are
PEFT's own: only the forward of the layer class is replaced, and it falls back to PEFT's forward
for anything it does not cover (inference, merged or disabled adapters, several adapters, mixed
batches, other LoRA variants, DoRA with dropout, trainable bias, fan_in_fan_out).

`enable_fast_lora(peft_model)` swaps the classes in place: by default the DoRA layers only
(fast_lora_policy says why); FAST_LORA=all / 0 in the environment fuses every layer / none.
"""
from __future__ import annotations

import torch
from torch import nn

_CLASSES: dict[type, type] = {}


def _dequantized(base: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """The base weight as a dense (out, in) matrix of `dtype` (PEFT's helper: any quantization)."""
    from peft.utils.integrations import dequantize_module_weight

    return dequantize_module_weight(base).to(dtype)


def _base_matmul(x2: torch.Tensor, base: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """x W^T. A 4-bit W goes through bitsandbytes' own fused kernel (one op, no dense copy of W),
    as in PEFT's forward; backward needs the dense W and dequantizes it."""
    weight = base.weight
    if type(weight).__name__ == "Params4bit":
        import bitsandbytes as bnb

        return bnb.matmul_4bit(x2, weight.t(), quant_state=weight.quant_state).to(dtype)
    return x2 @ weight.to(dtype).t()


def _compute_dtype(base: nn.Module, x: torch.Tensor) -> torch.dtype:
    if type(base.weight).__name__ == "Params4bit":
        return getattr(base, "compute_dtype", None) or x.dtype
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return base.weight.dtype


class _FusedLora(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, xd, A, B, mag, base, scaling, norm, out_dtype):
        dt = _compute_dtype(base, x)
        shape = x.shape
        x2 = x.reshape(-1, shape[-1]).to(dt)
        xd2 = x2 if xd is x else xd.reshape(-1, shape[-1]).to(dt)
        a, b = A.to(dt), B.to(dt)
        xa = xd2 @ a.t()                                   # (T, r)
        y = _base_matmul(x2, base, dt)
        y.addmm_(xa, b.t(), alpha=scaling)                 # x W^T + s (x A^T) B^T
        pre = None
        if mag is not None:
            # the norm rounded to the compute dtype first, as PEFT does: a fresh adapter's
            # magnitude is that rounded norm, so the scale starts at exactly 1
            norm = norm.to(dt)
            scale = (mag / norm).to(dt)
            pre, y = y, y * scale
        else:
            scale = None
        if base.bias is not None:
            y = y + base.bias.to(dt)
        ctx.base, ctx.scaling, ctx.same, ctx.dt = base, scaling, xd is x, dt
        ctx.x_dtype, ctx.shape = x.dtype, shape
        ctx.save_for_backward(x2, xd2 if xd is not x else None, xa, A, B, mag, norm, pre, scale)
        return y.reshape(*shape[:-1], y.shape[-1]).to(out_dtype)

    @staticmethod
    def backward(ctx, grad):
        x2, xd2, xa, A, B, mag, norm, pre, scale = ctx.saved_tensors
        xd2 = x2 if ctx.same else xd2
        dt, s = ctx.dt, ctx.scaling
        g = grad.reshape(-1, grad.shape[-1]).to(dt)
        d_mag = None
        if mag is not None:
            if ctx.needs_input_grad[4]:
                acc = torch.float64 if dt == torch.float64 else torch.float32
                d_mag = ((g.to(acc) * pre.to(acc)).sum(0) / norm.to(acc)).to(mag.dtype)
            g = g * scale
        a, b = A.to(dt), B.to(dt)
        d_b = (g.t() @ xa).mul_(s).to(B.dtype) if ctx.needs_input_grad[3] else None
        ga = (g @ b).mul_(s)                                # (T, r)
        d_a = (ga.t() @ xd2).to(A.dtype) if ctx.needs_input_grad[2] else None
        d_x = d_xd = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            d_x = g @ _dequantized(ctx.base, dt)
            if ctx.same:
                d_x.addmm_(ga, a)
            else:
                d_xd = (ga @ a).to(ctx.x_dtype).reshape(ctx.shape)
            d_x = d_x.to(ctx.x_dtype).reshape(ctx.shape)
        return d_x, d_xd, d_a, d_b, d_mag, None, None, None, None


class FastLoraMixin:
    """Put before a PEFT LoRA Linear class: its forward, fused when it can be."""

    def _fused_args(self, x, args, kwargs):
        """(adapter, dropout, dora layer or None) when the fused path applies, else None."""
        if args or kwargs or not (self.training and torch.is_grad_enabled()):
            return None
        if self.disable_adapters or self.merged or getattr(self, "fan_in_fan_out", False):
            return None
        active = [a for a in self.active_adapters if a in self.lora_A]
        if len(active) != 1:
            return None
        name = active[0]
        base = self.get_base_layer()
        if base.bias is not None and base.bias.requires_grad:
            return None
        dora = None
        variant = getattr(self, "lora_variant", {}).get(name)
        if variant is not None:
            dora = self.lora_magnitude_vector[name] if type(variant).__name__ == "DoraLinearVariant" else None
            if dora is None or not hasattr(dora, "fast_weight_norm"):
                return None  # other variants, or PEFT's own DoRA (FAST_DORA=0)
        dropout = self.lora_dropout[name]
        if dora is not None and not isinstance(dropout, nn.Identity):
            return None  # DoRA scales the base output of the dropped-out input: PEFT's formula
        return name, dropout, dora

    def forward(self, x, *args, **kwargs):
        fused = self._fused_args(x, args, kwargs)
        if fused is None:
            return super().forward(x, *args, **kwargs)
        name, dropout, dora = fused
        base = self.get_base_layer()
        A, B, s = self.lora_A[name].weight, self.lora_B[name].weight, self.scaling[name]
        xd = x if isinstance(dropout, nn.Identity) else dropout(x)
        norm = mag = None
        if dora is not None:
            norm = dora.fast_weight_norm(self.lora_A[name], self.lora_B[name], s, base)
            mag = dora.weight
        out_dtype = x.dtype if type(base.weight).__name__ == "Params4bit" else _compute_dtype(base, x)
        return _FusedLora.apply(x, xd, A, B, mag, base, float(s), norm, out_dtype)


def _fast_class(cls: type) -> type:
    if cls not in _CLASSES:
        _CLASSES[cls] = type(f"Fast{cls.__name__}", (FastLoraMixin, cls), {"__module__": __name__})
    return _CLASSES[cls]


def fast_lora_policy() -> str:
    """Which layers are fused: 'dora' (default), 'all' or 'none' (FAST_LORA=dora|all|0).

    Measured end to end on an H100 (bench/RESULTS.md, same run, same data): fused DoRA layers
    are faster than PEFT's DoRA (1.50 vs 1.66 s/step at 4B b1) and use 0.57 GiB less, but fused
    plain LoRA layers were slower than PEFT's (1.24 vs 0.86 s/step): PEFT's plain layer is a few
    C++ ops plus bitsandbytes' kernel, and a Python autograd function adds host time per call in
    a step that is bound by the host. So plain LoRA keeps PEFT's layers unless asked."""
    from core.training.levers import env_choice

    return env_choice("FAST_LORA")  # a bad value: StudioError naming the variable and the choices


def enable_fast_lora(model, policy: str | None = None) -> int:
    """Swaps the PEFT LoRA Linear / bitsandbytes Linear4bit layers of `model` that the policy
    covers (see fast_lora_policy) for their fused subclass, in place. Returns how many."""
    policy = policy or fast_lora_policy()
    if policy == "none":
        return 0
    from peft.tuners.lora.layer import Linear as LoraLinear

    targets = [LoraLinear]
    try:
        from peft.tuners.lora.bnb import Linear4bit as LoraLinear4bit
        targets.append(LoraLinear4bit)
    except (ImportError, AttributeError):  # bitsandbytes missing
        pass
    n = 0
    for module in model.modules():
        if type(module) in targets and (policy == "all" or _has_dora(module)):
            module.__class__ = _fast_class(type(module))
            n += 1
    return n


def _has_dora(module) -> bool:
    return any(type(v).__name__ == "DoraLinearVariant" for v in getattr(module, "lora_variant", {}).values())
