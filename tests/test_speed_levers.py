"""Speed levers of the training path: fast DoRA must be PEFT's DoRA, numerically and on disk."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

peft = pytest.importorskip("peft")
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.lora.dora import DoraLinearLayer  # noqa: E402

from core.training.fast_dora import FastDoraLinearLayer, enable_fast_dora  # noqa: E402

torch.set_num_threads(1)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(24, 40, bias=False)
        self.down = nn.Linear(40, 24, bias=True)

    def forward(self, x):
        return self.down(torch.tanh(self.up(x)))


def _pair(seed: int, dropout: float = 0.0):
    """(PEFT DoRA model, the same model with fast DoRA layers), identical weights; B is random so
    the update term s·BA is not zero."""
    torch.manual_seed(seed)
    base = Tiny().double()
    cfg = LoraConfig(r=4, lora_alpha=8, use_dora=True, use_rslora=True, lora_dropout=dropout,
                     target_modules=["up", "down"])
    ref = get_peft_model(base, cfg)
    for n, p in ref.named_parameters():
        if "lora_B" in n or "lora_A" in n:
            p.data.normal_(0, 0.3)
        if "lora_magnitude_vector" in n:
            p.data.mul_(1 + 0.1 * torch.randn_like(p))
    fast = copy.deepcopy(ref)
    assert enable_fast_dora(fast) == 2
    return ref, fast


def _grads(model, x):
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = model(x)
    (out.pow(2).sum() + out.sum()).backward()
    return out.detach(), x.grad, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_fast_dora_matches_peft_forward_and_backward():
    ref, fast = _pair(0)
    x = torch.randn(5, 7, 24, dtype=torch.float64)
    out_r, gx_r, g_r = _grads(ref, x)
    out_f, gx_f, g_f = _grads(fast, x)
    torch.testing.assert_close(out_f, out_r, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx_f, gx_r, rtol=1e-10, atol=1e-10)
    assert set(g_f) == set(g_r) and any("lora_magnitude_vector" in n for n in g_f)
    for n in g_r:
        torch.testing.assert_close(g_f[n], g_r[n], rtol=1e-9, atol=1e-10, msg=n)


def test_fast_dora_follows_optimizer_steps_and_accumulation():
    """The cached norm must be recomputed after each optimizer step - also for an optimizer whose
    in-place update bumps no tensor version (bitsandbytes' 8-bit AdamW writes through pointers)."""

    class DataSGD(torch.optim.Optimizer):  # updates p.data: invisible to p._version
        def __init__(self, params, lr):
            super().__init__(params, {"lr": lr})

        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.data.add_(p.grad, alpha=-group["lr"])

    ref, fast = _pair(1)
    opts = [DataSGD([p for p in m.parameters() if p.requires_grad], lr=0.05) for m in (ref, fast)]
    for step in range(3):
        for micro in range(2):  # gradient accumulation: two forwards on the same weights
            x = torch.randn(3, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(10 * step + micro))
            losses = [m(x).pow(2).mean() for m in (ref, fast)]
            torch.testing.assert_close(losses[1], losses[0], rtol=1e-10, atol=1e-12)
            for loss in losses:
                loss.backward()
        for opt in opts:
            opt.step()
            opt.zero_grad()
    x = torch.randn(2, 24, dtype=torch.float64)
    torch.testing.assert_close(fast(x), ref(x), rtol=1e-10, atol=1e-12)
    layer = next(m for m in fast.modules() if isinstance(m, FastDoraLinearLayer))
    peft_norm = DoraLinearLayer.get_weight_norm(
        layer, fast.base_model.model.up.weight, (fast.base_model.model.up.lora_B["default"].weight
                                                 @ fast.base_model.model.up.lora_A["default"].weight),
        fast.base_model.model.up.scaling["default"])
    torch.testing.assert_close(layer._fast_norm[1].double(), peft_norm.double(), rtol=1e-10, atol=1e-12)


def test_fast_dora_with_dropout_matches_peft():
    ref, fast = _pair(2, dropout=0.25)
    x = torch.randn(4, 24, dtype=torch.float64)
    torch.manual_seed(5)
    out_r = ref(x)
    torch.manual_seed(5)
    out_f = fast(x)
    torch.testing.assert_close(out_f, out_r, rtol=1e-10, atol=1e-10)


def test_fast_dora_adapter_loads_with_plain_peft(tmp_path):
    _, fast = _pair(3)
    fast.save_pretrained(tmp_path / "adapter")
    torch.manual_seed(3)
    fresh = Tiny().double()  # the same base weights: seed 3 again, as in _pair
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter")
    assert not any(isinstance(m, FastDoraLinearLayer) for m in loaded.modules())
    assert any(type(m) is DoraLinearLayer for m in loaded.modules())
    x = torch.randn(6, 24, dtype=torch.float64)
    fast.eval(), loaded.eval()
    torch.testing.assert_close(loaded(x), fast(x), rtol=1e-10, atol=1e-10)


def test_fast_dora_on_4bit_base_matches_peft():
    """QLoRA: the norm comes from the dequantized nf4 weight, exactly as PEFT's."""
    bnb = pytest.importorskip("bitsandbytes")
    torch.manual_seed(4)
    lin = nn.Linear(64, 32, bias=False)
    q = bnb.nn.Linear4bit(64, 32, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    q.weight = bnb.nn.Params4bit(lin.weight.data.clone(), requires_grad=False, quant_type="nf4")
    q = q.to("cpu") if hasattr(q, "to") else q
    if getattr(q.weight, "quant_state", None) is None:
        q.weight = q.weight._quantize("cpu") if hasattr(q.weight, "_quantize") else q.weight
    if getattr(q.weight, "quant_state", None) is None:
        pytest.skip("this bitsandbytes build cannot quantize on the CPU")
    if hasattr(q, "support_avx512bf16_for_cpu"):
        q.support_avx512bf16_for_cpu = False
    net = nn.Sequential(q)
    ref = get_peft_model(net, LoraConfig(r=8, lora_alpha=16, use_dora=True, use_rslora=True, target_modules=["0"]))
    for n, p in ref.named_parameters():
        if "lora_B" in n:
            p.data.normal_(0, 0.2)
    fast = copy.deepcopy(ref)
    assert enable_fast_dora(fast) == 1
    x = torch.randn(5, 64)
    out_r, gx_r, g_r = _grads(ref, x)
    out_f, gx_f, g_f = _grads(fast, x)
    torch.testing.assert_close(out_f, out_r, rtol=1e-4, atol=1e-5)
    for n in g_r:
        torch.testing.assert_close(g_f[n], g_r[n], rtol=1e-3, atol=1e-5, msg=n)


def test_hf_backend_uses_fast_dora(monkeypatch):
    """The studio's HF backend builds the adapter itself, with fast DoRA unless FAST_DORA=0."""
    from core.training.backend_hf import add_adapter

    cfg = LoraConfig(r=4, lora_alpha=4, use_dora=True, target_modules=["up"])
    notes: list[str] = []
    model = add_adapter(Tiny(), cfg, notes)
    assert any(isinstance(m, FastDoraLinearLayer) for m in model.modules()) and "fast DoRA" in notes[0]
    monkeypatch.setenv("FAST_DORA", "0")
    notes = []
    model = add_adapter(Tiny(), LoraConfig(r=4, lora_alpha=4, use_dora=True, target_modules=["up"]), notes)
    assert not any(isinstance(m, FastDoraLinearLayer) for m in model.modules())
    plain = add_adapter(Tiny(), LoraConfig(r=4, lora_alpha=4, target_modules=["up"]), [])
    assert not any(isinstance(m, DoraLinearLayer) for m in plain.modules())
