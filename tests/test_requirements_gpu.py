"""requirements-gpu.txt: every line pinned, every runtime pin of requirements.txt carried over (only
Unsloth's bounds differ), and every package the training code imports is in it."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)$")
# Where the GPU file may differ from requirements.txt, and why (unsloth 2026.10.9's metadata).
DIFFERENT = {"torch": "the measured CUDA build 2.11.0", "transformers": "unsloth: <= 5.17.0",
             "trl": "unsloth: <= 1.15.0", "datasets": "unsloth: < 5.0.0"}
# module -> distribution, where they differ
DIST = {"yaml": "pyyaml", "PIL": "pillow", "dotenv": "python-dotenv", "liger_kernel": "liger-kernel"}
TRANSITIVE = {"tqdm", "huggingface-hub", "fastapi", "uvicorn", "starlette", "pydantic", "safetensors"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    out, bad = {}, []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("-r "):
            continue
        m = PIN.match(line)
        if not m:
            bad.append(f"line {n}: {line}")
            continue
        out[norm(m.group(1))] = m.group(2)
    assert not bad, f"{path.name}: lines not pinned with ==: {bad}"
    return out


def imported_modules(folder: Path) -> set[str]:
    mods = set()
    for f in folder.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and m not in ("core", "studio", "bench", "__future__")}


def test_every_line_is_pinned_and_parses():
    gpu = pins(REPO / "requirements-gpu.txt")
    assert len(gpu) >= 30
    text = (REPO / "requirements-gpu.txt").read_text()
    assert "-r requirements.txt" not in text.replace("`-r requirements.txt`", "")  # see the file's comment
    assert "download.pytorch.org/whl/cu" in text  # how to pick another CUDA build


def test_gpu_file_carries_every_runtime_pin():
    cpu, gpu = pins(REPO / "requirements.txt"), pins(REPO / "requirements-gpu.txt")
    missing = sorted(set(cpu) - set(gpu))
    assert not missing, f"in requirements.txt but not in requirements-gpu.txt: {missing}"
    changed = {k: (cpu[k], gpu[k]) for k in cpu if gpu[k] != cpu[k] and k not in DIFFERENT}
    assert not changed, f"pins that differ without a reason (add one to DIFFERENT or align): {changed}"


def test_gpu_path_packages_are_pinned_at_the_measured_versions():
    gpu = pins(REPO / "requirements-gpu.txt")
    measured = {"torch": "2.11.0", "transformers": "5.17.0", "trl": "1.15.0", "bitsandbytes": "0.50.2",
                "unsloth": "2026.10.9", "unsloth-zoo": "2026.10.9", "triton": "3.6.0", "liger-kernel": "0.8.5",
                "timm": "1.0.29", "torchvision": "0.26.0", "cut-cross-entropy": "25.1.1", "datasets": "4.8.5"}
    assert {k: gpu.get(k) for k in measured} == measured


def test_every_package_the_training_code_imports_is_in_the_gpu_file():
    gpu = pins(REPO / "requirements-gpu.txt")
    mods = imported_modules(REPO / "core" / "training") | imported_modules(REPO / "core")
    assert {"unsloth", "bitsandbytes", "peft", "trl"} <= mods  # the scan sees the GPU path's imports
    missing = sorted(m for m in mods if norm(DIST.get(m, m)) not in gpu and norm(m) not in TRANSITIVE)
    # llama_cpp / gguf: the GGUF export's optional converter (requirements-dev.txt, its own install note)
    assert [m for m in missing if m not in ("llama_cpp", "gguf")] == []
