"""bench/gpu_speed.py's seeds plan on a machine without a GPU: --help and --list work, the plan has
issue 16's rows, and the goals table turns rows into the issue's ratios."""
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
    assert "| 6. second run's first step" in p.stdout
    bad = _run("--plan", "seeds")
    assert bad.returncode == 2 and "--anchor and --out" in bad.stderr


def test_goals_from_rows_and_an_appended_call(tmp_path):
    from bench import gpu_seeds as s

    # the H200 numbers (2026-12-01) as rows of two calls
    first = [{"kind": "anchor", "label": s.A, "batch": 1, "step_s": 0.895, "tokens_per_s": 919, "reserved_gib": 7.32},
             {"kind": "anchor", "label": s.A, "batch": 4, "step_s": 1.06, "tokens_per_s": 3103},
             {"kind": "job", "label": s.QLORA_HF, "batch": 1, "step_s": 0.963, "tokens_per_s": 853}]
    (tmp_path / "speed.json").write_text(json.dumps({"rows": first}))
    second = [{"kind": "anchor", "label": s.D, "batch": 1, "step_s": 0.361, "tokens_per_s": 2279, "reserved_gib": 5.13},
              {"kind": "job", "label": s.TRINITY_4B, "batch": 1, "step_s": 1.319, "reserved_gib": 4.87},
              {"kind": "job", "label": s.QLORA_AUTO, "batch": 1, "step_s": 0.397, "tokens_per_s": 2068},
              {"kind": "job", "label": s.WARM, "batch": 1, "step_s": 0.4, "extra": {"first_step_s": 21.0}}]
    p = _run("--plan", "seeds_unsloth", "--list", "--append", str(tmp_path / "speed.json"))
    assert p.returncode == 0 and "| 3. hf path QLoRA b1 tokens/s >= 1.5x anchor A | 0.93x | no |" in p.stdout
    got = {g[0][:2]: (g[2], g[3]) for g in s.goals(first + second)}
    assert round(got["1."][0], 2) == 3.65 and got["1."][1] is False   # 1.319 / 0.361
    assert round(s.goals(first + second)[1][2], 3) == round(2068 / 2279, 3)
    assert got["6."] == (21.0, True)
    assert got["5."] == (None, None)  # not measured: no verdict
