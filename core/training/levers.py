"""The speed levers read from the environment, checked once at job start (and before launch).

A typo in a switch must not silently train the slow path, nor the wrong one: every variable the
studio reads for speed (or hands to Unsloth) is validated here, and a bad value fails the run with
the variable, the value and the allowed values. `env_choice` is how the code reads them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from core.errors import StudioError

# name -> (default, {accepted spelling: meaning}, what it does)
_ON_OFF = {"1": "1", "on": "1", "true": "1", "yes": "1", "0": "0", "off": "0", "false": "0", "no": "0"}
CHOICES: dict[str, tuple[str, dict[str, str], str]] = {
    "FAST_LORA": ("dora", {"dora": "dora", "all": "all", "none": "none", "0": "none", "off": "none", "1": "all"},
                  "which LoRA layers train through one fused function (dora = the DoRA layers only)"),
    "FAST_DORA": ("1", _ON_OFF, "fast DoRA layers with a cached weight norm (0 = PEFT's DoRA layers)"),
    "TRINITY_AUTOCAST": ("1", _ON_OFF, "autocast around the forward of a bf16 LoRA run on the transformers path "
                                       "(0 = none where every trained weight is bf16 already)"),
    # Unsloth reads these itself; the job reads them to say which path it took
    "UNSLOTH_COMPILE_DISABLE": ("0", {"0": "0", "1": "1", "partial": "partial"},
                                "Unsloth's compile: 0 = compile, partial = compile less, 1 = none"),
    "UNSLOTH_MEGA_CACHE": ("", {**_ON_OFF, "": ""}, "Unsloth's persisted bundle of compiled artifacts"),
}
WHOLE_NUMBERS = {"TRINITY_DATA_WORKERS": "data-loader worker processes (unset: half the cores, up to 4, on a GPU)"}
# Folders for compile caches: the job fills the unset ones with folders in the workspace
CACHE_DIRS = {"TORCHINDUCTOR_CACHE_DIR": "inductor", "UNSLOTH_COMPILE_LOCATION": "unsloth_compiled",
              "UNSLOTH_MEGA_CACHE_DIR": "unsloth_mega"}


def _allowed(name: str) -> str:
    return ", ".join(repr(k) if k == "" else k for k in CHOICES[name][1])


def env_choice(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The normalized value of a choice variable (its default when unset); StudioError if invalid."""
    environ = os.environ if environ is None else environ
    default, spellings, what = CHOICES[name]
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in spellings:
        raise StudioError(f"{name}={raw!r} is not a valid value ({what}).",
                          f"Use one of: {_allowed(name)}; or unset {name} for the default ({default or 'unset'}).")
    return spellings[value]


def env_whole_number(name: str, environ: Mapping[str, str] | None = None) -> int | None:
    environ = os.environ if environ is None else environ
    raw = environ.get(name)
    if raw is None:
        return None
    if not raw.strip().isdigit():
        raise StudioError(f"{name}={raw!r} is not a valid value: {name} must be a whole number, 0 or more "
                          f"({WHOLE_NUMBERS[name]}).", f"Unset it (the default suits the machine) or set e.g. {name}=2.")
    return int(raw.strip())


def _check_dir(name: str, raw: str) -> None:
    if not raw.strip():
        raise StudioError(f"{name} is set but empty.", f"Unset {name} (the studio then keeps it in the workspace) "
                                                        "or set it to a folder.")
    path = os.path.expanduser(raw)
    if os.path.exists(path) and not os.path.isdir(path):
        raise StudioError(f"{name}={raw!r} is not a folder (a file of that name exists).",
                          f"Point {name} at a folder, or unset it to keep the cache in the workspace.")


def check_env(environ: Mapping[str, str] | None = None) -> None:
    """Raises StudioError for the first invalid speed-lever variable."""
    environ = os.environ if environ is None else environ
    for name in CHOICES:
        env_choice(name, environ)
    for name in WHOLE_NUMBERS:
        env_whole_number(name, environ)
    for name in CACHE_DIRS:
        if name in environ:
            _check_dir(name, environ[name])
