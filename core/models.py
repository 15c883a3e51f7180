"""Which base models the studio offers, and loading them (processor, model, config) the one way.

Hub models load with the user's token (HF_TOKEN in the environment or in a `.env` file); the offline
demo base ships in assets/demo/base (core/demo_model.py, assets/demo/pretrain_base.py) and loads
through the very same `from_pretrained` path. Every loading failure a user can fix becomes a StudioError saying how.
"""
from __future__ import annotations

import json
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from core.errors import StudioError
from core.workspace import REPO

DEMO_ID = "demo"


@dataclass(frozen=True)
class ModelInfo:
    id: str              # what the UI, CLI and TrainConfig use
    hub_id: str | None   # Hugging Face repo id; None for the shipped demo base
    family: str          # "gemma3" | "gemma3n"
    params_b: float      # parameters in billions (Gemma 3n: raw count, not the "effective" E2B/E4B)
    size_note: str
    gated: bool          # licence must be accepted on the model page before download
    gpu_only: bool       # cannot run on this project's CPU torch stack


_GEMMA3N_NOTE = "vision tower needs timm (torchvision): GPU machines only here"
_MODELS = [
    ModelInfo(DEMO_ID, None, "gemma3", 0.0023, "tiny offline Gemma 3 (~2.3M params) shipped in assets/demo/base, "
              "pretrained on generated images; LoRA teaches it a task in minutes on CPU", False, False),
    ModelInfo("google/gemma-3-4b-it", "google/gemma-3-4b-it", "gemma3", 4.3, "~8.6 GB in bf16, ~3 GB in 4-bit",
              True, False),
    ModelInfo("google/gemma-3-12b-it", "google/gemma-3-12b-it", "gemma3", 12.2, "~24 GB in bf16, ~8 GB in 4-bit",
              True, False),
    ModelInfo("google/gemma-3-27b-it", "google/gemma-3-27b-it", "gemma3", 27.4, "~55 GB in bf16, ~17 GB in 4-bit",
              True, False),
    ModelInfo("google/gemma-3n-E2B-it", "google/gemma-3n-E2B-it", "gemma3n", 5.4,
              f"~11 GB in bf16 (2B effective); {_GEMMA3N_NOTE}", True, True),
    ModelInfo("google/gemma-3n-E4B-it", "google/gemma-3n-E4B-it", "gemma3n", 7.8,
              f"~16 GB in bf16 (4B effective); {_GEMMA3N_NOTE}", True, True),
    ModelInfo("unsloth/gemma-3-4b-it", "unsloth/gemma-3-4b-it", "gemma3", 4.3, "ungated copy of google/gemma-3-4b-it",
              False, False),
    ModelInfo("unsloth/gemma-3-12b-it", "unsloth/gemma-3-12b-it", "gemma3", 12.2,
              "ungated copy of google/gemma-3-12b-it", False, False),
    ModelInfo("unsloth/gemma-3-27b-it", "unsloth/gemma-3-27b-it", "gemma3", 27.4,
              "ungated copy of google/gemma-3-27b-it", False, False),
    ModelInfo("unsloth/gemma-3n-E2B-it", "unsloth/gemma-3n-E2B-it", "gemma3n", 5.4,
              f"ungated copy of google/gemma-3n-E2B-it; {_GEMMA3N_NOTE}", False, True),
    ModelInfo("unsloth/gemma-3n-E4B-it", "unsloth/gemma-3n-E4B-it", "gemma3n", 7.8,
              f"ungated copy of google/gemma-3n-E4B-it; {_GEMMA3N_NOTE}", False, True),
]
MODELS: dict[str, ModelInfo] = {m.id: m for m in _MODELS}

# Gemma 3n's AltUp uses these weights directly (not through Linear.forward): in 4-bit one corrupts
# silently and the other errors, so they stay in 16-bit.
GEMMA3N_SKIP_4BIT = ["lm_head", "correction_coefs", "prediction_coefs", "altup_projections",
                     "altup_unembed_projections"]
