"""Speed levers of the training path: fast DoRA and fused LoRA layers must be PEFT's, numerically and on disk."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

peft = pytest.importorskip("peft")
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from peft.tuners.lora.dora import DoraLinearLayer  # noqa: E402

from core.training.fast_dora import FastDoraLinearLayer, enable_fast_dora  # noqa: E402
from core.training.fast_lora import FastLoraMixin, enable_fast_lora  # noqa: E402

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


def _grads(model, x, seed=0):
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)  # the same dropout masks in both models
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


def _nf4_layer(seed: int) -> nn.Module:
    """A 64 -> 32 bitsandbytes nf4 layer quantized on the CPU (skips where the build cannot)."""
    bnb = pytest.importorskip("bitsandbytes")
    torch.manual_seed(seed)
    lin = nn.Linear(64, 32, bias=False)
    q = bnb.nn.Linear4bit(64, 32, bias=False, compute_dtype=torch.float32, quant_type="nf4")
    q.weight = bnb.nn.Params4bit(lin.weight.data.clone(), requires_grad=False, quant_type="nf4")
    if getattr(q.weight, "quant_state", None) is None and hasattr(q.weight, "_quantize"):
        q.weight = q.weight._quantize("cpu")
    if getattr(q.weight, "quant_state", None) is None:
        pytest.skip("this bitsandbytes build cannot quantize on the CPU")
    if hasattr(q, "support_avx512bf16_for_cpu"):
        q.support_avx512bf16_for_cpu = False  # see backend_hf.disable_avx512_bf16_repack
    return q


def test_fast_dora_on_4bit_base_matches_peft():
    """QLoRA: the norm comes from the dequantized nf4 weight, exactly as PEFT's."""
    net = nn.Sequential(_nf4_layer(4))
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


# ---------------------------------------------------------------- fused LoRA layers (fast_lora.py)
def _fused_pair(seed: int, dora: bool = False, dropout: float = 0.0, dtype=torch.float64):
    torch.manual_seed(seed)
    cfg = LoraConfig(r=4, lora_alpha=8, use_dora=dora, use_rslora=True, lora_dropout=dropout,
                     target_modules=["up", "down"])
    ref = get_peft_model(Tiny().to(dtype), cfg)
    for n, p in ref.named_parameters():
        if "lora_B" in n or "lora_A" in n:
            p.data.normal_(0, 0.3)
        if "lora_magnitude_vector" in n:
            p.data.mul_(1 + 0.1 * torch.randn_like(p))
    fast = copy.deepcopy(ref)
    if dora:
        enable_fast_dora(fast)
    assert enable_fast_lora(fast, "all") == 2
    return ref, fast


def _assert_same(ref, fast, x, tol=1e-10):
    out_r, gx_r, g_r = _grads(ref, x)
    out_f, gx_f, g_f = _grads(fast, x)
    torch.testing.assert_close(out_f, out_r, rtol=tol, atol=tol)
    torch.testing.assert_close(gx_f, gx_r, rtol=tol, atol=tol)
    assert g_f.keys() == g_r.keys() and g_r
    for n in g_r:
        torch.testing.assert_close(g_f[n], g_r[n], rtol=tol, atol=tol, msg=n)


@pytest.mark.parametrize("dora", [False, True])
def test_fast_lora_matches_peft_forward_and_backward(dora):
    ref, fast = _fused_pair(0, dora=dora)
    _assert_same(ref, fast, torch.randn(3, 5, 24, dtype=torch.float64))
    assert all(isinstance(m, FastLoraMixin) for m in fast.modules() if hasattr(m, "lora_A"))


def test_fast_lora_with_dropout_matches_peft():
    ref, fast = _fused_pair(1, dropout=0.3)
    _assert_same(ref, fast, torch.randn(4, 24, dtype=torch.float64))


def test_fast_lora_falls_back_where_it_does_not_apply():
    """Inference, disabled adapters and DoRA + dropout take PEFT's own forward, with the same results."""
    ref, fast = _fused_pair(2, dora=True, dropout=0.2)
    x = torch.randn(4, 24, dtype=torch.float64)
    _assert_same(ref, fast, x)  # DoRA + dropout: PEFT's formula
    ref.eval(), fast.eval()
    with torch.no_grad():
        torch.testing.assert_close(fast(x), ref(x))
        with fast.disable_adapter(), ref.disable_adapter():
            torch.testing.assert_close(fast(x), ref(x))


def test_fast_lora_trains_the_same_in_bf16():
    """The training dtype: bf16 weights and activations, same steps as PEFT's layers within bf16 noise."""
    ref, fast = _fused_pair(3, dora=True, dtype=torch.bfloat16)
    x = torch.randn(16, 24, dtype=torch.bfloat16)
    opts = [torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.05) for m in (ref, fast)]
    for _ in range(3):
        for m, opt in zip((ref, fast), opts):
            opt.zero_grad()
            m(x).float().pow(2).mean().backward()
            opt.step()
    for (n, p_r), (_, p_f) in zip(ref.named_parameters(), fast.named_parameters()):
        torch.testing.assert_close(p_f.float(), p_r.float(), rtol=2e-2, atol=2e-2, msg=n)


