#!/usr/bin/env python3
"""A real CUDA out-of-memory in the studio's training job, and what the user is told (issue 9).

Builds a random-weight Gemma-3-4B-shaped model (bench/gpu_models.py), then runs the real job
(`python -m core train --run RUN`, as the studio starts it) with a config far too big for the card:
16-bit LoRA, batch 16 x 2048 tokens, no gradient checkpointing. Prints the end event and checks that
the run is `failed` with the memory planner's advice in its hint.

  PYTHONPATH=$PWD/.gpusite:$PWD/.gpusite_extra HF_HUB_OFFLINE=1 python3 bench/gpu_oom.py --out $OUT
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/gpu_oom")
    ap.add_argument("--work", default="/tmp/gpu_oom_work")
    a = ap.parse_args()
    out, work = Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    model = work / "gemma3-4b"
    t0 = time.time()
    if not (model / "config.json").is_file():
        subprocess.run([sys.executable, str(ROOT / "bench" / "gpu_models.py"), "--size", "4b", "--path", str(model)],
                       check=True)
    from gpu_memory import make_dataset, train_config

    from core.training.events import read_events
    from core.training.runs import create_run, run_status

    ds = make_dataset(work / "ds", n=16, words=1500)
    cfg = train_config(str(model), ds, {"load_in_4bit": False, "lora_r": 16, "batch_size": 16,
                                        "max_seq_length": 2048, "gradient_checkpointing": False}, max_steps=2)
    run = create_run(cfg, workspace_dir=work / "ws", run_id="oom")
    t1 = time.time()
    proc = subprocess.run([sys.executable, "-m", "core", "train", "--run", str(run)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    end = [e for e in read_events(run) if e.get("type") == "end"]
    status = run_status(run)
    result = {"exit_code": proc.returncode, "status": status.get("status"), "end": end[-1] if end else None,
              "seconds_build": round(t1 - t0, 1), "seconds_job": round(time.time() - t1, 1),
              "planner_advice_in_hint": bool(end and "Planner:" in (end[-1].get("hint") or ""))}
    (out / "gpu_oom.json").write_text(json.dumps(result, indent=2))
    (out / "job_log_tail.txt").write_text(proc.stderr[-6000:])
    print(json.dumps(result, indent=2))
    print("| exit | status | planner advice in hint |\n|---|---|---|\n"
          f"| {result['exit_code']} | {result['status']} | {result['planner_advice_in_hint']} |")
    return 0 if result["status"] == "failed" and result["exit_code"] == 3 else 1


if __name__ == "__main__":
    sys.exit(main())
