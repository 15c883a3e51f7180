"""Learning proof (issue 3): the studio's own training path teaches the offline demo model to read
key bitting from synthetic photos it has never seen.

Everything goes through what the studio uses: the key renderer (core/tasks/keys/render.py) draws the
images, core/dataset.py stores them (train seeds and held-out seeds are disjoint ranges), a run is
made with TrainConfig + create_run and trained by core.training.job.run_job, and
core/evaluate.py scores the held-out split. The clock starts before the demo base is loaded and
stops after the evaluation; the machine is measured as loaded as it is.

    python3 bench/learn_keys.py                 # the benchmark (defaults below)
    python3 bench/learn_keys.py --steps 100 ... # any knob; see --help

The last printed line is `exact_match=<float> position_accuracy=<float> seconds=<float>`.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Training seeds count up from TRAIN_SEED0, held-out seeds from TEST_SEED0. At variation 0 two seeds
# with the same bitting draw the same picture: such held-out images are dropped (content-addressed
# storage finds them), so no evaluated image was trained on.
TRAIN_SEED0, TEST_SEED0 = 0, 10_000_000

# The recipe that reached the bound (bench/RESULTS.md): clean renders of Schlage SC1 (5 cuts).
DEFAULTS = dict(n_train=3000, n_test=256, steps=850, batch_size=16, lr=1e-3, variation=0.0,
                keyways="SC1", render_size=(128, 64), seed=3407, warmup=0.05, scheduler="cosine",
                eval_batch=64, threads=2, method="full")


def build_dataset(path: Path, keyways: list[str], n_train: int, n_test: int, variation: float,
                  size: tuple[int, int]) -> dict:
    """A keys dataset: n_train rendered keys in split "train", n_test in split "test"."""
    from core.dataset import Dataset
    from core.tasks.keys.render import sample

    ds = Dataset.create(path, task="keys", name="learn-keys")

    def render(seed0: int, n: int) -> list[tuple]:
        items = []
        for i in range(n):
            seed = seed0 + i
            keyway = keyways[random.Random(seed).randrange(len(keyways))]
            img, fields = sample(seed, size=size, variation=variation, keyway=keyway)
            rel, _ = ds.store_image(img_bytes(img))
            items.append((rel, fields, "labeled", {"synth_seed": seed}))
        return items

    added = ds.add_stored(render(TRAIN_SEED0, n_train))
    ds.split(seed=0, val_fraction=0.0)            # every labeled record so far trains
    held = ds.add_stored(render(TEST_SEED0, n_test))
    for record, outcome in held:
        if outcome == "added":                   # a duplicate image would already be in train
            ds.save_record({**record, "split": "test"})
    counts = ds.counts()["split"]
    return {"train": counts.get("train", 0), "test": counts.get("test", 0),
            "train_duplicates": sum(1 for _, o in added if o != "added"),
            "test_dropped_as_duplicates": sum(1 for _, o in held if o != "added")}


def img_bytes(img) -> bytes:
    import io
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def run(workdir: Path, *, n_train: int, n_test: int, steps: int, batch_size: int, lr: float,
        variation: float, keyways: str, render_size=(128, 64), seed: int = 3407, warmup: float = 0.05,
        scheduler: str = "cosine", eval_batch: int = 64, threads: int = 2, method: str = "full",
        log=print) -> dict:
    """Renders, trains and evaluates once in workdir (must be empty or absent). Returns the result.
    Runs are made in workdir's own workspace (TRINITY_WORKSPACE, restored after)."""
    before = os.environ.get("TRINITY_WORKSPACE")
    os.environ["TRINITY_WORKSPACE"] = str(workdir / "workspace")
    try:
        return _run(workdir, n_train=n_train, n_test=n_test, steps=steps, batch_size=batch_size, lr=lr,
                    variation=variation, keyways=keyways, render_size=render_size, seed=seed, warmup=warmup,
                    scheduler=scheduler, eval_batch=eval_batch, threads=threads, method=method, log=log)
    finally:
        if before is None:
            os.environ.pop("TRINITY_WORKSPACE", None)
        else:
            os.environ["TRINITY_WORKSPACE"] = before