def test_fresh_dora_adapter_leaves_the_bf16_model_unchanged():
    """A new DoRA adapter (B = 0) scales by exactly 1 in bf16: training starts from the base
    model's outputs, not a rounding-perturbed copy (the norm was once used unrounded, and the
    first loss on the GPU differed from PEFT's by 0.2%)."""
    torch.manual_seed(6)
    cfg = LoraConfig(r=8, lora_alpha=8, use_dora=True, use_rslora=True, target_modules=["up", "down"])
    net = Tiny().to(torch.bfloat16)
    net.down.register_parameter("bias", None)  # Gemma's projections have none (a bias rounds differently)
    ref = get_peft_model(net, cfg)
    fast = copy.deepcopy(ref)
    enable_fast_dora(fast)
    assert enable_fast_lora(fast) == 2
    x = torch.randn(32, 24, dtype=torch.bfloat16)
    with fast.disable_adapter():
        base_out = fast(x)
    out = fast(x)
    assert torch.equal(out, base_out)
    torch.testing.assert_close(out, ref(x), rtol=1e-2, atol=1e-2)  # PEFT's own formula rounds by ~1 ulp


def test_fast_lora_adapter_loads_with_plain_peft(tmp_path):
    _, fast = _fused_pair(4, dora=True)
    fast.save_pretrained(tmp_path / "a")
    torch.manual_seed(4)
    loaded = PeftModel.from_pretrained(Tiny().double(), tmp_path / "a")
    x = torch.randn(6, 24, dtype=torch.float64)
    fast.eval(), loaded.eval()
    torch.testing.assert_close(loaded(x), fast(x), rtol=1e-10, atol=1e-10)


def test_fast_lora_on_4bit_base_matches_peft():
    q = _nf4_layer(5)
    for dora in (False, True):
        ref = get_peft_model(nn.Sequential(copy.deepcopy(q)),
                             LoraConfig(r=8, lora_alpha=16, use_dora=dora, use_rslora=True, target_modules=["0"]))
        for n, p in ref.named_parameters():
            if "lora_B" in n:
                p.data.normal_(0, 0.2)
        fast = copy.deepcopy(ref)
        if dora:
            enable_fast_dora(fast)
        assert enable_fast_lora(fast, "all") == 1
        _assert_same(ref, fast, torch.randn(5, 64), tol=1e-4)


def test_backend_fuses_dora_layers_by_default(monkeypatch):
    """Measured policy: DoRA layers fused, plain LoRA layers PEFT's own; FAST_LORA=all / 0 override."""
    from core.training.backend_hf import add_adapter

    def fused(cfg, notes=None):
        model = add_adapter(Tiny(), cfg, notes if notes is not None else [])
        return sum(isinstance(m, FastLoraMixin) for m in model.modules())

    notes: list[str] = []
    assert fused(LoraConfig(r=4, lora_alpha=4, use_dora=True, target_modules=["up", "down"]), notes) == 2
    assert "fast LoRA: 2" in notes[-1]
    assert fused(LoraConfig(r=4, lora_alpha=4, target_modules=["up", "down"])) == 0
    monkeypatch.setenv("FAST_LORA", "all")
    assert fused(LoraConfig(r=4, lora_alpha=4, target_modules=["up", "down"])) == 2
    monkeypatch.setenv("FAST_LORA", "0")
    assert fused(LoraConfig(r=4, lora_alpha=4, use_dora=True, target_modules=["up", "down"])) == 0


def test_bad_speed_switches_are_clear_errors(monkeypatch):
    from core.errors import StudioError
    from core.training.hardware import CPU_ONLY
    from core.training.job import data_workers

    monkeypatch.setenv("FAST_LORA", "fast")
    with pytest.raises(StudioError, match="FAST_LORA='fast' is not a valid value"):
        enable_fast_lora(Tiny())
    monkeypatch.setenv("TRINITY_DATA_WORKERS", "two")
    with pytest.raises(StudioError, match="whole number"):
        data_workers(CPU_ONLY)
    monkeypatch.setenv("TRINITY_DATA_WORKERS", "0")
    assert data_workers(CPU_ONLY) == 0


def test_fast_dora_under_torch_compile_does_not_recompile_each_step():
    """Unsloth compiles every decoder layer around the adapted linears. The cached norm's key
    changes each optimizer step; traced, it failed a guard and recompiled the layer every step (the
    35 s/step of DoRA on Unsloth, 2026-12-01). Kept out of the graph, later steps add no graph."""
    import torch._dynamo as dynamo

    ref, fast = _pair(5)
    compiled = torch.compile(fast, backend="aot_eager")
    opt = torch.optim.AdamW([p for p in fast.parameters() if p.requires_grad], lr=1e-2)
    x = torch.randn(3, 24, dtype=torch.float64)
    dynamo.reset()
    dynamo.utils.counters.clear()
    graphs = []
    for _step in range(5):
        compiled(x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        graphs.append(dynamo.utils.counters["stats"]["unique_graphs"])
    assert graphs[1] == graphs[-1], graphs  # the first step compiles (and the second once); then none
    # and the compiled model still follows the optimizer: the same output as PEFT's eager DoRA
    for p_ref, p_fast in zip(ref.parameters(), fast.parameters()):
        p_ref.data.copy_(p_fast.data)
    assert torch.allclose(compiled(x), ref(x), atol=1e-10)
