"""bench/gpu_speed.py's seeds plan on a machine without a GPU: --help and --list work, the plan has
issue 24's rows, and the goals table turns rows into the issue's ratios."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(*args):
    return subprocess.run([sys.executable, "bench/gpu_speed.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_help_and_list_run_without_a_gpu(tmp_path):
    assert _run("--help").returncode == 0
    p = _run("--plan", "seeds", "--list")
    assert p.returncode == 0, p.stderr
    for row in ("Unsloth QLoRA (anchor D)", "HF+PEFT QLoRA (baseline)", "job auto Trinity 4B r64",
                "job hf QLoRA", "job auto Gemma 3n E4B Keylike b8", "job auto 12B Trinity",
                "second run (cache warm)"):
        assert row in p.stdout, row
    assert "| 3. warm-cache first step <= 30 s" in p.stdout
    bad = _run("--plan", "seeds")
    assert bad.returncode == 2 and "--anchor and --out" in bad.stderr


def test_goals_from_rows_and_an_appended_call(tmp_path):
    from bench import gpu_seeds as s

    # issue 24's H200 numbers (2026-12-07) as rows of two calls
    first = [{"kind": "anchor", "label": s.A, "batch": 1, "step_s": 0.760, "tokens_per_s": 1081, "reserved_gib": 7.32},
             {"kind": "anchor", "label": s.A, "batch": 4, "step_s": 1.017, "tokens_per_s": 3234},
             {"kind": "job", "label": s.QLORA_HF, "batch": 1, "step_s": 0.586, "tokens_per_s": 1403,
              "extra": {"step_times": [9.0, 0.58, 0.59, 0.60, 0.65]}},
             {"kind": "job", "label": s.QLORA_HF, "batch": 4, "step_s": 1.46, "tokens_per_s": 2252,
              "extra": {"step_times": [9.0, 1.03, 1.40, 2.45, 1.2]}}]
    (tmp_path / "speed.json").write_text(json.dumps({"rows": first}))
    second = [{"kind": "anchor", "label": s.D, "batch": 1, "step_s": 0.547, "tokens_per_s": 1503, "reserved_gib": 5.11},
              {"kind": "job", "label": s.TRINITY_4B, "batch": 1, "step_s": 1.098, "reserved_gib": 4.87},
              {"kind": "job", "label": s.QLORA_AUTO, "batch": 1, "step_s": 0.541, "tokens_per_s": 1521},
              {"kind": "job", "label": s.WARM, "batch": 1, "step_s": 0.401, "extra": {"first_step_s": 30.6}}]
    p = _run("--plan", "seeds_unsloth", "--list", "--append", str(tmp_path / "speed.json"))
    assert p.returncode == 0, p.stderr
    assert "| 1. hf path QLoRA b1 tokens/s >= 1.2x anchor A, max/median step <= 1.3 | 1.30x, max/median 1.08 | yes |" \
        in p.stdout, p.stdout
    got = s.goals(first + second)
    b4 = got[1]  # 2252 / 3234, and a 2.45 s step against a 1.40 s median
    assert round(b4[2], 3) == round(2252 / 3234, 3) and b4[3] is False
    assert round(got[2][2], 2) == round(1.098 / 0.547, 2) and got[2][3] is False
    assert round(got[3][2], 3) == round(1521 / 1503, 3) and got[3][3] is True
    assert got[4] [2:] == (None, None)  # b4 of the default path not measured: no verdict
    assert got[5][2:] == (30.6, False)
    assert got[6][2:] == (None, None) and got[7][2:] == (None, None)
