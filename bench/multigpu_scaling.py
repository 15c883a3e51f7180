"""Data-parallel scaling: the same LoRA run on 1 GPU and on N GPUs at the same global batch.

A Gemma-3-4B-shaped random-weight model (bench/gpu_models.py) trains on a synthetic ui2sql
dataset through the studio's own entry points: `python -m core train --run RUN` for 1 GPU and
`core.training.runs.job_command(RUN, False, N)` (accelerate launch) for N GPUs. 1 GPU runs
batch B x grad-accum N; N GPUs run batch B x grad-accum 1, so the global batch (B x N) and the
optimizer steps are the same. Reported: tokens/s and step time (median over the steps after the
first two), the scaling factor, each rank's peak memory, and whether the two adapters have the
same format (file names, tensor keys, shapes, dtypes, adapter_config.json).

On a machine with 2+ GPUs (repo root; the run needs no network):
  HF_HUB_OFFLINE=1 python3 bench/multigpu_scaling.py --size 4b --gpus 2 --out /tmp/mgpu
CPU smoke test of the script itself (2 gloo ranks, tiny model; numbers mean nothing):
  OMP_NUM_THREADS=1 python3 bench/multigpu_scaling.py --size tiny --gpus 2 --cpu --steps 4 --out /tmp/mgpu
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for p in (REPO, REPO / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def make_run(root: Path, name: str, model: str, dataset: Path, a, grad_accum: int, load_4bit: bool) -> Path:
    from gpu_memory import train_config

    from core.training.runs import create_run

    cfg = train_config(model, dataset, {"load_in_4bit": load_4bit, "lora_r": 16, "lora_alpha": 16,
                                        "max_seq_length": a.seq, "batch_size": a.batch,
                                        "gradient_accumulation_steps": grad_accum,
                                        "gradient_checkpointing": True, "max_steps": a.steps,
                                        "backend": "hf"})  # Unsloth is single-GPU: compare like with like
    if a.cpu:
        cfg.precision, cfg.optimizer, cfg.gradient_checkpointing = "fp32", "adamw_torch", False
    return create_run(cfg, run_dir=root / name, check=False)


def train(run: Path, gpus: int) -> float:
    from core.training.runs import job_command

    env = dict(os.environ, PYTHONPATH=str(REPO), TOKENIZERS_PARALLELISM="false")
    t0 = time.time()
    with open(run / "log.txt", "ab") as log:
        code = subprocess.call(job_command(run, False, gpus), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"{run.name} failed (exit {code}); see {run / 'log.txt'}")
    return time.time() - t0


def summarize(run: Path, wall: float) -> dict:
    from core.training.events import last_of, read_events

    events = read_events(run)
    logs = [e for e in events if e["type"] == "log"][2:] or [e for e in events if e["type"] == "log"]
    start, end = last_of(events, "start"), last_of(events, "end")
    med = lambda k: statistics.median(e[k] for e in logs if e.get(k) is not None)  # noqa: E731
    return {"world_size": start["world_size"], "global_batch": start["global_batch"],
            "accelerate": start.get("accelerate"), "steps": end["step"], "wall_s": round(wall, 1),
            "tokens_per_s": round(med("tokens_per_s"), 1), "step_time_s": round(med("step_time_s"), 3),
            "final_loss": logs[-1]["loss"],
            "vram_peak_gb_per_rank": end.get("vram_peak_gb_per_rank") or [logs[-1].get("vram_peak_gb")],
            "rss_gb_per_rank": end.get("rss_gb_per_rank")}


def adapter_format(run: Path) -> dict:
    from safetensors import safe_open

    folder = run / "adapter"
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
        tensors = {k: [list(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()] for k in f.keys()}
    config = json.loads((folder / "adapter_config.json").read_text())
    return {"files": sorted(p.name for p in folder.iterdir()), "tensors": tensors, "config": config}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="4b", choices=["tiny", "4b", "12b"])
    ap.add_argument("--gpus", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2, help="per-device batch")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--seq", type=int, default=1024, help="max_seq_length (every example is cut to it)")
    ap.add_argument("--qlora", action="store_true", help="4-bit base (each rank holds its own 4-bit copy)")
    ap.add_argument("--cpu", action="store_true", help="smoke-test on CPU (gloo ranks)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    from gpu_memory import make_dataset
    from gpu_models import build

    root = Path(a.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    model = root / f"gemma3-{a.size}"
    build(a.size, str(model), device="cpu" if a.cpu else None)
    dataset = make_dataset(root / "dataset", n=max(32, a.batch * a.gpus * a.steps), words=a.seq + 200)
    stamp = time.strftime("%H%M%S")
    one = make_run(root, f"gpus1-{stamp}", str(model), dataset, a, grad_accum=a.gpus, load_4bit=a.qlora)
    many = make_run(root, f"gpus{a.gpus}-{stamp}", str(model), dataset, a, grad_accum=1, load_4bit=a.qlora)
    r1 = summarize(one, train(one, 1))
    rn = summarize(many, train(many, a.gpus))
    f1, fn = adapter_format(one), adapter_format(many)
    same = {k: f1[k] == fn[k] for k in ("files", "tensors", "config")}
    result = {"size": a.size, "gpus": a.gpus, "per_device_batch": a.batch, "seq": a.seq, "qlora": a.qlora,
              "one_gpu": r1, f"{a.gpus}_gpus": rn,
              "tokens_per_s_scaling": round(rn["tokens_per_s"] / r1["tokens_per_s"], 3),
              "step_time_speedup": round(r1["step_time_s"] / rn["step_time_s"], 3),
              "adapter_format_equal": same, "adapter_tensors": len(f1["tensors"])}
    (root / "multigpu.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