def _run(workdir: Path, *, n_train, n_test, steps, batch_size, lr, variation, keyways, render_size, seed,
         warmup, scheduler, eval_batch, threads, method, log) -> dict:
    t0, cpu0 = time.perf_counter(), time.process_time()
    import torch
    torch.set_num_threads(threads)
    from core.evaluate import evaluate_run
    from core.models import resolve
    from core.training.config import default_config
    from core.training.job import run_job
    from core.training.runs import create_run

    resolve("demo")  # the shipped demo base (assets/demo/base; checked inside the clock)
    t_model = time.perf_counter() - t0
    kws = [k.strip() for k in keyways.split(",") if k.strip()]
    counts = build_dataset(workdir / "dataset", kws, n_train, n_test, variation, tuple(render_size))
    t_data = time.perf_counter() - t0 - t_model
    log(f"demo model {t_model:.1f}s, dataset {t_data:.1f}s: {counts}")

    cfg = default_config(
        "demo", dataset=str(workdir / "dataset"), method=method, max_steps=steps, batch_size=batch_size,
        gradient_accumulation_steps=1, learning_rate=lr, lr_scheduler=scheduler, warmup_ratio=warmup,
        eval_split="", save_steps=max(steps, 1), logging_steps=max(1, steps // 10), seed=seed,
        gradient_checkpointing=False)
    run_dir = create_run(cfg, run_dir=workdir / "run")
    t1 = time.perf_counter()
    code = run_job(run_dir, progress=False)
    t_train = time.perf_counter() - t1
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    end = events[-1]
    if code != 0 or end.get("status") != "completed":
        raise SystemExit(f"training failed ({code}): {end.get('error')} / {end.get('hint')}")
    losses = [e["loss"] for e in events if e.get("type") == "log" and e.get("loss") is not None]
    log(f"trained {end.get('step')} steps in {t_train:.1f}s; loss {losses[0]:.3f} -> {losses[-1]:.3f}")

    t2 = time.perf_counter()
    summary = evaluate_run(run_dir, split="test", batch_size=eval_batch)
    t_eval = time.perf_counter() - t2
    m = summary["metrics"]
    total = time.perf_counter() - t0
    result = {
        "exact_match": m["bitting_exact"], "position_accuracy": m["bitting_position_acc"],
        "keyway_acc": m.get("keyway_acc"), "format_compliance": m.get("format_compliance"),
        "n_test": summary["n"], "seconds": round(total, 1),
        # CPU seconds of this process (all its threads): what the work costs, whatever the load
        "cpu_seconds": round(time.process_time() - cpu0, 1),
        "seconds_parts": {"model": round(t_model, 1), "data": round(t_data, 1), "train": round(t_train, 1),
                          "eval": round(t_eval, 1)},
        "steps": end.get("step"), "first_loss": losses[0], "last_loss": losses[-1],
        "config": {"n_train": n_train, "n_test": n_test, "steps": steps, "batch_size": batch_size, "lr": lr,
                   "variation": variation, "keyways": kws, "render_size": list(render_size), "seed": seed,
                   "warmup": warmup, "scheduler": scheduler, "threads": threads, "method": method,
                   "train_seeds": [TRAIN_SEED0, TRAIN_SEED0 + n_train - 1],
                   "test_seeds": [TEST_SEED0, TEST_SEED0 + n_test - 1]},
        "dataset": counts, "run_dir": str(run_dir),
    }
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", type=int, default=DEFAULTS["n_train"], help="training images")
    p.add_argument("--test", type=int, default=DEFAULTS["n_test"], help="held-out images")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"])
    p.add_argument("--batch", type=int, default=DEFAULTS["batch_size"])
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    p.add_argument("--variation", type=float, default=DEFAULTS["variation"], help="renderer nuisance level 0-1")
    p.add_argument("--keyways", default=DEFAULTS["keyways"], help="comma-separated keyway codes")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="TrainConfig.seed (data order and dropout; the demo model itself is built from seed 0)")
    p.add_argument("--warmup", type=float, default=DEFAULTS["warmup"])
    p.add_argument("--scheduler", default=DEFAULTS["scheduler"])
    p.add_argument("--threads", type=int, default=DEFAULTS["threads"])
    p.add_argument("--method", choices=["full", "lora"], default=DEFAULTS["method"],
                   help="full fine-tune (the original proof) or the demo recipe's LoRA")
    p.add_argument("--workdir", help="empty folder to work in (default: a temporary one, deleted after)")
    p.add_argument("--json", help="also write the result here")
    a = p.parse_args(argv)
    kwargs = dict(n_train=a.train, n_test=a.test, steps=a.steps, batch_size=a.batch, lr=a.lr,
                  variation=a.variation, keyways=a.keyways, seed=a.seed, warmup=a.warmup,
                  scheduler=a.scheduler, threads=a.threads, method=a.method)
    if a.workdir:
        result = run(Path(a.workdir), **kwargs)
    else:
        with tempfile.TemporaryDirectory(prefix="learn-keys-") as tmp:
            result = run(Path(tmp), **kwargs)
    print(json.dumps({k: v for k, v in result.items() if k != "run_dir"}))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"exact_match={result['exact_match']:.4f} position_accuracy={result['position_accuracy']:.4f} "
          f"seconds={result['seconds']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
