"""Where a training step's time goes: the studio's job vs a bare loop on the same prepared model.

`job` runs core.training.job.run_job in this process (the same code as `python -m core train`), with
timers around the Trainer's batch fetch (data loading + collation), its training_step (forward +
backward) and the rest of the step (clipping, optimizer, scheduler, logging, callbacks), and
torch.profiler over two steady steps. `bare` loads the model through the job's own backend
(backend_hf.prepare), collates one batch with the job's collator, and times forward / backward /
optimizer in a plain loop. Both print the top operators by host time and by GPU time, and the
share of the step the GPU is busy, plus a census of parameter dtypes.

On the lent GPU (repo root), with the carried site on PYTHONPATH (see bench/gpu_speed.py):
  python3 bench/gpu_profile.py drive --out $OUT --variants job,job:w0,bare --anchor .gpuspeed/anchor_bench.py
  python3 bench/gpu_profile.py drive --out $OUT --variants job --env TRINITY_DATA_WORKERS=0
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.gpu_speed import Q4 as SPEED_Q4, RECORDS  # noqa: E402  (the same configuration as the speed table)

Q4 = {**{k: v for k, v in SPEED_Q4.items() if k != "max_steps"}, "batch_size": 1}
PROFILE_STEPS = (6, 7)  # steady steps traced by torch.profiler (1-based optimizer steps)


def _sync():
    import torch
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def dtype_census(model) -> dict:
    """GiB of parameters by (dtype, top-level part): shows an unexpected fp32 upcast at once."""
    out: dict = collections.Counter()
    for name, p in model.named_parameters():
        part = ".".join(x for x in name.split(".")[:4] if x not in ("base_model", "model"))[:40]
        part = "vision" if "vision" in name else ("embed" if "embed" in name else
                                                   ("lora" if "lora_" in name else part.split(".")[0]))
        out[f"{type(p).__name__}:{p.dtype}:{part}"] += p.numel() * p.element_size() / 2**30
    return {k: round(v, 3) for k, v in sorted(out.items(), key=lambda kv: -kv[1])}


def summarize_profile(prof, steps: int, wall_s: float) -> dict:
    """Top ops by host (self CPU) time and by GPU time, per step, and how busy the GPU was."""
    ka = prof.key_averages()
    dev_attr = "self_device_time_total" if hasattr(ka[0], "self_device_time_total") else "self_cuda_time_total"
    rows = []
    for e in ka:
        rows.append({"op": e.key[:70], "calls": e.count // steps, "cpu_ms": e.self_cpu_time_total / 1e3 / steps,
                     "gpu_ms": getattr(e, dev_attr, 0) / 1e3 / steps})
    gpu_total = sum(r["gpu_ms"] for r in rows)
    cpu_total = sum(r["cpu_ms"] for r in rows)
    launches = sum(r["calls"] for r in rows if "LaunchKernel" in r["op"])
    aten_ops = sum(r["calls"] for r in rows if r["op"].startswith("aten::"))
    syncs = sum(r["calls"] for r in rows if r["op"] in ("aten::_local_scalar_dense", "cudaStreamSynchronize",
                                                          "cudaDeviceSynchronize"))
    top = lambda key, n: [{k: (round(v, 2) if isinstance(v, float) else v) for k, v in r.items()}
                          for r in sorted(rows, key=lambda r: -r[key])[:n]]
    return {"step_wall_ms": round(wall_s * 1e3 / steps, 1), "gpu_busy_ms": round(gpu_total, 1),
            "gpu_busy_share": round(gpu_total / (wall_s * 1e3 / steps), 3), "host_self_ms": round(cpu_total, 1),
            "kernel_launches": launches, "aten_ops": aten_ops, "syncs": syncs,
            "top_cpu": top("cpu_ms", 25), "top_gpu": top("gpu_ms", 15), "top_calls": top("calls", 20)}


class StepTimer:
    """Wraps the trainer's batch fetch and training_step; a callback marks the step boundaries."""

    def __init__(self):
        self.fetch, self.train, self.step = [], [], []
        self._t_step = None
        self.prof = None
        self.prof_t0 = 0.0
        self.profile: dict = {}

    def wrap(self, fn, store):
        def timed(*a, **k):
            _sync()
            t = time.perf_counter()
            r = fn(*a, **k)
            _sync()
            store.append(time.perf_counter() - t)
            return r
        return timed

    def callback(self):
        from transformers import TrainerCallback
        timer = self

        class Cb(TrainerCallback):
            # a step is the time from one step's end to the next (the Trainer fetches the batch
            # before on_step_begin)
            def on_train_begin(self, args, state, control, **kw):
                _sync()
                timer._t_step = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                _sync()
                now = time.perf_counter()
                timer.step.append(now - timer._t_step)
                timer._t_step = now
                if state.global_step + 1 == PROFILE_STEPS[0]:
                    timer.start_profile()
                if state.global_step == PROFILE_STEPS[1]:
                    timer.stop_profile(len(range(*PROFILE_STEPS)) + 1)
        return Cb()

    def start_profile(self):
        import torch
        if os.environ.get("TRINITY_PROFILE") == "0":
            return
        acts = [torch.profiler.ProfilerActivity.CPU] + (
            [torch.profiler.ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        self.prof = torch.profiler.profile(activities=acts)
        self.prof.__enter__()
        self.prof_t0 = time.perf_counter()

    def stop_profile(self, steps: int):
        if self.prof is None:
            return
        _sync()
        wall = time.perf_counter() - self.prof_t0
        self.prof.__exit__(None, None, None)
        self.profile = summarize_profile(self.prof, steps, wall)


def variant_job(a) -> dict:
    import torch
    import transformers

    from bench import gpu_memory
    from core.training.job import run_job
    from core.training.runs import create_run

    root = Path(a.root)
    ds = gpu_memory.make_dataset(root / "dataset", n=RECORDS)
    over = {**Q4, **json.loads(a.over), "max_steps": a.steps}
    cfg = gpu_memory.train_config(f"/tmp/gemma3_{a.size}", ds, over)
    cfg.backend = a.backend
    run_dir = root / "runs" / f"profile-{a.name}"
    import shutil
    shutil.rmtree(run_dir, ignore_errors=True)
    create_run(cfg, run_dir=run_dir)
    timer, census = StepTimer(), {}
    orig_train = transformers.Trainer.train

    def train(self, *args, **kw):
        self.add_callback(timer.callback())
        for name in ("get_batch_samples", "_get_batch_samples"):
            if hasattr(self, name):
                setattr(self, name, timer.wrap(getattr(self, name), timer.fetch))
        self.training_step = timer.wrap(self.training_step, timer.train)
        census.update(dtype_census(self.model))
        return orig_train(self, *args, **kw)

    transformers.Trainer.train = train
    t0 = time.time()
    rc = run_job(run_dir, progress=False)
    from core.training.events import read_events
    events = read_events(run_dir)
    end = next((e for e in events if e["type"] == "end"), {})
    losses = [e.get("loss") for e in events if e["type"] == "log"]
    notes = [e.get("message") for e in events if e["type"] == "info" and e.get("message")]
    steady = lambda xs: round(statistics.median(xs[2:]) * 1e3, 1) if len(xs) > 2 else None
    # each optimizer step has one fetch and one training_step at grad accumulation 1
    rest = [s - f - t for s, f, t in zip(timer.step, timer.fetch, timer.train)]
    return {"rc": rc, "status": end.get("status"), "error": end.get("error"), "wall_s": round(time.time() - t0, 1),
            "ms": {"step": steady(timer.step), "fetch+collate": steady(timer.fetch),
                   "training_step": steady(timer.train), "rest (clip, optimizer, log, callbacks)": steady(rest)},
            "step_ms_all": [round(x * 1e3) for x in timer.step], "losses": losses, "notes": notes,
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2) if torch.cuda.is_available() else None,
            "profile": timer.profile, "dtypes": census}


def variant_bare(a) -> dict:
    import torch

    from bench import gpu_memory
    from core.training import backend_hf
    from core.training.data import load_splits
    from core.training.hardware import detect

    root = Path(a.root)
    ds = gpu_memory.make_dataset(root / "dataset", n=RECORDS)
    cfg = gpu_memory.train_config(f"/tmp/gemma3_{a.size}", ds, {**Q4, **json.loads(a.over)})
    hw = detect()
    torch.manual_seed(cfg.seed)
    prep = backend_hf.prepare(cfg, hw, "bf16")
    train, _, _ = load_splits(cfg, prep.processor)
    batch = prep.collator([train[i] for i in range(cfg.batch_size)])
    batch = {k: v.to("cuda") if hasattr(v, "to") else v for k, v in batch.items()}
    model = prep.model
    model.train()
    import bitsandbytes as bnb
    opt = bnb.optim.AdamW8bit([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    fwd, bwd, op, step = [], [], [], []
    timer = StepTimer()
    for i in range(a.steps):
        if i + 1 == PROFILE_STEPS[0]:
            timer.start_profile()
        _sync()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch).loss
        _sync()
        t1 = time.perf_counter()
        loss.backward()
        _sync()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync()
        t3 = time.perf_counter()
        fwd.append(t1 - t0), bwd.append(t2 - t1), op.append(t3 - t2), step.append(t3 - t0)
        if i + 1 == PROFILE_STEPS[1]:
            timer.stop_profile(len(range(*PROFILE_STEPS)) + 1)
    steady = lambda xs: round(statistics.median(xs[2:]) * 1e3, 1)
    return {"ms": {"step": steady(step), "forward": steady(fwd), "backward": steady(bwd), "optimizer": steady(op)},
            "seq_len": int(batch["input_ids"].shape[1]), "loss": float(loss), "profile": timer.profile,
            "dtypes": dtype_census(model), "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2)}


def variant_anchor(a) -> dict:
    """../shared/gpu/anchor_bench.py's own model (plain from_pretrained + PEFT, its fp32 adapters, the
    model's own loss over full logits) and its loop, on its own random batch, under the same profiler."""
    import types

    import torch

    from bench.gpu_speed import load_anchor

    anchor = load_anchor(a.anchor)
    res: dict = {}
    model = anchor.load_hf(types.SimpleNamespace(variant="A", path=f"/tmp/gemma3_{a.size}"), res)
    model.train()
    opt = anchor.make_optimizer([p for p in model.parameters() if p.requires_grad], res)
    batch = anchor.make_batch(int(json.loads(a.over).get("batch_size", 1)), "cuda", torch.bfloat16)
    timer, step = StepTimer(), []
    for i in range(a.steps):
        if i + 1 == PROFILE_STEPS[0]:
            timer.start_profile()
        _sync()
        t0 = time.perf_counter()
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync()
        step.append(time.perf_counter() - t0)
        if i + 1 == PROFILE_STEPS[1]:
            timer.stop_profile(len(range(*PROFILE_STEPS)) + 1)
    return {"ms": {"step": round(statistics.median(step[2:]) * 1e3, 1)}, "step_ms_all": [round(x * 1e3) for x in step],
            "seq_len": int(batch["input_ids"].shape[1]), "profile": timer.profile, "dtypes": dtype_census(model),
            "peak_reserved_gib": round(torch.cuda.max_memory_reserved() / 2**30, 2), "anchor": res}


def variant_collate(a) -> dict:
    """The job's data path on this host's CPU: one example's fetch (image load + resize + texts) and
    collation (processor + tokenizer + TRL's masking), and the wait for the first batch of an epoch
    through the job's own DataLoader settings (4 workers, persistent, prefetch 2)."""
    import torch
    from transformers import AutoProcessor

    from bench import gpu_memory
    from core.training.data import CountingVisionCollator, load_splits

    root = Path(a.root)
    proc = AutoProcessor.from_pretrained(f"/tmp/gemma3_{a.size}")
    out: dict = {"image_processor": type(proc.image_processor).__name__}
    for n in (8, RECORDS):
        ds = gpu_memory.make_dataset(root / f"collate{n}", n=n)
        cfg = gpu_memory.train_config(f"/tmp/gemma3_{a.size}", ds, {"max_seq_length": 822})
        train, _, _ = load_splits(cfg, proc)
        col = CountingVisionCollator(processor=proc, max_length=822, completion_only_loss=True)
        if n == RECORDS:
            t = time.perf_counter()
            train.prepare_texts()  # as the job does before its workers fork
            out[f"prepare_texts_s_{n}rec"] = round(time.perf_counter() - t, 2)
        if n == 8:
            fetch, coll = [], []
            for i in range(8):
                t = time.perf_counter()
                ex = [train[i]]
                t1 = time.perf_counter()
                col(ex)
                fetch.append(t1 - t), coll.append(time.perf_counter() - t1)
            cached = []
            for i in range(8):
                t = time.perf_counter()
                col([train[i]])
                cached.append(time.perf_counter() - t)
            out["per_example_ms"] = {"fetch_first": round(statistics.median(fetch) * 1e3, 1),
                                     "collate": round(statistics.median(coll) * 1e3, 1),
                                     "fetch_cached+collate": round(statistics.median(cached) * 1e3, 1)}
        for b in (1, 4):
            dl = torch.utils.data.DataLoader(train.as_hf(), batch_size=b, shuffle=True, collate_fn=col, num_workers=4,
                                             persistent_workers=True, prefetch_factor=2, pin_memory=True)
            waits = []
            for _epoch in range(3):
                t = time.perf_counter()
                it = iter(dl)
                next(it)
                waits.append(round((time.perf_counter() - t) * 1e3))
                for _ in it:
                    pass
            out[f"first_batch_wait_ms_{n}rec_b{b}"] = waits
    return out


def cmd_one(a) -> None:
    for kv in a.env or []:
        k, v = kv.split("=", 1)
        os.environ[k] = v
    fn = {"job": variant_job, "bare": variant_bare, "anchor": variant_anchor, "collate": variant_collate}[a.variant]
    try:
        res = fn(a)
    except Exception as e:  # noqa: BLE001 - the driver prints what broke
        import traceback
        res = {"error": f"{e!r}", "trace": traceback.format_exc()[-3000:]}
    Path(a.json).write_text(json.dumps(res, indent=1, default=str))


def cmd_drive(a) -> None:
    from bench.gpu_models import build

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    print(f"model: {build(a.size, f'/tmp/gemma3_{a.size}')} ({time.time() - t0:.0f}s)", flush=True)
    results = {}
    if a.anchor and a.anchor_worker:  # the plain HF + PEFT loop of ../shared/gpu/anchor_bench.py, same machine
        from bench.gpu_speed import load_anchor, run_anchor
        t = time.time()
        for r in run_anchor(load_anchor(a.anchor), a.anchor, "A", "1", f"/tmp/gemma3_{a.size}", 300):
            results["anchor A (HF+PEFT QLoRA)"] = {"ms": {"step": round(r["step_s"] * 1e3, 1) if r.get("step_s") else None},
                                                   "error": r.get("error")}
            print(f"=== anchor A ({time.time() - t:.0f}s): {r}", flush=True)
    for spec in a.variants.split(","):
        variant, _, tag = spec.partition(":")
        name = f"{variant}{'-' + tag if tag else ''}"
        env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false",
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        jf = out / f"profile-{name}.json"
        cmd = [sys.executable, __file__, "one", "--variant", variant, "--name", name, "--json", str(jf),
               "--size", a.size, "--steps", str(a.steps), "--backend", a.backend,
               "--over", json.dumps({**json.loads(a.over), **{k: v for t in tag.split("+") for k, v in OVER.get(t, {}).items()}}),
               "--root", a.root] + (["--anchor", a.anchor] if a.anchor else []) + sum((["--env", e] for e in (a.env or []) + [x for t in tag.split("+") for x in TAGS.get(t, [])]), [])
        t = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        (out / f"profile-{name}.log").write_text(p.stdout + p.stderr)
        res = json.loads(jf.read_text()) if jf.exists() else {"error": (p.stdout + p.stderr)[-2000:]}
        results[name] = res
        print(f"=== {name} ({time.time() - t:.0f}s): "
              f"{json.dumps({k: res.get(k) for k in ('ms', 'error', 'status', 'peak_reserved_gib', 'losses', 'notes')})}",
              flush=True)
        prof = res.get("profile") or {}
        print(json.dumps({k: prof.get(k) for k in ("step_wall_ms", "gpu_busy_ms", "gpu_busy_share",
                                                   "host_self_ms", "kernel_launches")}), flush=True)
        for r in (prof.get("top_cpu") or [])[:15]:
            print(f"  cpu {r['cpu_ms']:8.2f} ms  gpu {r['gpu_ms']:8.2f} ms  x{r['calls']:<5} {r['op']}", flush=True)
        for r in (prof.get("top_gpu") or [])[:10]:
            print(f"  GPU {r['gpu_ms']:8.2f} ms  x{r['calls']:<5} {r['op']}", flush=True)
        print("  dtypes:", json.dumps(dict(list((res.get("dtypes") or {}).items())[:8])), flush=True)
    keys = list(dict.fromkeys(k for r in results.values() for k in (r.get("ms") or {})))
    print("| variant | " + " | ".join(f"{k} ms" for k in keys) + " | GPU busy share | host self ms |")
    print("|---" * (len(keys) + 3) + "|")
    for name, r in results.items():
        p = r.get("profile") or {}
        print(f"| {name} | " + " | ".join(str((r.get("ms") or {}).get(k, "-")) for k in keys)
              + f" | {p.get('gpu_busy_share', '-')} | {p.get('host_self_ms', '-')} |", flush=True)
    (out / "profile.json").write_text(json.dumps(results, indent=1, default=str))


# variant tags: "job:w0" runs the job with these environment settings
TAGS = {"w0": ["TRINITY_DATA_WORKERS=0"], "w2": ["TRINITY_DATA_WORKERS=2"], "peftdora": ["FAST_DORA=0", "FAST_LORA=0"],
        "peft": ["FAST_LORA=0"], "fused": ["FAST_LORA=all"], "np": ["TRINITY_PROFILE=0"]}
OVER = {"trinity": {"use_dora": True}, "peftdora": {"use_dora": True}, "b4": {"batch_size": 4}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    for name in ("one", "drive"):
        p = sp.add_parser(name)
        p.add_argument("--size", default="4b")
        p.add_argument("--steps", type=int, default=10)
        p.add_argument("--over", default="{}", help="TrainConfig overrides as JSON")
        p.add_argument("--backend", default="hf")
        p.add_argument("--root", default="/tmp/gpu_profile_work")
        p.add_argument("--env", action="append", help="K=V set in the variant's process")
    one = sp.choices["one"]
    one.add_argument("--variant", required=True)
    one.add_argument("--name", required=True)
    one.add_argument("--json", required=True)
    one.add_argument("--anchor", help="path of anchor_bench.py (the anchor variant)")
    sp.choices["drive"].add_argument("--out", required=True)
    sp.choices["drive"].add_argument("--variants", default="job,bare")
    sp.choices["drive"].add_argument("--anchor", help="path of anchor_bench.py (the anchor variant profiles its loop)")
    sp.choices["drive"].add_argument("--anchor-worker", action="store_true",
                                     help="also time anchor_bench.py's own worker process (A, b1)")
    a = ap.parse_args()
    (cmd_one if a.cmd == "one" else cmd_drive)(a)


if __name__ == "__main__":
    main()
