"""Unsloth patches transformers, TRL and PEFT when it is imported and patches less when they came
first. The training job imports it first (core.training.job._import_unsloth_first); these tests
check that nothing on the way there, in the product's `python -m core train --run RUN` and in the
benchmark's job process, has imported those libraries already."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.training.config import TrainConfig
from core.training.runs import create_run

ROOT = Path(__file__).resolve().parents[1]
# replaces the import with a probe: which of the three were in sys.modules at that point
PROBE = """
import json, runpy, sys
import core.training.job as job
def probe(cfg):
    print("SEEN=" + json.dumps([m for m in ("transformers", "trl", "peft") if m in sys.modules]), flush=True)
    raise SystemExit(0)
job._import_unsloth_first = probe
sys.argv = {argv!r}
runpy.run_path({script!r}, run_name="__main__") if {script!r} else runpy.run_module("core", run_name="__main__")
"""


@pytest.fixture
def run_dir(demo_model_path, tmp_path):
    cfg = TrainConfig(model_id=str(demo_model_path), dataset=str(ROOT / "assets" / "demo" / "keys"), task="keys",
                      max_steps=1)
    return create_run(cfg, run_dir=tmp_path / "run")


def _seen(argv: list[str], script: str = "") -> list[str]:
    code = PROBE.format(argv=argv, script=script)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    line = next((ln for ln in p.stdout.splitlines() if ln.startswith("SEEN=")), None)
    assert line, f"the job never reached its Unsloth import (rc {p.returncode}):\n{p.stdout}\n{p.stderr[-2000:]}"
    return json.loads(line[5:])


def test_the_job_reaches_its_unsloth_import_before_transformers_trl_peft(run_dir):
    assert _seen(["core", "train", "--run", str(run_dir)]) == []


def test_the_benchmark_job_process_imports_unsloth_as_the_product_does(run_dir, tmp_path):
    script = str(ROOT / "bench" / "gpu_memory.py")
    assert _seen([script, "job", "--run", str(run_dir), "--json", str(tmp_path / "out.json")], script) == []
