"""The studio's training path learns (CI size of the keys goal in bench/RESULTS.md, "Demo base").

The README's path, shortened: `python -m core train --dataset assets/demo/keys --model demo --set
method=lora` (the demo recipe, fewer steps) on the shipped dataset (variation 0.5, every keyway),
then `python -m core eval --run RUN --base` on its held-out split. The goal on the 2-core box is
exact bitting >= 0.8; the shipped base (pretrained to step 3199) reaches 0.77 with the recipe's
train_answer_tokens (0.65 without it: "BRAND:" came out as "pppp:"; bench/RESULTS.md), so the bounds
here are looser, below what it measured. A model that ignores the image sits near 0.11
position accuracy (chance for depths 1-9), and the base never writes the format.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.__main__ import main

KEYS = Path(__file__).resolve().parent.parent / "assets" / "demo" / "keys"
STEPS = 300  # the demo recipe's steps (core/training/config.py DEMO_RECIPE)


def test_lora_on_the_demo_base_reads_held_out_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRINITY_WORKSPACE", str(tmp_path / "ws"))
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(KEYS), "--model", "demo", "--set", "method=lora",
                 "--set", f"max_steps={STEPS}", "--out", str(run), "--no-progress"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "lora" and cfg["max_steps"] == STEPS
    assert (run / "adapter" / "adapter_config.json").is_file()
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--base", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    tuned, base = summary["metrics"], summary["base"]["metrics"]
    assert summary["n"] >= 20  # the held-out split
    assert summary["format_compliance"]["value"] >= 0.9, summary  # measured 1.00 (0.74 without answer tokens)
    assert base["format_compliance"] <= 0.1, summary       # the base never saw the format
    assert tuned["bitting_position_acc"] >= 0.8, summary     # reads the cuts (chance ~0.11; measured 0.92)
    assert tuned["bitting_exact"] >= 0.5, summary           # measured 0.77
    assert base["bitting_exact"] == 0.0
    assert tuned["keyway_acc"] >= 0.9, summary              # measured 1.00
    assert tuned["brand_acc"] >= 0.8, summary               # measured 1.00 (0.31 without answer tokens)