_FAMILIES = {"gemma3", "gemma3n"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _family_from_name(name: str) -> str | None:
    n = name.lower().replace("_", "-")
    if re.search(r"gemma-?3n", n):
        return "gemma3n"
    if re.search(r"gemma-?3(?![\d.])", n):
        return "gemma3"
    return None


def _cached_family(repo: str) -> str | None:
    """The family in a hub model's config.json already in the local Hugging Face cache (fetched when
    core.model_check checked it), so a hub id whose name does not say "gemma-3" still resolves."""
    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(repo, "config.json")
        kind = json.loads(Path(path).read_text(encoding="utf-8")).get("model_type") if isinstance(path, str) else None
    except (OSError, ValueError, ImportError):
        return None
    return kind if kind in _FAMILIES else None


def _local_params_b(folder: Path) -> float:
    """Parameter count from the safetensors headers (8-byte length + JSON), without reading weights."""
    total = 0
    for f in folder.glob("*.safetensors"):
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name != "__metadata__":
                count = 1
                for dim in meta["shape"]:
                    count *= dim
                total += count
    return total / 1e9


def _known_list() -> str:
    return ", ".join(MODELS)


def get_model_info(model_id: str) -> ModelInfo:
    """Registry entry; a local model folder or any Gemma 3 / 3n hub id gets an entry made on the fly."""
    model_id = (model_id or "").strip()
    if model_id in MODELS:
        return MODELS[model_id]
    folder = Path(model_id).expanduser()
    if model_id and folder.is_dir():
        cfg_path = folder / "config.json"
        if not cfg_path.is_file():
            raise StudioError(f"{folder} is a folder but holds no config.json, so it is not a model folder.",
                              "Pick the folder that contains config.json and the *.safetensors weights.")
        family = json.loads(cfg_path.read_text(encoding="utf-8")).get("model_type")
        if family not in _FAMILIES:
            raise StudioError(f"{folder} holds a '{family}' model; the studio trains Gemma 3 and Gemma 3n only.",
                              f"Pick one of: {_known_list()}.")
        return ModelInfo(str(folder.resolve()), None, family, round(_local_params_b(folder), 5),
                         "local folder", False, family == "gemma3n")
    family = (_family_from_name(model_id) or _cached_family(model_id)) if _HUB_ID.match(model_id) else None
    if family:
        return ModelInfo(model_id, model_id, family, 0.0, "hub model not in the registry (size unknown)",
                         model_id.lower().startswith("google/"), family == "gemma3n")
    raise StudioError(f"Unknown model '{model_id}'.",
                      f"Known models: {_known_list()}. A local model folder or another Gemma 3 / 3n hub id "
                      "(owner/name) works too.")


def display_id(model: str) -> str:
    """What a person sees for a model: the registry id, a folder's name, and `demo` for the shipped
    demo base's folder (a run trained on it records the folder, the inverse of resolve())."""
    if not os.path.isabs(model):
        return model
    from core.demo_model import BASE_DIR

    return DEMO_ID if Path(model).resolve() == BASE_DIR.resolve() else Path(model).name


def resolve(model_id: str, workspace: str | os.PathLike | None = None) -> str:
    """What from_pretrained gets: the shipped demo base's folder, a local folder or a hub id."""
    info = get_model_info(model_id)
    if info.id == DEMO_ID:
        from core.demo_model import ensure_demo_model

        return str(ensure_demo_model(workspace))
    return info.hub_id or info.id


_TOKEN_KEYS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


def hf_token() -> str | None:
    """HF_TOKEN / HUGGING_FACE_HUB_TOKEN from the environment, else from ./.env or the repo's .env,
    else the token `hf auth login` saved. The value is never printed or logged anywhere in the studio."""
    from dotenv import dotenv_values
    from huggingface_hub import get_token

    if not any(os.environ.get(k) for k in _TOKEN_KEYS):
        for env_file in (Path.cwd() / ".env", REPO / ".env"):
            if env_file.is_file():
                values = dotenv_values(env_file, encoding="utf-8")
                for key in _TOKEN_KEYS:
                    if values.get(key):
                        return values[key]
    return get_token()  # the environment's, else the login's


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def hub_error(model_id: str, exc: BaseException) -> StudioError:
    """Turns a loading failure into what the user has to do about it."""
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    chain = list(_chain(exc))
    text = " ".join(str(e) for e in chain)
    page = f"https://huggingface.co/{model_id}"
    token_note = "" if hf_token() else " No HF_TOKEN is set yet."
    if any(isinstance(e, GatedRepoError) for e in chain) or "gated repo" in text:
        return StudioError(f"{model_id} is a gated model: its licence must be accepted before it can be "
                           f"downloaded.{token_note}",
                           f"Open {page}, accept the licence with your Hugging Face account, create a read token at "
                           "https://huggingface.co/settings/tokens and put HF_TOKEN=<token> in the .env file next "
                           "to app.py. Or pick the demo model, which needs nothing.")
    if any(isinstance(e, RepositoryNotFoundError) for e in chain) or "not a valid model identifier" in text:
        return StudioError(f"There is no model '{model_id}' on the Hugging Face Hub, or it is private.{token_note}",
                           "Check the spelling; for a private model put HF_TOKEN=<token> in .env; or pick "
                           f"one of: {_known_list()}.")
    offline = (any(isinstance(e, (LocalEntryNotFoundError, ConnectionError)) for e in chain)
               or "couldn't connect" in text or "offline" in text.lower())
    if offline:
        return StudioError(f"{model_id} is not downloaded on this machine and the Hugging Face Hub cannot be "
                           "reached.",
                           "Connect to the internet (and unset HF_HUB_OFFLINE) to download it once, or copy the "
                           "model folder here and pick that folder, or pick the demo model.")
    if any(isinstance(e, ImportError) for e in chain) or "timm" in text:
        return StudioError(f"{model_id} needs a package this machine cannot use: {exc}",
                           "Gemma 3n's vision tower needs timm and torchvision (GPU machines only here); "
                           "pick a Gemma 3 model or the demo model.")
    return StudioError(f"Could not load {model_id}: {exc}",
                       "Check the model id or folder, or pick the demo model.")


def _hub_kwargs() -> dict:
    return {"token": hf_token(), "trust_remote_code": False}


def load_processor(model_id: str, workspace: str | os.PathLike | None = None):
    from transformers import AutoProcessor

    path = resolve(model_id, workspace)
    try:
        return AutoProcessor.from_pretrained(path, **_hub_kwargs())
    except (OSError, ValueError, ImportError) as e:
        raise hub_error(get_model_info(model_id).id, e) from e


def _pick_device(device: str) -> str:
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise StudioError(f"Unknown device '{device}'.", "Use auto, cpu or cuda.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise StudioError("No CUDA GPU is available on this machine.", "Use device cpu (or auto).")
    return device


def _pick_dtype(dtype, device: str):
    import torch

    if dtype is None or dtype == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        return torch.float32  # CPU: 16-bit matmuls are slow or unsupported for training
    if isinstance(dtype, str):
        named = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.get(dtype, dtype)
        if named not in ("bfloat16", "float16", "float32"):
            raise StudioError(f"Unknown dtype '{dtype}'.", "Use bfloat16, float16 or float32.")
        return getattr(torch, named)
    return dtype


def quantization_config(family: str, compute_dtype, double_quant: bool = True):
    """bitsandbytes nf4 settings (QLoRA). Gemma 3n keeps its AltUp weights and lm_head in 16-bit."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=GEMMA3N_SKIP_4BIT if family == "gemma3n" else None,
    )


def load_model(model_id: str, *, device: str = "auto", dtype=None, load_in_4bit: bool = False,
               double_quant: bool = True, for_training: bool = False,
               workspace: str | os.PathLike | None = None):
    """The base model through AutoModelForImageTextToText, on `device`, optionally in 4-bit nf4."""
    import torch
    from transformers import AutoModelForImageTextToText

    info = get_model_info(model_id)
    dev = _pick_device(device)
    if info.gpu_only and dev != "cuda":
        raise StudioError(f"{info.id} (Gemma 3n) cannot run on this machine's CPU.",
                          "Its vision tower needs timm and torchvision, which only the GPU setup has. Use a GPU, "
                          "or pick a Gemma 3 model or the demo model.")
    if load_in_4bit and dev != "cuda":
        raise StudioError("4-bit loading (QLoRA) needs a CUDA GPU.",
                          "Turn 4-bit off to train in 16/32-bit on the CPU, or run on a GPU machine.")
    torch_dtype = _pick_dtype(dtype, dev)
    kwargs = dict(_hub_kwargs(), use_safetensors=True, dtype=torch_dtype)
    if dev == "cuda":
        # One whole copy per process: under accelerate/DDP each rank loads onto its own GPU.
        kwargs["device_map"] = {"": torch.cuda.current_device()}
    if load_in_4bit:
        kwargs["quantization_config"] = quantization_config(info.family, torch_dtype, double_quant)
    path = resolve(model_id, workspace)
    try:
        model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    except (OSError, ValueError, ImportError) as e:
        raise hub_error(info.id, e) from e
    if for_training:
        model.config.use_cache = False  # the KV cache only costs memory while training
        model.train()
    else:
        model.eval()
    return model


def read_model_config(model_id_or_path: str, workspace: str | os.PathLike | None = None) -> dict:
    """config.json only (local folder, the demo model, or one small file from the hub): no weights."""
    info = get_model_info(model_id_or_path)
    path = resolve(model_id_or_path, workspace)
    if Path(path).is_dir():
        return json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    from huggingface_hub import hf_hub_download

    try:
        cfg_file = hf_hub_download(path, "config.json", token=hf_token())
    except Exception as e:  # hub errors come in many types; hub_error sorts them out
        raise hub_error(info.id, e) from e
    return json.loads(Path(cfg_file).read_text(encoding="utf-8"))
