"""Batched vs one-by-one generation on the same records: prints both times and the speed-up.

    python bench/eval_speed.py --run RUN [--split val] [--n 64] [--batch-size 16]
    python bench/eval_speed.py --model demo --task keys --n 32      # synthetic images, no run needed

Greedy decoding both ways, same images, same prompts, same max_new_tokens; the model is warmed up
first so CUDA kernel compilation is not timed. Also reports how many answers came out identical
(16-bit batched matmuls may flip a near-tie token, so this can be a little under 100% on a GPU).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.infer import Engine, read_run_config  # noqa: E402


def synthetic_images(n: int, seed: int = 0):
    """Random grey key-like pictures (content only has to differ per record)."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        shade = int(torch.randint(30, 220, (1,), generator=g))
        im = Image.new("RGB", (384, 192), (shade, shade, shade))
        for x in range(40, 340, 50):
            depth = int(torch.randint(20, 120, (1,), generator=g))
            im.paste((255 - shade, 60, 60), (x, 40, x + 14, 40 + depth))
        out.append(im)
    return out


def load_records(args):
    """(engine, adapter, images, prompts, task name)."""
    from core.tasks import get_task

    if args.run:
        from core.dataset import Dataset
        from core.evaluate import resolve_dataset_dir

        cfg = read_run_config(args.run)
        task = get_task(cfg["task"])
        ds = Dataset.open(resolve_dataset_dir(cfg["dataset"]))
        records = [r for r in ds.records(split=args.split) if task.is_labeled(r)][:args.n]
        if not records:
            sys.exit(f"no labeled records in split {args.split}")
        engine, adapter = Engine.for_run(args.run, device=args.device)
        return engine, adapter, [ds.load_image(r) for r in records], [task.prompt(r) for r in records], task.name
    task = get_task(args.task)
    engine = Engine(args.model, device=args.device)
    return engine, None, synthetic_images(args.n), [task.prompt({"fields": {}})] * args.n, task.name


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="run folder (uses its dataset split and adapter)")
    p.add_argument("--model", default="demo", help="base model when no run is given")
    p.add_argument("--task", default="keys", help="task when no run is given")
    p.add_argument("--split", default="val")
    p.add_argument("--n", type=int, default=32, help="records")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (CPU runs on a shared machine)")
    p.add_argument("--json", help="also write the result to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    engine, adapter, images, prompts, task = load_records(args)
    gen = {"max_new_tokens": args.max_new_tokens}
    engine.generate(images[:args.batch_size], prompts[:args.batch_size], adapter=adapter,
                    batch_size=args.batch_size, **gen)  # warm-up: kernels, caches, allocator
    single, t_single = timed(lambda: [engine.generate([im], [pr], adapter=adapter, **gen)[0]
                                      for im, pr in zip(images, prompts)])
    batched, t_batched = timed(lambda: engine.generate(images, prompts, adapter=adapter,
                                                       batch_size=args.batch_size, **gen))
    same = sum(a.token_ids == b.token_ids for a, b in zip(single, batched))
    tokens = sum(len(a.token_ids) for a in batched)
    result = {
        "device": torch.cuda.get_device_name(0) if engine.device == "cuda" else "cpu",
        "model": engine.base_model_id, "run": args.run, "task": task, "n": len(images),
        "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "one_by_one_s": round(t_single, 3), "batched_s": round(t_batched, 3),
        "speedup": round(t_single / t_batched, 2), "records_per_s_batched": round(len(images) / t_batched, 2),
        "generated_tokens": tokens, "identical_answers": f"{same}/{len(images)}",
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
