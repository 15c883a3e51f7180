"""A custom base model, checked before training: a local model folder or a Hugging Face hub id of a
supported family (Gemma 3 / Gemma 3n vision models). The family is read from its config.json
(`model_type`), never guessed from the name; what cannot be trained gets an error that says why
and what to do (missing folder or files, another family, a text-only Gemma, a gated or missing hub
model, no connection)."""
from __future__ import annotations

import json
from pathlib import Path

from core import models
from core.errors import StudioError

FAMILY_NAMES = {"gemma3": "Gemma 3", "gemma3n": "Gemma 3n"}
_TEXT_ONLY = {"gemma3_text", "gemma3n_text", "gemma", "gemma2"}
_PICK = ("Pick a Gemma 3 (4B and larger) or Gemma 3n model folder or hub id, e.g. google/gemma-3-4b-it, "
         "or one of the listed models.")


def _family(cfg: dict, where: str) -> str:
    kind = cfg.get("model_type")
    if kind in models._FAMILIES:
        if not isinstance(cfg.get("vision_config"), dict):
            raise StudioError(f"{where} is a {FAMILY_NAMES[kind]} config without a vision tower (no vision_config).",
                              "The studio trains models that read images. " + _PICK)
        return kind
    if kind in _TEXT_ONLY:
        raise StudioError(f"{where} is a text-only model ('{kind}'): it cannot read images.",
                          "Gemma 3 1B is text-only; the vision models are Gemma 3 4B, 12B, 27B and Gemma 3n. " + _PICK)
    raise StudioError(f"{where} holds a '{kind or 'unknown'}' model; the studio trains Gemma 3 and Gemma 3n vision "
                      "models only.", _PICK)


def _folder(p: Path) -> models.ModelInfo:
    where = f"The folder {p}"
    cfg_path = p / "config.json"
    if not cfg_path.is_file():
        raise StudioError(f"{p} holds no config.json, so it is not a model folder.",
                          "Pick the folder that contains config.json and the *.safetensors weights "
                          "(what save_pretrained writes).")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise StudioError(f"{cfg_path} cannot be read as JSON: {e}.", "Copy the model folder again.") from None
    family = _family(cfg if isinstance(cfg, dict) else {}, where)
    if not any(p.glob("*.safetensors")):
        bins = sorted(f.name for f in p.glob("*.bin"))
        raise StudioError(f"{where} has no *.safetensors weights" + (f" (only {', '.join(bins[:3])})" if bins else "")
                          + ".", "Only safetensors weights are loaded (a pickled .bin can run code when read); "
                          "re-save the model with save_pretrained(safe_serialization=True).")
    if not ((p / "tokenizer.json").is_file() or (p / "tokenizer.model").is_file()):
        raise StudioError(f"{where} has no tokenizer (tokenizer.json or tokenizer.model).",
                          "Save the processor next to the model: processor.save_pretrained(FOLDER).")
    if not ((p / "processor_config.json").is_file() or (p / "preprocessor_config.json").is_file()):
        raise StudioError(f"{where} has no image processor settings (processor_config.json or "
                          "preprocessor_config.json).", "Save the processor next to the model: "
                          "processor.save_pretrained(FOLDER).")
    info = models.get_model_info(str(p))
    assert info.family == family
    return info


def _hub(repo: str) -> models.ModelInfo:
    from huggingface_hub import hf_hub_download

    try:
        cfg_file = hf_hub_download(repo, "config.json", token=models.hf_token())
    except Exception as e:  # noqa: BLE001 - hub errors come in many types; hub_error sorts them out
        raise models.hub_error(repo, e) from e
    cfg = json.loads(Path(cfg_file).read_text(encoding="utf-8"))
    family = _family(cfg if isinstance(cfg, dict) else {}, f"The hub model {repo}")
    return models.ModelInfo(repo, repo, family, 0.0, "hub model (config.json checked)",
                            repo.lower().startswith("google/"), family == "gemma3n")


def check_base_model(ref: str) -> models.ModelInfo:
    """The registry entry of a base model to train, after checking it can be: a registry id (its hub
    config.json fetched, as for any hub id; the demo base as it is); a folder (config.json of a Gemma 3 / 3n vision model, safetensors weights, tokenizer, image
    processor); a hub id (its config.json fetched with the user's token). StudioError otherwise."""
    ref = (ref or "").strip()
    if not ref:
        raise StudioError("No base model given.", "Type a local model folder or a Hugging Face hub id (owner/name).")
    if ref in models.MODELS:  # the registry's hub models are checked too: access (gated) before a job starts
        known = models.MODELS[ref]
        if known.hub_id:
            _hub(known.hub_id)
        return known
    path = Path(ref).expanduser()
    if path.is_dir():
        return _folder(path.resolve())
    if path.exists():
        raise StudioError(f"{path} is a file, not a model folder.", "Pick the folder that holds config.json.")
    if path.is_absolute() or ref.startswith((".", "~")) or not models._HUB_ID.match(ref):
        raise StudioError(f"There is no folder {path}, and '{ref}' is not a hub id (owner/name).",
                          "Check the path (it is read on the machine running the studio), or type a hub id "
                          "such as google/gemma-3-4b-it.")
    return _hub(ref)


def describe(info: models.ModelInfo) -> str:
    """One line for the Train tab: what was checked."""
    size = f", {info.params_b * 1000:.1f}M parameters" if 0 < info.params_b < 1 else (
        f", {info.params_b:.1f}B parameters" if info.params_b else "")
    where = "local folder" if info.hub_id is None else "hub model"
    gated = " (gated: its licence must be accepted on the model page)" if info.gated else ""
    return f"{FAMILY_NAMES.get(info.family, info.family)} {where}{size}{gated}"
