"""Peak GPU memory (and step time) of real training runs, through the studio's own job.

For each config of the grid this builds the run folder with `create_run`, trains it for a few steps
with `core.training.job.run_job` (what `python -m core train --run RUN` runs) in a fresh process,
and reads `torch.cuda.max_memory_allocated / max_memory_reserved` of that process plus the job's
own events.jsonl. Models are random-weight Gemma 3 / 3n folders with the published shapes
(bench/gpu_models.py, bench/gpu_models_extra.py); the dataset is a ui2sql dataset whose answers are long enough that every
example is cut to exactly max_seq_length (the worst case a user's config allows).

On the lent GPU (repo root):
  export PYTHONPATH=$PWD/.gpusite HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 UNSLOTH_OFFLINE=1
  python3 bench/gpu_memory.py drive --plan timing4b,grid4b,unsloth4b --out $OUT --deadline 540
  python3 bench/gpu_memory.py drive --plan grid12b --out $OUT --deadline 540
  # issue 19 (H200): Gemma 3n E4B/E2B + 4-bit 4B + full fine-tune + adamw_torch; then 12B and 27B
  python3 bench/gpu_memory.py drive --plan n3 --commit $COMMIT --out $OUT --deadline 540
  python3 bench/gpu_memory.py drive --plan n3big12,n3big27 --commit $COMMIT --out $OUT --deadline 540
Rows land in $OUT/rows.json (copied into assets/memory_measurements.json); a table is printed last.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import io
import json
import os
import random
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

GiB = 2**30
Q4 = {"load_in_4bit": True}
BF16 = {"load_in_4bit": False}
R16 = {"lora_r": 16, "lora_alpha": 16}
# name -> (model size, TrainConfig overrides). Every row is 3 optimizer steps unless it says otherwise.
# Sizes: 4b, 12b, 27b (Gemma 3, bench/gpu_models.py), e4b, e2b (Gemma 3n, bench/gpu_models_extra.py).
GRID: dict[str, tuple[str, dict]] = {
    "4b-q4-r16-b1-s1024": ("4b", {**Q4, **R16}),
    "4b-q4-r64-dora-rs-b1-s1024": ("4b", {**Q4, "lora_r": 64, "lora_alpha": 64, "use_dora": True, "use_rslora": True}),
    "4b-q4-r64-b1-s2048": ("4b", {**Q4, "lora_r": 64, "lora_alpha": 64, "max_seq_length": 2048}),
    "4b-q4-r16-b4-s1024": ("4b", {**Q4, **R16, "batch_size": 4}),
    "4b-q4-r16-b1-s1024-vision": ("4b", {**Q4, **R16, "finetune_vision_layers": True}),
    "4b-q4-r16-b1-s1024-nogc": ("4b", {**Q4, **R16, "gradient_checkpointing": False}),
    "4b-bf16-r16-b1-s1024": ("4b", {**BF16, **R16}),
    "4b-bf16-r64-dora-b4-s2048": ("4b", {**BF16, "lora_r": 64, "lora_alpha": 64, "use_dora": True,
                                         "batch_size": 4, "max_seq_length": 2048}),
    "4b-q4-r64-dora-b4-s2048-vision": ("4b", {**Q4, "lora_r": 64, "lora_alpha": 64, "use_dora": True, "batch_size": 4,
                                              "max_seq_length": 2048, "finetune_vision_layers": True}),
    # the seed document's T4 config, exactly the "Ghost Architect (T4)" preset
    "12b-seed-t4-preset": ("12b", {"preset": "Ghost Architect (T4)"}),
    "12b-q4-r16-b1-s2048": ("12b", {**Q4, **R16, "max_seq_length": 2048}),
    "12b-bf16-r16-b1-s1024": ("12b", {**BF16, **R16}),
    "12b-q4-r16-b4-s1024-vision": ("12b", {**Q4, **R16, "batch_size": 4, "finetune_vision_layers": True}),
    # second call: separate the per-image (vision forward) and per-token (text) terms
    "4b-q4-r16-b1-s4096": ("4b", {**Q4, **R16, "max_seq_length": 4096}),
    "4b-q4-r16-b4-s2048": ("4b", {**Q4, **R16, "batch_size": 4, "max_seq_length": 2048}),
    "4b-bf16-r16-b4-s1024": ("4b", {**BF16, **R16, "batch_size": 4}),
    "4b-bf16-r16-b1-s2048-nogc": ("4b", {**BF16, **R16, "max_seq_length": 2048, "gradient_checkpointing": False}),
    "12b-q4-r64-dora-rs-b1-s2048": ("12b", {**Q4, "lora_r": 64, "lora_alpha": 64, "use_dora": True, "use_rslora": True,
                                            "max_seq_length": 2048}),
    # issue 19: Gemma 3n, the 27B, a full fine-tune, a 32-bit optimizer
    "e4b-q4-r16-b1-s512": ("e4b", {**Q4, **R16, "max_seq_length": 512}),
    "e4b-q4-r16-b4-s512": ("e4b", {**Q4, **R16, "batch_size": 4, "max_seq_length": 512}),
    "e4b-q4-r16-b8-s512": ("e4b", {**Q4, **R16, "batch_size": 8, "max_seq_length": 512}),
    "e4b-q4-r16-b1-s2048": ("e4b", {**Q4, **R16, "max_seq_length": 2048}),
    "e4b-q4-r16-b1-s512-vision": ("e4b", {**Q4, **R16, "max_seq_length": 512, "finetune_vision_layers": True}),
    "e4b-bf16-r16-b1-s512": ("e4b", {**BF16, **R16, "max_seq_length": 512}),
    "e4b-bf16-r16-b4-s2048-vision": ("e4b", {**BF16, **R16, "batch_size": 4, "max_seq_length": 2048,
                                             "finetune_vision_layers": True}),
    # the Keylike seed's preset (r32, vision on) at the issue's 306-token samples: b1 x accum 8 and b8 x accum 1
    "e4b-keylike-b1-acc8-s306": ("e4b", {"preset": "Keylike", "max_seq_length": 306}),
    "e4b-keylike-b8-acc1-s306": ("e4b", {"preset": "Keylike", "max_seq_length": 306, "batch_size": 8,
                                         "gradient_accumulation_steps": 1}),
    "e2b-q4-r16-b1-s1024": ("e2b", {**Q4, **R16}),
    "e2b-bf16-r16-b4-s1024": ("e2b", {**BF16, **R16, "batch_size": 4}),
    "27b-q4-r16-b1-s1024": ("27b", {**Q4, **R16}),
    "4b-full-bf16-b1-s1024": ("4b", {**BF16, "method": "full"}),
    "4b-q4-r64-b1-s1024-adamw_torch": ("4b", {**Q4, "lora_r": 64, "lora_alpha": 64, "optimizer": "adamw_torch"}),
}
# Lanes run side by side (each process measures only its own allocator); the heavy rows share a
# lane so that their sum stays under the card's memory. Plans run one after the other; a model
# folder no later plan needs is deleted first (the 27B alone takes 51 GiB of the box's 64 GiB disk).
PLANS = {
    "grid4b": [["4b-bf16-r64-dora-b4-s2048", "4b-q4-r64-dora-b4-s2048-vision", "4b-q4-r16-b1-s1024"],
               ["4b-q4-r64-b1-s2048", "4b-q4-r16-b4-s1024", "4b-bf16-r16-b1-s1024"],
               ["4b-q4-r16-b1-s1024-vision", "4b-q4-r16-b1-s1024-nogc"]],
    "grid12b": [["12b-bf16-r16-b1-s1024", "12b-seed-t4-preset"],
                ["12b-q4-r16-b4-s1024-vision", "12b-q4-r16-b1-s2048"],
                ["12b-q4-r64-dora-rs-b1-s2048"],
                ["4b-q4-r16-b1-s4096", "4b-q4-r16-b4-s2048", "4b-bf16-r16-b4-s1024", "4b-bf16-r16-b1-s2048-nogc"]],
    # issue 19, first call (H200, 139 GiB): Gemma 3n, the 4-bit Gemma 3 4B rows whose path changed,
    # a full fine-tune, adamw_torch
    "n3": [["e4b-bf16-r16-b4-s2048-vision", "4b-full-bf16-b1-s1024", "4b-q4-r16-b1-s1024-nogc"],
           ["e4b-bf16-r16-b1-s512", "e4b-q4-r16-b1-s2048", "4b-q4-r16-b4-s2048", "4b-q4-r16-b1-s4096"],
           ["e4b-keylike-b8-acc1-s306", "e4b-keylike-b1-acc8-s306", "e4b-q4-r16-b8-s512"],
           ["e4b-q4-r16-b1-s512", "e4b-q4-r16-b4-s512", "e4b-q4-r16-b1-s512-vision", "e2b-q4-r16-b1-s1024"],
           ["4b-q4-r64-dora-b4-s2048-vision", "4b-q4-r16-b1-s1024", "4b-q4-r16-b1-s1024-vision", "4b-q4-r64-b1-s2048"],
           ["4b-q4-r64-dora-rs-b1-s1024", "4b-q4-r16-b4-s1024", "4b-q4-r64-b1-s1024-adamw_torch",
            "e2b-bf16-r16-b4-s1024"]],
    # issue 19, second call: the 4-bit 12B rows whose path changed, then the 27B alone
    "n3big12": [["12b-seed-t4-preset"], ["12b-q4-r16-b1-s2048"], ["12b-q4-r16-b4-s1024-vision"],
                ["12b-q4-r64-dora-rs-b1-s2048"]],
    "n3big27": [["27b-q4-r16-b1-s1024"]],
}
# issue 3's GPU run: Gemma-3-4B shapes, 4-bit, DoRA + rsLoRA r=64, timed alone on the card
TIMING = {**Q4, "lora_r": 64, "lora_alpha": 64, "use_dora": True, "use_rslora": True, "max_steps": 12}
# a short instruction, so that an image (256 tokens) + prompt fits the Keylike rows' 306 tokens
INSTRUCTION = "Write the SQL schema."


# ------------------------------------------------------------------ dataset
def long_sql(rng: random.Random, words: int) -> str:
    """CREATE TABLE statements with about `words` whitespace-separated words (= tokens here).
    Column names are words of the test tokenizer's vocabulary (w1000 ... w249999), so the
    answers are real, random token ids (not <unk>): loss curves then mean something."""
    tables, n = [], 0
    while n < words:
        cols = [f"w{rng.randrange(1000, 250000)} INT" for _ in range(60)]
        tables.append(f"CREATE TABLE t{len(tables)} ({', '.join(cols)});")
        n += 2 * len(cols) + 3
    return "\n".join(tables)


def make_dataset(path: Path, n: int = 8, words: int = 4400) -> Path:
    from PIL import Image

    from core.dataset import Dataset

    if (path / "records.jsonl").exists():
        return path
    ds = Dataset.create(path, task="ui2sql")
    rng = random.Random(0)
    for i in range(n):
        img = Image.frombytes("RGB", (256, 256), rng.randbytes(256 * 256 * 3))  # unique: no dedup
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        ds.add_image(buf.getvalue(), fields={"sql": long_sql(rng, words), "instruction": INSTRUCTION})
    ds.split(seed=0, min_records=10**6)  # everything trains
    return path


def train_config(model_path: str, dataset: Path, overrides: dict, max_steps: int = 3):
    from core.training.config import TrainConfig, preset

    o = dict(overrides)
    name = o.pop("preset", None)
    cfg = preset(name) if name else TrainConfig()
    cfg.model_id, cfg.dataset, cfg.task = model_path, str(dataset), "ui2sql"
    if not name:
        cfg.gradient_accumulation_steps = 1
    cfg.max_steps = o.pop("max_steps", max_steps)
    cfg.save_steps, cfg.logging_steps, cfg.eval_steps = 100000, 1, 0
    for k, v in o.items():
        setattr(cfg, k, v)
    return cfg


# ------------------------------------------------------------------ one job, in its own process
def _probe_phases(probe: dict) -> None:
    """Records CUDA memory when the model is loaded and when the text decoder first runs (after
    the vision tower): the planner's phases, measured without touching the job's code."""
    import core.training.backend_hf as bhf

    orig = bhf.prepare

    def prepare(cfg, hw, precision):
        import torch

        p = orig(cfg, hw, precision)
        if not torch.cuda.is_available():
            return p
        probe.update(load_alloc_gb=torch.cuda.memory_allocated() / GiB,
                     load_max_alloc_gb=torch.cuda.max_memory_allocated() / GiB)
        lm = getattr(getattr(p.model, "model", None), "language_model", None)

        def hook(module, args, kwargs):
            if "pre_text_alloc_gb" not in probe:
                probe.update(pre_text_alloc_gb=torch.cuda.memory_allocated() / GiB,
                             pre_text_max_alloc_gb=torch.cuda.max_memory_allocated() / GiB)

        if lm is not None:
            lm.register_forward_pre_hook(hook, with_kwargs=True)
        return p

    bhf.prepare = prepare


def cmd_job(a) -> None:
    from core.training.config import TrainConfig
    from core.training.job import _import_unsloth_first, run_job

    # Unsloth first, as `python -m core train` has it: the probe below imports transformers, TRL and
    # PEFT, and an Unsloth imported after them patches less (its warning was in every Unsloth job log
    # of the 2026-12-08 call, not in the product's own path)
    _import_unsloth_first(TrainConfig.load(Path(a.run) / "config.json"))
    probe: dict = {}
    _probe_phases(probe)

    t0 = time.time()
    rc = run_job(a.run, progress=False)
    import torch

    out = {"rc": rc, "seconds": round(time.time() - t0, 1), **probe}
    if torch.cuda.is_available():
        out.update(max_allocated_gb=torch.cuda.max_memory_allocated() / GiB,
                   max_reserved_gb=torch.cuda.max_memory_reserved() / GiB,
                   device=torch.cuda.get_device_name(0))
    Path(a.json).write_text(json.dumps(out))


def summarize(run_dir: Path, res: dict) -> dict:
    from core.training.events import read_events

    ev = read_events(run_dir)
    logs = [e for e in ev if e["type"] == "log"]
    start = next((e for e in ev if e["type"] == "start"), {})
    end = next((e for e in ev if e["type"] == "end"), {})
    steady = [e for e in logs if e.get("step", 0) >= 3 and e.get("step_time_s")]
    out = {"status": end.get("status", "no end event"), "error": end.get("error"), "backend": start.get("backend"),
           "trainable_params": start.get("trainable_params"), "steps": end.get("step"),
           "truncated": (end.get("truncation") or {}).get("truncated"),
           "longest_tokens": (end.get("truncation") or {}).get("longest_tokens"),
           "events_peak_alloc_gb": max((e.get("vram_peak_gb", 0) for e in logs), default=None),
           "events_reserved_gb": max((e.get("vram_reserved_gb", 0) for e in logs), default=None)}
    if steady:
        out["step_time_s"] = statistics.median(e["step_time_s"] for e in steady)
        toks = [e["tokens_per_s"] for e in steady if e.get("tokens_per_s")]
        out["tokens_per_s"] = statistics.median(toks) if toks else None
        out["first_step_s"] = logs[0].get("step_time_s") if logs else None
    return {**res, **out}


def model_path(size: str) -> str:
    return f"/tmp/gemma3_{size}"


def run_one(name: str, size: str, overrides: dict, root: Path, out: Path, deadline: float,
            backend: str = "hf", limit: float = 400, env_extra: dict | None = None) -> dict:
    from core.training.runs import create_run

    model = model_path(size)
    run_dir = root / "runs" / f"{name}-{backend}"
    cfg = train_config(model, root / "dataset", overrides)
    cfg.backend = backend
    if not (run_dir / "config.json").exists():
        create_run(cfg, run_dir=run_dir)
    res_file = run_dir / "bench_result.json"
    timeout = min(limit, deadline - time.time())
    row = {"name": name, "backend_requested": backend,
           "model_config": json.loads((Path(model) / "config.json").read_text()),
           "train_config": {k: v for k, v in cfg.to_dict().items() if k != "dataset"}}
    if timeout < 40:
        return {**row, "status": "skipped (deadline)"}
    env = dict(os.environ, **(env_extra or {}), PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    log = run_dir / "job.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "job", "--run", str(run_dir), "--json", str(res_file)]
    t0 = time.time()
    with open(log, "wb") as fh:
        try:
            subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=REPO, env=env)
        except subprocess.TimeoutExpired:
            pass
    row["wall_s"] = round(time.time() - t0, 1)
    res = json.loads(res_file.read_text()) if res_file.exists() else {"rc": "timeout or crash"}
    row = summarize(run_dir, {**row, **res})
    row["measured_peak_allocated_gb"] = round(res["max_allocated_gb"], 3) if "max_allocated_gb" in res else None
    row["measured_peak_reserved_gb"] = round(res["max_reserved_gb"], 3) if "max_reserved_gb" in res else None
    if row["status"] != "completed":
        row["log_tail"] = log.read_text(errors="replace")[-3000:]
    with open(out / "jobs.log", "a") as fh:
        fh.write(f"\n===== {name} ({backend}) =====\n{log.read_text(errors='replace')[-6000:]}\n")
    return row


def build_models(sizes: set[str], t_start: float) -> None:
    """Builds the model folders side by side, one process each (the GPU initialises, the disk saves)."""
    procs = {}
    for sz in sorted(sizes):
        if not os.path.exists(os.path.join(model_path(sz), "BUILD_OK")):
            procs[sz] = subprocess.Popen([sys.executable, str(REPO / "bench" / "gpu_models_extra.py"), "--size", sz,
                                          "--path", model_path(sz)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         cwd=REPO)
    for sz, p in procs.items():
        text = p.communicate()[0].decode(errors="replace")
        print(f"[{time.time() - t_start:5.0f}s] model {sz}: rc {p.returncode} {text.strip().splitlines()[-1:]}",
              flush=True)
        if p.returncode:
            print(text[-3000:], flush=True)


# ------------------------------------------------------------------ driver
def cmd_drive(a) -> None:
    t_start = time.time()
    deadline = t_start + a.deadline
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(a.root)
    root.mkdir(parents=True, exist_ok=True)
    make_dataset(root / "dataset")
    rows_file = out / "rows.json"
    rows: list[dict] = []
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    driver_cmd = "python3 bench/gpu_memory.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    day = time.strftime("%Y-%m-%d", time.gmtime())

    def keep(row: dict) -> None:
        row.setdefault("device", device)
        row["code_commit"], row["date"] = a.commit or None, day
        row["command"] = f"{driver_cmd}  (row {row['name']}, backend {row.get('backend_requested')})"
        rows.append(row)
        rows_file.write_text(json.dumps(rows, indent=1, default=str))
        print(f"[{time.time() - t_start:5.0f}s] {row['name']} {row.get('backend')}: {row.get('status')} "
              f"alloc={row.get('measured_peak_allocated_gb')} reserved={row.get('measured_peak_reserved_gb')} "
              f"step={row.get('step_time_s')} tok/s={row.get('tokens_per_s')} {row.get('error') or ''}", flush=True)

    only = set(a.only.split(",")) if a.only else None
    phases = a.plan.split(",")

    def sizes_of(phase: str) -> set[str]:
        if phase.startswith("timing") or phase.startswith("unsloth"):
            return {"12b" if "12b" in phase else "4b"}
        return {GRID[n][0] for lane in PLANS[phase] for n in lane if only is None or n in only}

    for i, phase in enumerate(phases):
        later = set().union(*[sizes_of(p) for p in phases[i + 1:]], sizes_of(phase))
        for sz in ("4b", "12b", "27b", "e4b", "e2b"):  # free the disk for what comes next
            if sz not in later and os.path.isdir(model_path(sz)):
                subprocess.run(["rm", "-rf", model_path(sz)], check=False)
        build_models(sizes_of(phase), t_start)
        if torch.cuda.is_available():  # what CUDA itself holds outside the allocator (context, cuBLAS)
            free, total = torch.cuda.mem_get_info()
            env = {"device": device, "total_gib": total / GiB,
                   "outside_allocator_gib": (total - free - torch.cuda.memory_reserved()) / GiB}
            (out / "env.json").write_text(json.dumps(env))
            print("env", env, flush=True)
        if phase.startswith("timing") or phase.startswith("unsloth"):
            size = "12b" if "12b" in phase else "4b"
            backend = "unsloth" if phase.startswith("unsloth") else "hf"
            keep(run_one(f"{size}-issue3-timing", size, TIMING, root, out, deadline, backend=backend, limit=a.limit))
            continue
        lanes = [[n for n in lane if only is None or n in only] for lane in PLANS[phase]]

        def lane_run(names):
            for n in names:
                sz, over = GRID[n]
                try:
                    keep(run_one(n, sz, over, root, out, deadline, limit=a.limit))
                except Exception as e:  # noqa: BLE001 - a broken row (e.g. its model failed to build) ends only itself
                    print(f"[{time.time() - t_start:5.0f}s] {n}: {type(e).__name__}: {e}", flush=True)

        with cf.ThreadPoolExecutor(max_workers=max(1, len(lanes))) as ex:
            list(ex.map(lane_run, [lane for lane in lanes if lane]))
    print_table(rows, out)
    print(f"total {time.time() - t_start:.0f}s")


def print_table(rows: list[dict], out: Path) -> None:
    head = "| row | backend | status | peak alloc GiB | peak reserved GiB | step s | tokens/s | trainable | wall s |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        tp = r.get("trainable_params")
        tps = f"{tp / 1e6:.1f}M" if tp else "-"
        lines.append(f"| {r['name']} | {r.get('backend')} | {r.get('status')} | {r.get('measured_peak_allocated_gb')} | "
                     f"{r.get('measured_peak_reserved_gb')} | {_f(r.get('step_time_s'))} | {_f(r.get('tokens_per_s'), 0)} | "
                     f"{tps} | {r.get('wall_s')} |")
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    print(text)


def _f(x, nd=3):
    return "-" if x is None else f"{x:.{nd}f}"


def cmd_fit(a) -> None:
    """Fits core.memory.K to the in-sample rows only (assets/memory_measurements.json, holdout
    false), biased to be safe: it minimises the largest distance of a row's error from +TARGET
    (so the errors straddle a few percent over, not zero). Prints the constants, then every row's
    error, in-sample and held-out apart. The constants are then written into core/memory.py by hand."""
    from scipy.optimize import minimize

    from core import memory
    from core.memory_fit import error, split

    rows = [r for r in json.loads(Path(a.rows).read_text()) if r.get("measured_peak_reserved_gb")]
    fit_rows, held = split(rows)
    keys = [k for k in a.keys.split(",") if k]

    def objective(x):
        memory.K.update(zip(keys, [max(0.0, v) for v in x]))
        return max(abs(error(r) - a.target) for r in fit_rows)

    x0 = [memory.K[k] for k in keys]
    for _ in range(3):  # Nelder-Mead restarts: the minimax surface has kinks
        mm = minimize(objective, x0, method="Nelder-Mead", options={"maxiter": 6000, "xatol": 1e-4, "fatol": 1e-6})
        x0 = mm.x
    objective(x0)
    print(json.dumps({k: round(v, 4) for k, v in memory.K.items()}, indent=1))
    for label, group in (("in-sample", fit_rows), ("held-out", held)):
        errs = []
        for r in group:
            e = error(r)
            errs.append(e)
            print(f"{label:9s} {r['name']:34s} {r.get('backend', 'hf'):8s} measured {r['measured_peak_reserved_gb']:6.2f} "
                  f"error {100 * e:+5.1f}%")
        print(f"{label}: {len(group)} rows, worst under {100 * min(errs):+.1f}%, worst over {100 * max(errs):+.1f}%")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest="cmd", required=True)
    d = sp.add_parser("drive", help="build models, run the plan, write rows.json and table.md")
    d.add_argument("--plan", default="timing4b,grid4b", help=f"comma list: timing4b, unsloth4b, {', '.join(PLANS)}")
    d.add_argument("--only", default="", help="comma list of grid rows to run (default: all of the plan)")
    d.add_argument("--out", default="/tmp/gpu_memory_out")
    d.add_argument("--root", default="/tmp/gpu_memory_work", help="datasets and run folders")
    d.add_argument("--deadline", type=float, default=540, help="seconds for the whole drive")
    d.add_argument("--limit", type=float, default=300, help="seconds for one job")
    d.add_argument("--commit", default="", help="the code commit the rows measure (recorded on each row)")
    j = sp.add_parser("job", help="(internal) run one run folder's job and record its CUDA peaks")
    j.add_argument("--run", required=True)
    j.add_argument("--json", required=True)
    f = sp.add_parser("fit", help="fit core.memory.K to measured rows")
    f.add_argument("--rows", default=str(REPO / "assets" / "memory_measurements.json"))
    f.add_argument("--keys", default="ckpt_q4,ckpt_16,img_q4,img_16,vision_keep,"
                                     "unsloth_logits,ckpt_n3,alloc_const_gb,alloc_per_example_gb,alloc_frac,grads_live")
    f.add_argument("--target", type=float, default=0.03, help="the error the fit centres on (safe side: over)")
    a = ap.parse_args()
    {"drive": cmd_drive, "job": cmd_job, "fit": cmd_fit}[a.cmd](a)


if __name__ == "__main__":
    main()
