"""Training speed on the GPU: the studio's job side by side with plain transformers + PEFT and Unsloth.

One run measures, on one machine, with Gemma 3 4B shapes (random weights, bench/gpu_models.py),
822-token samples with one 896 px image, QLoRA nf4 r=64 on all language linear layers, gradient
checkpointing, bf16, 8-bit AdamW:
  - the reference loops of ../shared/gpu/anchor_bench.py (plain HF + PEFT, + DoRA, Unsloth), run as
    its own `worker` processes (pass its path with --anchor);
  - our job (core.training.job.run_job, what `python -m core train --run RUN` runs) through
    bench/gpu_memory.py's `run_one`, on the hf and auto (Unsloth) backends, plain and "Trinity"
    (QLoRA + DoRA + rsLoRA), with fast DoRA and with PEFT's DoRA (FAST_DORA=0), same data and seed;
  - the 12B Trinity memory point.
Each item runs in its own process (peak memory is per process). Prints a table of tokens/s and peak
reserved memory as ratios to the plain baseline of the same batch size; writes OUT/speed.json.

  export PYTHONPATH=$PWD/.gpusite:$PWD/.gpusite_extra HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 UNSLOTH_OFFLINE=1
  python3 bench/gpu_speed.py --plan hf --anchor .gpuspeed/anchor_bench.py --out $OUT --deadline 575
Plans: hf (baseline, job with fused vs PEFT layers, 12B, b4), dora (the DoRA comparison alone),
unsloth (Unsloth's anchor and our job on it: each process compiles for minutes), all / rest (the
first pass). `python3 bench/gpu_speed.py stack` / `layer` are layer micro-benchmarks.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SEQ = 822
Q4 = {"load_in_4bit": True, "lora_r": 64, "lora_alpha": 64, "use_rslora": True, "max_seq_length": SEQ,
      "max_steps": 8, "seed": 3407}
TRINITY = {**Q4, "use_dora": True}
# item: (kind, label, details). anchor: (variant, batches); job: (size, overrides, backend, env)
PLANS = {
    # in order of what matters most; whatever the deadline leaves out is listed as skipped
    # everything on the hf path, fast layers vs PEFT's own on the same data and seed
    "hf": [
        ("build12b", "12B build (background)", ()),
        ("anchor", "HF+PEFT QLoRA (baseline)", ("A", "1,4")),
        ("job", "job hf QLoRA, fused layers", ("4b", {**Q4, "batch_size": 1}, "hf", {"FAST_LORA": "all"})),
        ("job", "job hf QLoRA (default: PEFT layers)", ("4b", {**Q4, "batch_size": 1}, "hf", {})),
        ("job", "job hf Trinity (fast LoRA+DoRA)", ("4b", {**TRINITY, "batch_size": 1}, "hf", {})),
        ("job", "job hf Trinity, PEFT layers", ("4b", {**TRINITY, "batch_size": 1}, "hf",
                                                {"FAST_LORA": "0", "FAST_DORA": "0"})),
        ("job", "job hf 12B Trinity", ("12b", {**TRINITY, "batch_size": 1, "max_steps": 4}, "hf", {})),
        ("job", "job hf QLoRA", ("4b", {**Q4, "batch_size": 4}, "hf", {})),
        ("job", "job hf Trinity (fast LoRA+DoRA)", ("4b", {**TRINITY, "batch_size": 4}, "hf", {})),
    ],
    # the DoRA comparison alone (short call): fused vs PEFT's layers, and plain QLoRA, same data
    "dora": [
        ("job", "job hf Trinity (fast LoRA+DoRA)", ("4b", {**TRINITY, "batch_size": 1}, "hf", {})),
        ("job", "job hf Trinity, PEFT layers", ("4b", {**TRINITY, "batch_size": 1}, "hf",
                                                {"FAST_LORA": "0", "FAST_DORA": "0"})),
        ("job", "job hf QLoRA (default: PEFT layers)", ("4b", {**Q4, "batch_size": 1}, "hf", {})),
    ],
    "all": [
        ("build12b", "12B build (background)", ()),
        ("anchor", "HF+PEFT QLoRA (baseline)", ("A", "1,4")),
        ("job", "job hf QLoRA", ("4b", {**Q4, "batch_size": 1}, "hf", {})),
        ("anchor", "HF+PEFT QLoRA+DoRA", ("B", "1")),
        ("job", "job hf Trinity fast DoRA", ("4b", {**TRINITY, "batch_size": 1}, "hf", {})),
        ("job", "job hf Trinity PEFT DoRA", ("4b", {**TRINITY, "batch_size": 1}, "hf", {"FAST_DORA": "0"})),
        ("job", "job hf 12B Trinity fast DoRA", ("12b", {**TRINITY, "batch_size": 1, "max_steps": 4}, "hf", {})),
        ("anchor", "Unsloth QLoRA", ("D", "1,4")),
        ("job", "job auto QLoRA", ("4b", {**Q4, "batch_size": 1}, "auto", {})),
        ("job", "job hf Trinity fast DoRA", ("4b", {**TRINITY, "batch_size": 4}, "hf", {})),
        ("job", "job hf QLoRA", ("4b", {**Q4, "batch_size": 4}, "hf", {})),
        ("eval", "eval_speed demo", ()),
    ],
    # Unsloth in its own call: each process imports it (~35 s) and compiles on its first step
    "unsloth": [
        ("anchor", "Unsloth QLoRA", ("D", "1,4")),
        ("job", "job auto (Unsloth) QLoRA", ("4b", {**Q4, "batch_size": 1}, "auto", {})),
        ("job", "job unsloth Trinity (fast DoRA)", ("4b", {**TRINITY, "batch_size": 1}, "unsloth", {})),
        ("job", "job auto (Unsloth) QLoRA", ("4b", {**Q4, "batch_size": 4}, "auto", {})),
    ],
    "rest": [
        ("anchor", "HF+PEFT QLoRA (baseline)", ("A", "1,4")),
        ("job", "job auto Trinity fast DoRA", ("4b", {**TRINITY, "batch_size": 1}, "auto", {})),
        ("job", "job auto QLoRA", ("4b", {**Q4, "batch_size": 4}, "auto", {})),
        ("anchor", "Unsloth QLoRA+DoRA", ("D_dora", "1")),
        ("eval", "eval_speed demo", ()),
    ],
}


def load_anchor(path: str):
    spec = importlib.util.spec_from_file_location("anchor_bench", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_anchor(anchor, path: str, variant: str, batches: str, model: str, timeout: float) -> list[dict]:
    jf = f"/tmp/speed_anchor_{variant}.json"
    if os.path.exists(jf):
        os.remove(jf)
    env = anchor.unsloth_env() if variant.startswith("D") else dict(os.environ, PYTHONUNBUFFERED="1")
    env["GPUBENCH_STEPS"] = "2,6"
    t0 = time.time()
    try:
        p = subprocess.run([sys.executable, path, "worker", "--variant", variant, "--path", model,
                            "--batches", batches, "--json", jf, "--max-seconds", "30"],
                           capture_output=True, text=True, timeout=timeout, env=env)
        tail = (p.stdout + p.stderr)[-3000:]
    except subprocess.TimeoutExpired:
        tail = "timeout"
    res = json.load(open(jf)) if os.path.exists(jf) else {"error": tail}
    rows = []
    for b, r in (res.get("runs") or {}).items():
        rows.append({"batch": int(b), "step_s": r.get("step_s_median"), "tokens_per_s": r.get("tokens_per_s"),
                     "reserved_gib": r.get("peak_reserved_GiB"), "error": r.get("error"),
                     "losses": None, "wall_s": round(time.time() - t0, 1), "extra": {
                         "seq_len": r.get("seq_len"), "warmup_s": r.get("warmup_s"), "optimizer": res.get("optimizer"),
                         "attn": res.get("attn_impl"), "n": r.get("n_measured")}})
    if not rows:
        rows.append({"batch": batches, "error": (res.get("error") or tail)[-800:]})
    return rows


def run_job(label: str, size: str, overrides: dict, backend: str, env: dict, root: Path, out: Path,
            deadline: float) -> dict:
    from bench import gpu_memory
    from core.training.events import read_events

    name = f"{label.replace(' ', '_')}-b{overrides.get('batch_size', 1)}-{size}"
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        row = gpu_memory.run_one(name, size, overrides, root, out, deadline, backend=backend, limit=300)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    run_dir = root / "runs" / f"{name}-{backend}"
    logs = [e for e in read_events(run_dir) if e.get("type") == "log"] if run_dir.exists() else []
    notes = [e.get("message") for e in read_events(run_dir) if e.get("type") == "info" and e.get("message")] \
        if run_dir.exists() else []
    b = overrides.get("batch_size", 1)
    seq = min(row.get("longest_tokens") or SEQ, overrides.get("max_seq_length", SEQ))
    step = row.get("step_time_s")
    return {"batch": b, "step_s": step, "tokens_per_s": round(b * seq / step, 1) if step else None,
            "reserved_gib": row.get("measured_peak_reserved_gb"), "error": row.get("error") or (
                None if row.get("status") == "completed" else f"{row.get('status')}: {row.get('log_tail', '')[-600:]}"),
            "losses": [e.get("loss") for e in logs], "wall_s": row.get("wall_s"),
            "extra": {"backend": row.get("backend"), "seq_len": seq, "first_step_s": row.get("first_step_s"),
                      "alloc_gib": row.get("measured_peak_allocated_gb"), "notes": notes,
                      "step_times": [e.get("step_time_s") for e in logs]}}


def run_eval(out: Path, timeout: float) -> dict:
    cmd = [sys.executable, str(REPO / "bench" / "eval_speed.py"), "--model", "demo", "--task", "keys",
           "--n", "64", "--batch-size", "16", "--max-new-tokens", "48", "--json", str(out / "eval_speed.json")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])))
    f = out / "eval_speed.json"
    return json.loads(f.read_text()) if f.exists() else {"error": (p.stdout + p.stderr)[-1500:]}


def versions() -> dict:
    import importlib.metadata as md

    import torch

    v = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"}
    for pkg in ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "unsloth", "unsloth_zoo", "triton"):
        try:
            v[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            v[pkg] = None
    return v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", choices=sorted(PLANS), required=True)
    ap.add_argument("--anchor", required=True, help="path of anchor_bench.py (copied into the carried folder)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--root", default="/tmp/gpu_speed_work")
    ap.add_argument("--deadline", type=float, default=540)
    a = ap.parse_args()
    t_start = time.time()
    deadline = t_start + a.deadline
    out, root = Path(a.out), Path(a.root)
    out.mkdir(parents=True, exist_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    from bench import gpu_memory
    from bench.gpu_models import build

    anchor = load_anchor(a.anchor)
    info = {"plan": a.plan, "versions": versions(), "command": "python3 bench/gpu_speed.py " + " ".join(sys.argv[1:])}
    print(json.dumps(info), flush=True)
    gpu_memory.make_dataset(root / "dataset")
    print(f"[{time.time() - t_start:4.0f}s] 4b model: {build('4b', '/tmp/gemma3_4b')}", flush=True)
    rows, bg = [], None

    def keep(kind, label, r):
        r = {"kind": kind, "label": label, **r}
        rows.append(r)
        (out / "speed.json").write_text(json.dumps({**info, "rows": rows}, indent=1, default=str))
        print(f"[{time.time() - t_start:4.0f}s] {label} b{r.get('batch')}: step {r.get('step_s')} s, "
              f"{r.get('tokens_per_s')} tok/s, reserved {r.get('reserved_gib')} GiB, losses {r.get('losses')} "
              f"{r.get('error') or ''} {r.get('extra')}", flush=True)

    for kind, label, det in PLANS[a.plan]:
        left = deadline - time.time()
        if kind == "build12b":
            bg = threading.Thread(target=lambda: print("12b model:", build("12b", "/tmp/gemma3_12b"), flush=True))
            bg.start()
            continue
        if left < 45:
            keep(kind, label, {"error": f"skipped: {left:.0f}s left"})
            continue
        if kind == "anchor":
            if det[0].startswith("D") and not getattr(anchor, "_probed", False):
                anchor._probed = anchor.probe_unsloth(lambda s: print(s[-1500:], flush=True))
                os.environ["PYTHONPATH"] = os.environ.get("PYTHONPATH", "") + os.pathsep + anchor.STUB_DIR
            limit = 360 if det[0].startswith("D") else 240  # Unsloth: import + first-step compile
            for r in run_anchor(anchor, a.anchor, det[0], det[1], "/tmp/gemma3_4b", min(limit, left - 5)):
                keep(kind, label, r)
        elif kind == "job":
            size, over, backend, env = det
            if size == "12b" and bg is not None:
                bg.join(timeout=max(1, deadline - time.time() - 60))
                if bg.is_alive():
                    keep(kind, label, {"error": "12b build not finished"})
                    continue
            keep(kind, label, run_job(label, size, over, backend, env, root, out, deadline))
        elif kind == "eval":
            r = run_eval(out, min(150, left - 5))
            keep(kind, label, {"batch": r.get("batch_size"), "error": r.get("error"), "extra": r})
    print_table(rows, out)
    print(f"total {time.time() - t_start:.0f}s")


def print_table(rows: list[dict], out: Path) -> None:
    base = {r["batch"]: r["tokens_per_s"] for r in rows if r["label"].endswith("(baseline)") and r.get("tokens_per_s")}
    lines = ["| path | batch | s/step | tokens/s | x baseline | peak reserved GiB | first losses |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["kind"] == "eval":
            e = r.get("extra") or {}
            lines.append(f"| {r['label']} (batched vs one-by-one) | {e.get('batch_size')} | {e.get('batched_s')} vs "
                         f"{e.get('one_by_one_s')} | - | {e.get('speedup')} | - | {e.get('identical_answers')} |")
            continue
        tps = r.get("tokens_per_s")
        ratio = f"{tps / base[r['batch']]:.2f}" if tps and base.get(r.get("batch")) else "-"
        losses = ", ".join(f"{x:.3f}" for x in (r.get("losses") or [])[:5] if x is not None)
        err = f" ERROR {str(r['error'])[:120]}" if r.get("error") else ""
        lines.append(f"| {r['label']} | {r.get('batch')} | {r.get('step_s') or '-'} | {tps or '-'} | {ratio} | "
                     f"{r.get('reserved_gib') or '-'} | {losses}{err} |")
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    print(text, flush=True)




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


if __name__ == "__main__" and sys.argv[1:2] == ["stack"]:
    print(stack_bench(), flush=True)
elif __name__ == "__main__" and sys.argv[1:2] == ["layer"]:
    print(layer_bench())
elif __name__ == "__main__" and sys.argv[1:2] == ["eval"]:
    print(json.dumps(run_eval(Path(sys.argv[2]), 200)))
elif __name__ == "__main__":
    main()
