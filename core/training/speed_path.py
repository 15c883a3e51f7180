"""Which fast path a run takes, said in one line, and the compile caches that make a second run fast.

Unsloth compiles each decoder block on the first step (94-120 s for Gemma 3 4B on an H200,
bench/RESULTS.md). Its compiled code and torch's inductor artifacts are kept in WORKSPACE/cache/
(unless the user set the variables), so a second run with the same shapes starts from them; the
job reports "cache warm" when those folders already hold an earlier run's files.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from core.training.levers import CACHE_DIRS, env_choice

PATH_PHASE = "compiling"  # the job's phase between the model load and the end of the first step


def workspace_of(run_dir: str | os.PathLike) -> Path:
    """The workspace a run folder lives in (WORKSPACE/runs/RUN); the default workspace otherwise."""
    run_dir = Path(run_dir).resolve()
    if run_dir.parent.name == "runs":
        return run_dir.parent.parent
    from core import workspace

    return workspace.root()


def compile_cache_env(run_dir: str | os.PathLike, backend: str,
                      environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The cache variables to add to a job's environment: for a compiling backend (Unsloth), each
    of CACHE_DIRS the user has not set, as a folder under WORKSPACE/cache/ (created owner-only:
    Unsloth's mega-cache refuses a folder, or a parent, that others can write)."""
    environ = os.environ if environ is None else environ
    if backend != "unsloth":
        return {}
    root = workspace_of(run_dir) / "cache"
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)  # the mega-cache checks every parent for group/other write access
    out = {}
    for name, sub in CACHE_DIRS.items():
        if environ.get(name) and not (name == "TORCHINDUCTOR_CACHE_DIR" and environ[name] == _torch_default()):
            continue
        d = root / sub
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        out[name] = str(d)
    return out


def _torch_default() -> str:
    """torch writes its default inductor folder into os.environ once anything asks for it (in the
    studio's own process too): that value is torch's, not the user's choice."""
    import getpass
    import tempfile

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid_{os.getuid()}"
    return os.path.join(tempfile.gettempdir(), "torchinductor_" + user)


def cache_state(environ: Mapping[str, str] | None = None) -> str:
    """'warm' when a compile cache folder already holds files (an earlier run's), else 'cold'."""
    environ = os.environ if environ is None else environ
    for name in CACHE_DIRS:
        folder = environ.get(name)
        if folder and os.path.isdir(folder):
            for _root, _dirs, files in os.walk(folder):
                if files:
                    return "warm"
    return "cold"


def compile_mode(backend: str, environ: Mapping[str, str] | None = None) -> str | None:
    """'compiled' / 'partly compiled' / 'not compiled' for Unsloth (UNSLOTH_COMPILE_DISABLE); None
    for the hf path, which does not compile."""
    if backend != "unsloth":
        return None
    return {"0": "compiled", "partial": "partly compiled", "1": "not compiled"}[
        env_choice("UNSLOTH_COMPILE_DISABLE", environ)]


def fused_layers(model) -> int:
    from core.training.fast_lora import FastLoraMixin

    return sum(isinstance(m, FastLoraMixin) for m in model.modules())


def describe(cfg, backend: str, model, liger: bool, environ: Mapping[str, str] | None = None,
             cache: str | None = None) -> dict:
    """The path as event fields plus its one line (`message`), e.g. "backend: unsloth, compiled,
    cache cold" or "backend: hf (transformers + PEFT), fused DoRA layers (252), liger off"."""
    environ = os.environ if environ is None else environ
    mode = compile_mode(backend, environ)
    if backend == "unsloth":
        state = (cache or cache_state(environ)) if mode != "not compiled" else None
        parts = ["backend: unsloth", mode] + ([f"cache {state}"] if state else [])
        return {"path": "unsloth", "compile": mode, "cache": state, "message": ", ".join(parts)}
    n = fused_layers(model) if cfg.method == "lora" else 0
    if cfg.method != "lora":
        layers = "full fine-tune"
    elif n:
        layers = f"fused {'DoRA' if cfg.use_dora else 'LoRA'} layers ({n})"
    else:
        layers = "PEFT's DoRA layers" if cfg.use_dora else "PEFT layers"
    return {"path": "hf", "layers": layers, "fused_layers": n, "liger": liger,
            "message": f"backend: hf (transformers + PEFT), {layers}, liger {'on' if liger else 'off'}"}
