"""The json task's learning goal (issue 17): on a small generated set of shapes, colours and counts, a
LoRA run of the shipped demo base with the studio's defaults reaches per-field accuracy >= 0.9.

Everything goes through the README's CLI, as a user would: the generated images and a labels.jsonl
({image_path, output}) are imported into a new json-task dataset with its JSON Schema
(`python -m core dataset import ... --task json --schema`), trained with
`python -m core train --dataset D --model demo --set method=lora`, and scored with
`python -m core eval --run RUN --base --json` on the val split the import made.

The images are drawn with the pretraining generator's shapes and colours (assets/demo/pretrain_data.py):
1-4 shapes of one kind in one colour per image, at seeds from SEED0 = 3e12 (the pretraining stream
starts at 1e12 and its probe at 2e12), and with shape and count going round evenly.

    python3 bench/learn_json.py                    # 240 images, the task's demo defaults
    python3 bench/learn_json.py --n 120 --set max_steps=60

The last printed line is `<field>_acc=... exact=... valid=... seconds=...`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED0 = 3 * 10**12

SCHEMA = {
    "type": "object",
    "properties": {
        "shape": {"type": "string", "enum": ["circle", "square", "triangle", "diamond"],
                  "description": "the shape drawn"},
        "colour": {"type": "string", "description": "its colour, one word"},
        "count": {"type": "integer", "minimum": 1, "maximum": 4, "description": "how many there are"},
    },
    "required": ["shape", "colour", "count"],
}


def generate(folder: Path, n: int) -> None:
    """n images and their labels.jsonl: 1-4 shapes of one kind in one colour on a plain background,
    drawn with the pretraining generator's shapes and colours; shapes and counts go round so that
    each value is as common as the others."""
    import random

    from PIL import Image, ImageDraw

    sys.path[:0] = [str(REPO), str(REPO / "assets" / "demo")]
    import pretrain_data as pdata

    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        rng = random.Random(SEED0 + i)
        shape, count = pdata.SHAPES[i % len(pdata.SHAPES)], 1 + (i // len(pdata.SHAPES)) % 4
        back = rng.choice(list(pdata.BACKS))
        colour = rng.choice([c for c in pdata.COLOURS if c != back])
        img = Image.new("RGB", (128, 128), pdata.BACKS[back])
        d, placed = ImageDraw.Draw(img), []
        while len(placed) < count:  # no overlaps: every shape stays countable
            r = rng.uniform(10, 18)
            cx, cy = rng.uniform(r + 2, 126 - r), rng.uniform(r + 2, 126 - r)
            if all((cx - x) ** 2 + (cy - y) ** 2 > (r + rr + 3) ** 2 for x, y, rr in placed):
                placed.append((cx, cy, r))
                pdata.draw_shape(d, shape, (cx - r, cy - r, cx + r, cy + r), pdata.COLOURS[colour])
        name = f"shape_{i:04d}.png"
        img.save(folder / name)
        lines.append(json.dumps({"image_path": name, "output": {"shape": shape, "colour": colour, "count": count}}))
    (folder / "labels.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "schema.json").write_text(json.dumps(SCHEMA, indent=1), encoding="utf-8")


def cli(*args: str, env: dict) -> str:
    out = subprocess.run([sys.executable, "-m", "core", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"python -m core {' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=240, help="generated images (the import splits them)")
    ap.add_argument("--set", action="append", default=[], help="extra train --set KEY=VALUE")
    ap.add_argument("--workdir", help="keep everything here (default: a temp folder)")
    args = ap.parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="learn-json-"))
    env = {**os.environ, "TRINITY_WORKSPACE": str(work / "workspace")}
    t0 = time.perf_counter()
    generate(work / "src", args.n)
    ds = work / "workspace" / "datasets" / "shapes"
    imported = json.loads(cli("dataset", "import", str(work / "src" / "labels.jsonl"), "--into", str(ds),
                              "--task", "json", "--schema", str(work / "src" / "schema.json"), "--name", "shapes",
                              "--json", env=env))
    t_data = time.perf_counter() - t0
    run = work / "run"
    sets = ["method=lora", *args.set]
    t1 = time.perf_counter()
    cli("train", "--dataset", str(ds), "--model", "demo", *[x for s in sets for x in ("--set", s)],
        "--out", str(run), "--no-progress", env=env)
    t_train = time.perf_counter() - t1
    t2 = time.perf_counter()
    summary = json.loads(cli("eval", "--run", str(run), "--base", "--json", env=env))
    t_eval = time.perf_counter() - t2
    cfg = json.loads((run / "config.json").read_text())
    run_m, base_m = summary["metrics"], (summary.get("base") or {}).get("metrics", {})
    keys = [f"{f}_acc" for f in SCHEMA["properties"]] + ["exact", "valid", "format_compliance"]
    print(f"images {args.n}, split {imported.get('split')}")
    print(f"recipe: method {cfg['method']}, steps {cfg['max_steps']}, batch {cfg['batch_size']}, lr {cfg['learning_rate']}")
    print(f"seconds: data {t_data:.0f}, train {t_train:.0f}, eval {t_eval:.0f}; val n={summary['n']}")
    print(f"{'metric':<20}{'base':>8}{'run':>8}")
    for k in keys:
        b, r = base_m.get(k), run_m.get(k)
        print(f"{k:<20}{'' if b is None else f'{b:.3f}':>8}{'' if r is None else f'{r:.3f}':>8}")
    print(" ".join(f"{k}={run_m.get(k)}" for k in keys) + f" seconds={time.perf_counter() - t0:.0f}")


if __name__ == "__main__":
    main()
