"""The studio's training path learns (CI size of the goals in bench/RESULTS.md, "Demo base").

The README's path: `python -m core train --dataset D --model demo --set method=lora [--set
max_steps=150]` on the shipped datasets, then `python -m core eval --run RUN --base` on their
held-out splits.
- keys (variation 0.5, every keyway): the goal on the 2-core box is exact bitting >= 0.8 at the
  recipe's 300 steps; measured 0.81-0.88 there and 0.85 at the 150 steps run here. A model that
  ignores the image sits near 0.11 position accuracy (chance for depths 1-9).
- ui2sql (the generated one-table pages; the mock-ups are the test split): the goal is >= 90% valid
  SQL and table-name F1 0.3 above the base; measured 1.00 / 1.00 at the recipe's 300 steps, which
  this test keeps (at 150 the table F1 was only 0.23: naming the table is the last thing learnt).
The bounds are looser than what was measured; the base never writes either format.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.__main__ import main

DEMO = Path(__file__).resolve().parent.parent / "assets" / "demo"
KEYS = DEMO / "keys"


def _train_and_eval(dataset: Path, tmp_path, capsys, steps: int) -> dict:
    run = tmp_path / "run"
    assert main(["train", "--dataset", str(dataset), "--model", "demo", "--set", "method=lora",
                 "--set", f"max_steps={steps}", "--out", str(run), "--no-progress"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["method"] == "lora" and cfg["max_steps"] == steps
    assert (run / "adapter" / "adapter_config.json").is_file()
    capsys.readouterr()
    assert main(["eval", "--run", str(run), "--base", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_lora_on_the_demo_base_reads_held_out_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRINITY_WORKSPACE", str(tmp_path / "ws"))
    summary = _train_and_eval(KEYS, tmp_path, capsys, steps=150)  # half the demo recipe's 300
    tuned, base = summary["metrics"], summary["base"]["metrics"]
    assert summary["n"] >= 20  # the held-out split
    assert summary["format_compliance"]["value"] >= 0.9, summary  # measured 1.00 (0.74 without answer tokens)
    assert base["format_compliance"] <= 0.1, summary       # the base never saw the format
    assert tuned["bitting_position_acc"] >= 0.85, summary    # reads the cuts (chance ~0.11; measured 0.94)
    assert tuned["bitting_exact"] >= 0.6, summary           # measured 0.85
    assert base["bitting_exact"] == 0.0
    assert tuned["keyway_acc"] >= 0.9, summary              # measured 1.00
    assert tuned["brand_acc"] >= 0.9, summary               # measured 1.00 (0.31 without answer tokens)


def test_lora_on_the_demo_base_writes_the_schema_of_held_out_pages(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRINITY_WORKSPACE", str(tmp_path / "ws"))
    summary = _train_and_eval(DEMO / "ui2sql", tmp_path, capsys, steps=300)  # the demo recipe's
    tuned, base = summary["metrics"], summary["base"]["metrics"]
    assert summary["n"] >= 15
    assert base["parses"] <= 0.1 and base["table_f1"] <= 0.1, summary  # the base writes prose
    assert tuned["parses"] >= 0.8, summary                              # valid SQL
    assert tuned["table_f1"] >= base["table_f1"] + 0.5, summary         # the table named by the page's title
