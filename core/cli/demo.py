"""python -m core demo: the demo datasets and the demo base - what ships, and rebuilding them.

  python -m core demo                        # what is there: the base (steps, probe) and the datasets
  python -m core demo --datasets             # rebuild assets/demo/keys (and ui2sql, with chromium)
  python -m core demo --base [--steps N ...] # pretrain the demo base by the recipe (GPU: minutes;
                                             #   CPU: hours for the full recipe)

The builders are the scripts in assets/demo/ (build_keys.py, render_ui2sql.py, pretrain_base.py);
this command runs them with progress and says what changed. Each writes its folder whole or not
at all, so a stopped rebuild leaves the shipped files in place.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

from core.errors import StudioError
from core.workspace import ASSETS

DEMO = ASSETS / "demo"


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="show or rebuild the demo datasets and the demo base",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", action="store_true", help="rebuild the demo datasets")
    p.add_argument("--keys-count", type=int, default=None, help="images in the keys dataset (default: the shipped count)")
    p.add_argument("--base", action="store_true", help="pretrain the demo base by its recipe")
    p.add_argument("--out", type=Path, default=None, help="where --base writes (default: assets/demo/base)")
    p.add_argument("--steps", type=int, default=None, help="pretraining steps (default: the recipe's)")
    p.add_argument("--batch", type=int, default=None, help="pretraining batch size (default: the recipe's)")
    p.add_argument("--workers", type=int, default=None, help="data-loader processes for --base")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=main)


def _script(name: str):
    """One of assets/demo/*.py as a module (they are scripts, not a package)."""
    path = DEMO / f"{name}.py"
    if not path.is_file():
        raise StudioError(f"{path} is missing.", "Restore assets/demo from git.")
    spec = importlib.util.spec_from_file_location(f"trinity_demo_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _say(args, text: str) -> None:
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)


def summary() -> dict:
    """What ships: the base's recipe facts and each demo dataset's counts."""
    from core.dataset import Dataset
    from core.demo_model import BASE_DIR

    out: dict = {"base": {"path": str(BASE_DIR)}}
    meta_path = BASE_DIR / "pretrain.json"
    if meta_path.is_file():
        m = json.loads(meta_path.read_text(encoding="utf-8"))
        out["base"].update({k: m.get(k) for k in ("params", "steps_done", "batch", "images", "device",
                                                   "train_seconds", "loss_first", "loss_last")})
        out["base"]["probe"] = m.get("probe_after")
    else:
        out["base"]["missing"] = True
    out["datasets"] = {}
    for name in ("keys", "ui2sql"):
        try:
            c = Dataset.open(DEMO / name).counts()
            out["datasets"][name] = {"records": c["total"], "split": c["split"]}
        except StudioError as e:
            out["datasets"][name] = {"error": e.message}
    return out


def rebuild_datasets(args) -> dict:
    done = {}
    keys = _script("build_keys")
    from core.dataset import Dataset

    try:
        count = args.keys_count or Dataset.open(keys.DEFAULT_OUT).counts()["total"]
    except StudioError:
        count = keys.DEFAULT_COUNT
    t0 = time.time()
    _say(args, f"keys: rendering {count} images into {keys.DEFAULT_OUT} ...")
    ds = keys.build(keys.DEFAULT_OUT, count=count,
                    progress=lambda i, n: _say(args, f"  keys {i}/{n}") if i % 64 == 0 or i == n else None)
    done["keys"] = {"records": ds.counts()["total"], "seconds": round(time.time() - t0, 1)}
    _say(args, f"keys: {done['keys']['records']} records in {done['keys']['seconds']} s")
    ui = _script("render_ui2sql")
    if not Path(ui.CHROMIUM).exists():
        done["ui2sql"] = {"skipped": f"no chromium at {ui.CHROMIUM} (set TRINITY_CHROMIUM); the shipped "
                                     "dataset is unchanged"}
        _say(args, f"ui2sql: skipped - {done['ui2sql']['skipped']}")
    else:
        t0 = time.time()
        _say(args, "ui2sql: rendering the mock-ups with chromium ...")
        code = ui.main([])
        done["ui2sql"] = {"exit_code": code, "seconds": round(time.time() - t0, 1)}
        if code:
            raise StudioError("Rendering the ui2sql demo dataset failed (see above).",
                              "The shipped dataset is unchanged; fix the mock-up named above and run again.")
    return done


def rebuild_base(args) -> dict:
    recipe = _script("pretrain_base")
    opts = dict(recipe.DEFAULTS)
    if args.steps is not None:
        opts["steps"] = args.steps
    if args.batch is not None:
        opts["batch"] = args.batch
    if opts["steps"] < 1 or opts["batch"] < 1:
        raise StudioError("--steps and --batch must be 1 or more.", "e.g. --steps 200 --batch 16")
    out = args.out or (DEMO / "base")
    import os
    workers = args.workers if args.workers is not None else min(15, max(0, (os.cpu_count() or 1) - 1))
    _say(args, f"base: pretraining {opts['steps']} steps x {opts['batch']} into {out} "
               "(the recipe: assets/demo/pretrain_base.py)")
    meta = recipe.train(out, opts["steps"], opts["batch"], opts["lr"], opts["warmup"], opts["weight_decay"],
                        opts["seed"], opts["eval_n"], workers, None, None,
                        probe_every=max(500, opts["steps"] // 4), log=lambda t: _say(args, "  " + t))
    return {"path": str(Path(out).resolve()), "steps": meta["steps_done"], "loss_first": meta["loss_first"],
            "loss_last": meta["loss_last"], "probe": meta["probe_after"], "seconds": meta["total_seconds"]}


def main(args) -> int:
    result: dict = {}
    if args.datasets:
        result["datasets"] = rebuild_datasets(args)
    if args.base:
        result["base"] = rebuild_base(args)
    if not (args.datasets or args.base):
        result = summary()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if not (args.datasets or args.base):
        b = result["base"]
        if b.get("missing"):
            print(f"demo base: missing at {b['path']} (rebuild: python -m core demo --base)")
        else:
            p = b.get("probe") or {}
            print(f"demo base: {b['path']}\n  {b['params'] / 1e6:.2f}M params, {b['steps_done']} steps x {b['batch']} "
                  f"({b['images']} generated images) on {b['device']}, loss {b['loss_first']} -> {b['loss_last']}\n"
                  f"  held-out keys probe: digit accuracy {p.get('digit_acc')}, all digits right {p.get('all_digits_acc')}")
        for name, d in result["datasets"].items():
            print(f"dataset {name}: " + (d["error"] if "error" in d else f"{d['records']} records, split {d['split']}"))
        print("rebuild: python -m core demo --datasets | --base")
    else:
        print("done: " + json.dumps(result))
    return 0
