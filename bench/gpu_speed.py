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
first pass), seeds / seeds_hf / seeds_unsloth (issue 16's rows and goals, bench/gpu_seeds.py).
`--list` prints a plan's rows without running anything (no GPU needed); `--append speed.json`
adds an earlier call's rows to this one's table. `python3 bench/gpu_speed.py stack` / `layer` are
layer micro-benchmarks (bench/gpu_layers.py).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import gpu_seeds as seeds  # noqa: E402

SEQ = 822
# Records of the speed dataset: enough that no timed step of a b4 row starts an epoch. With 8 (the
# memory grid's size) every second b4 step began an epoch and waited for a worker's first batch
# (step times 1.03-2.45 s in one run, 2026-12-07): a property of 8-image datasets, measured apart
# (bench/gpu_profile.py collate), not of the steady step the rows compare.
RECORDS = 64
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
    # 2026-12-07, issue 24: the hf path's levers A/B, alternated, beside anchor A (the profile of
    # the same call is bench/gpu_profile.py's: collate, anchor:b4, job:b4)
    "hf_diag": [
        ("anchor", "HF+PEFT QLoRA (baseline)", ("A", "1,4")),
        ("job", "job hf QLoRA", ("4b", {**Q4, "batch_size": 4}, "hf", {})),
        ("job", "job hf QLoRA, autocast off", ("4b", {**Q4, "batch_size": 4}, "hf", {"TRINITY_AUTOCAST": "0"})),
        ("job", "job hf QLoRA", ("4b", {**Q4, "batch_size": 1}, "hf", {})),
        ("job", "job hf QLoRA, autocast off", ("4b", {**Q4, "batch_size": 1}, "hf", {"TRINITY_AUTOCAST": "0"})),
        ("job", "job hf QLoRA", ("4b", {**Q4, "batch_size": 4}, "hf", {})),
        ("job", "job hf QLoRA, autocast off", ("4b", {**Q4, "batch_size": 4}, "hf", {"TRINITY_AUTOCAST": "0"})),
        ("job", "job hf Trinity 4B r64", ("4b", {**TRINITY, "batch_size": 1}, "hf", {})),
        ("job", "job hf QLoRA, liger on", ("4b", {**Q4, "batch_size": 1, "liger_kernel": "on"}, "hf", {})),
        ("job", "job hf QLoRA", ("4b", {**Q4, "batch_size": 1}, "hf", {})),
        ("job", "job hf QLoRA, autocast off", ("4b", {**Q4, "batch_size": 1}, "hf", {"TRINITY_AUTOCAST": "0"})),
    ],
    # 2026-12-07, issue 24, second call: Unsloth. Compiles (1.5-2 min each, CPU-bound) run first,
    # untimed and one at a time, into the workspace's compile cache (the job's own) and Unsloth's
    # default one (the anchor's); then every timed row runs alone on warm caches.
    "unsloth_warm": [
        ("warm", "compile warm-up", [
            ("job", "warm: unsloth QLoRA (cache cold)", ("4b", {**Q4, "batch_size": 1, "max_steps": 2}, "unsloth", {})),
        ]),
        ("anchor", "Unsloth QLoRA (anchor D)", ("D", "1")),  # compiles in its own untimed warm-up steps
        ("job", "job auto QLoRA", ("4b", {**Q4, "batch_size": 1}, "auto", {})),  # the second run: warm cache
        # compiles in its first step (untimed: steady steps start at step 3); the log counts recompiles
        ("job", "job unsloth Trinity 4B r64", ("4b", {**TRINITY, "batch_size": 1}, "unsloth", {"TORCH_LOGS": "recompiles"})),
        ("job", "job hf Trinity 4B r64", ("4b", {**TRINITY, "batch_size": 1}, "hf", {})),
    ],
    # b4 in a call of its own (a new shape compiles again, ~2 min)
    "unsloth_b4": [
        ("anchor", "Unsloth QLoRA (anchor D)", ("D", "4")),
        ("job", "job auto QLoRA", ("4b", {**Q4, "batch_size": 4}, "auto", {})),
        ("anchor", "HF+PEFT QLoRA (baseline)", ("A", "4")),
        ("job", "job hf QLoRA", ("4b", {**Q4, "batch_size": 4}, "hf", {})),
    ],
    # the loss curve every fast row is held to: PEFT's own layers, no Liger, no autocast (measured
    # in call 3, 2026-12-07)
    "plain_ref": [
        ("job", "job hf QLoRA, plain PEFT (levers off)", ("4b", {**Q4, "batch_size": 1, "liger_kernel": "off"}, "hf",
                                                         {"FAST_LORA": "0", "FAST_DORA": "0", "TRINITY_AUTOCAST": "0"})),
    ],
    # the hf path's DoRA A/B alone, alternated (issue 24, last call of 2026-12-07)
    "dora_ab": [
        ("job", "job hf Trinity 4B r64, PEFT layers + fast DoRA", ("4b", {**TRINITY, "batch_size": 1}, "hf", {"FAST_LORA": "0"})),
        ("job", "job hf Trinity 4B r64", ("4b", {**TRINITY, "batch_size": 1}, "hf", {})),
        ("job", "job hf Trinity 4B r64, PEFT layers + fast DoRA", ("4b", {**TRINITY, "batch_size": 1}, "hf", {"FAST_LORA": "0"})),
        ("job", "job hf Trinity 4B r64", ("4b", {**TRINITY, "batch_size": 1}, "hf", {})),
        ("job", "job hf Trinity 4B r64, PEFT layers + fast DoRA", ("4b", {**TRINITY, "batch_size": 1}, "hf", {"FAST_LORA": "0"})),
        ("job", "job hf Trinity 4B r64", ("4b", {**TRINITY, "batch_size": 1}, "hf", {})),
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
    **seeds.PLANS,
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


def run_anchor(anchor, path: str, variant: str, batches: str, model: str, timeout: float,
               steps: str = "2,6") -> list[dict]:
    jf = f"/tmp/speed_anchor_{variant}_{steps.replace(',', '_')}.json"
    if os.path.exists(jf):
        os.remove(jf)
    env = anchor.unsloth_env() if variant.startswith("D") else dict(os.environ, PYTHONUNBUFFERED="1")
    env["GPUBENCH_STEPS"] = steps  # warm-up, measured
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
            deadline: float, index: int = 0, limit: float = 300) -> dict:
    from bench import gpu_memory
    from core.training.events import read_events

    # the row's index keeps a repeated row (an A/B pair run twice) in a run folder of its own
    name = (f"{index:02d}-{label.replace(' ', '_').replace(',', '').replace('(', '').replace(')', '')}"
            f"-b{overrides.get('batch_size', 1)}-{size}")
    env = dict(env)
    if env.pop("SEEDS_FRESH_CACHE", None):  # a cold start: the workspace's compile caches removed
        import shutil
        shutil.rmtree(root / "cache", ignore_errors=True)
    # the row's environment goes to its own process only (warm-up rows run side by side in threads)
    row = gpu_memory.run_one(name, size, overrides, root, out, deadline, backend=backend, limit=limit, env_extra=env)
    run_dir = root / "runs" / f"{name}-{backend}"
    log = run_dir / "job.log"
    recompiles = log.read_text(errors="replace").count("Recompiling function") if log.exists() else None
    logs = [e for e in read_events(run_dir) if e.get("type") == "log"] if run_dir.exists() else []
    infos = [e for e in read_events(run_dir) if e.get("type") == "info"] if run_dir.exists() else []
    notes = [e.get("message") for e in infos if e.get("message")]
    compile_s = next((e["compile_s"] for e in infos if e.get("compile_s") is not None), None)
    path = next((e.get("message") for e in infos if e.get("path")), None)
    b = overrides.get("batch_size", 1)
    seq = min(row.get("longest_tokens") or SEQ, overrides.get("max_seq_length", SEQ))
    step = row.get("step_time_s")
    return {"batch": b, "step_s": step, "tokens_per_s": round(b * seq / step, 1) if step else None,
            "reserved_gib": row.get("measured_peak_reserved_gb"), "error": row.get("error") or (
                None if row.get("status") == "completed" else f"{row.get('status')}: {row.get('log_tail', '')[-600:]}"),
            "losses": [e.get("loss") for e in logs], "wall_s": row.get("wall_s"),
            "extra": {"backend": row.get("backend"), "seq_len": seq, "first_step_s": row.get("first_step_s"),
                      "compile_s": compile_s, "path": path, "recompiles": recompiles,
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
    ap.add_argument("--list", action="store_true", help="print the plan's rows (and goals) and exit: runs nothing")
    ap.add_argument("--anchor", help="path of anchor_bench.py (copied into the carried folder)")
    ap.add_argument("--out")
    ap.add_argument("--root", default="/tmp/gpu_speed_work")
    ap.add_argument("--deadline", type=float, default=540)
    ap.add_argument("--append", help="speed.json of an earlier call: its rows join this call's table")
    ap.add_argument("--skip", type=int, default=0, help="start at this row of the plan (0-based)")
    a = ap.parse_args()
    if a.list:
        print(seeds.listing(PLANS[a.plan]))
        if a.plan.startswith("seeds") or a.append:  # the goals of the rows given (any plan's)
            print(seeds.goals_table(_earlier(a.append)))
        return
    if not (a.anchor and a.out):
        ap.error("--anchor and --out are needed to run a plan (or --list to see it)")
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
    gpu_memory.make_dataset(root / "dataset", n=RECORDS)
    print(f"[{time.time() - t_start:4.0f}s] fsync of one events line: {fsync_ms(root)} ms", flush=True)
    plan = PLANS[a.plan][a.skip:]
    if any(k in ("anchor", "warm") for k, _l, _d in plan):  # job rows build it when first needed
        print(f"[{time.time() - t_start:4.0f}s] 4b model: {build('4b', '/tmp/gemma3_4b')}", flush=True)
    rows, bg = _earlier(a.append), None

    def keep(kind, label, r):
        r = {"kind": kind, "label": label, **r}
        rows.append(r)
        (out / "speed.json").write_text(json.dumps({**info, "rows": rows}, indent=1, default=str))
        print(f"[{time.time() - t_start:4.0f}s] {label} b{r.get('batch')}: step {r.get('step_s')} s, "
              f"{r.get('tokens_per_s')} tok/s, reserved {r.get('reserved_gib')} GiB, losses {r.get('losses')} "
              f"{r.get('error') or ''} {r.get('extra')}", flush=True)

    if a.skip:
        print(f"skipping the first {a.skip} rows of the plan", flush=True)
    for kind, label, det in plan:
        left = deadline - time.time()
        if kind == "warm":  # untimed compile warm-ups, side by side: they fill the compile caches
            threads = []
            for wkind, wlabel, wdet in det:
                if wkind == "anchor":
                    def go(wlabel=wlabel, wdet=wdet):
                        if not getattr(anchor, "_probed", False):
                            anchor._probed = anchor.probe_unsloth(lambda s: print(s[-600:], flush=True))
                        for r in run_anchor(anchor, a.anchor, wdet[0], wdet[1], "/tmp/gemma3_4b",
                                            max(60, deadline - time.time() - 200), steps=wdet[2]):
                            keep("warm", wlabel, r)
                else:
                    def go(wlabel=wlabel, wdet=wdet):
                        size, over, backend, env = wdet
                        keep("warm", wlabel, run_job(wlabel, size, over, backend, env, root, out, deadline,
                                                     index=100 + len(threads),
                                                     limit=min(250, max(60, deadline - time.time() - 200))))
                # one after another: four Unsloth compiles side by side starved each other on 16 cores
                # (2026-12-07: 130.6 s for one that takes 83-94 s alone, two never finished)
                threads.append(go)
                go()
            if getattr(anchor, "_probed", False):
                os.environ["PYTHONPATH"] = os.environ.get("PYTHONPATH", "") + os.pathsep + anchor.STUB_DIR
            continue
        if kind == "build3n":
            gpu_memory.build_models({"e4b"}, t_start)
            continue
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
            if size == "4b" and not Path("/tmp/gemma3_4b").exists():
                print(f"[{time.time() - t_start:4.0f}s] 4b model: {build('4b', '/tmp/gemma3_4b')}", flush=True)
            keep(kind, label, run_job(label, size, over, backend, env, root, out, deadline, index=len(rows)))
        elif kind == "eval":
            r = run_eval(out, min(150, left - 5))
            keep(kind, label, {"batch": r.get("batch_size"), "error": r.get("error"), "extra": r})
    print_table(rows, out)
    if a.plan.startswith("seeds"):
        text = seeds.goals_table(rows)
        (out / "goals.md").write_text(text)
        print(text, flush=True)
    print(f"total {time.time() - t_start:.0f}s")


def fsync_ms(root: Path, n: int = 50) -> float:
    """Median ms of one fsynced append on this machine's disk (events.jsonl's old cost per step)."""
    import statistics

    from core.fsutil import append_jsonl

    f, times = root / "fsync_probe.jsonl", []
    for i in range(n):
        t = time.perf_counter()
        append_jsonl(f, {"type": "log", "step": i})
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1e3, 3)


def _earlier(path: str | None) -> list[dict]:
    """The rows of an earlier call's speed.json (--append), marked with where they came from."""
    if not path:
        return []
    data = json.loads(Path(path).read_text())
    return [{**r, "appended_from": path} for r in data.get("rows", [])]


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


if __name__ == "__main__" and sys.argv[1:2] == ["stack"]:
    from bench.gpu_layers import stack_bench
    print(stack_bench(), flush=True)
elif __name__ == "__main__" and sys.argv[1:2] == ["layer"]:
    from bench.gpu_layers import layer_bench
    print(layer_bench())
elif __name__ == "__main__" and sys.argv[1:2] == ["eval"]:
    print(json.dumps(run_eval(Path(sys.argv[2]), 200)))
elif __name__ == "__main__":
    main()
