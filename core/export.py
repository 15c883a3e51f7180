"""Exports a run: the PEFT adapter, the adapter merged into a 16-bit base, or GGUF files for llama.cpp
and Ollama (text model + vision projector), each with a model card and a summary.

A full fine-tune run (RUN/model/, no adapter) exports as merged (its own weights in 16-bit) or GGUF;
it has no adapter to export.

Every export is written into a hidden temporary sibling of the output folder and renamed into place
at the very end, so a failed or interrupted export leaves nothing that looks complete.
`progress(fraction or None, message)` is called along the way for the UI.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from core.errors import StudioError
from core.fsutil import atomic_dir, atomic_write_json, atomic_write_text

FORMATS = ("adapter", "merged", "gguf")
SUMMARY_FILE = "export_summary.json"
REF_TOKENS = 24  # greedy tokens compared between transformers and llama.cpp
STEPS = {"adapter": 3, "merged": 4, "gguf": 9}  # progress steps per format, for "step k of n"


def export_run(run_dir, fmt: str, out_dir=None, quant: str | None = None, progress=None,
               verify: bool = True) -> dict:
    """Exports RUN as fmt (adapter | merged | gguf) into out_dir (default RUN/export/<fmt>[-quant]).

    quant (gguf only): f16 (default), q8_0 or q4_k_m; only the text model is quantized. verify (gguf):
    answer demo images with llama.cpp and compare with the merged model's greedy answer."""
    from core.export_gguf import QUANTS
    from core.infer import adapter_dir, read_run_config, resolve_run_dir, run_weights

    if fmt not in FORMATS:
        raise StudioError(f"Unknown export format '{fmt}'.", f"Use one of: {', '.join(FORMATS)}.")
    if quant is not None and fmt != "gguf":
        raise StudioError(f"--quant applies to GGUF only, not to '{fmt}'.", "Drop --quant or use --format gguf.")
    quant = (quant or "f16").lower() if fmt == "gguf" else None
    if quant is not None and quant not in QUANTS:
        raise StudioError(f"Unknown GGUF quantization '{quant}'.", f"Use one of: {', '.join(QUANTS)}.")
    run = resolve_run_dir(run_dir)
    cfg = read_run_config(run)
    weights, has_adapter = run_weights(run)
    if has_adapter:
        source = Weights("lora", adapter_dir(run))
    elif fmt == "adapter":
        raise StudioError(f"Run '{run.name}' is a full fine-tune: it has no adapter; export merged or gguf.",
                          "Choose the merged (16-bit) or GGUF format; only LoRA runs have an adapter to export.")
    else:
        source = Weights("full", Path(weights))
    out = Path(out_dir) if out_dir else run / "export" / (f"gguf-{quant}" if fmt == "gguf" else fmt)
    out = out.expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise StudioError(f"{out} already exists and is not empty.",
                          "Pick a new output folder, or delete the old export first.")
    if out == source.path or source.path in out.parents:
        raise StudioError(f"The output folder may not be inside the run's {source.path.name} folder.",
                          "Pick another folder.")
    report = _Progress(progress, STEPS[fmt])
    started = time.perf_counter()
    from core import models

    from core.decoding import generation_settings

    task = run_task(cfg)
    summary = {"format": fmt, "run": run.name, "run_dir": str(run), "base_model": cfg["model"],
               "base_source": models.resolve(cfg["model"]), "task": cfg.get("task"), "out_dir": str(out),
               "quant": quant, "run_kind": source.kind,
               "decoding": generation_settings(task)}  # what the studio scored with; the Modelfile's too
    with atomic_dir(out) as tmp:  # an interrupted export leaves no half folder that looks finished
        if fmt == "adapter":
            summary.update(_export_adapter(cfg, source.path, tmp, report))
        elif fmt == "merged":
            summary.update(_export_merged(cfg, source, tmp, report)[0])
            if source.kind == "full":
                summary["notes"] = [summary["dtype_note"]]
        else:
            summary.update(_export_gguf(run, cfg, source, tmp, out, quant, report, verify, task))
        summary["files"] = sorted(p.name for p in tmp.iterdir())
        summary["seconds"] = round(time.perf_counter() - started, 1)
        summary["verdict"] = verdict(summary)
        report.step("writing the model card")
        atomic_write_text(tmp / "README.md", _card(fmt, run, cfg, summary, task))
        atomic_write_json(tmp / SUMMARY_FILE, summary)
    report.done(f"exported to {out}")
    return summary


class Weights(NamedTuple):
    """What a run trained: kind "lora" (path = RUN/adapter) or "full" (path = RUN/model)."""
    kind: str
    path: Path


# ------------------------------------------------------------------------------------- adapter
def _export_adapter(cfg: dict, adapter: Path, dest: Path, report) -> dict:
    from core import models

    report.step("saving the processor")
    processor = models.load_processor(cfg["model"])
    processor.save_pretrained(dest)
    _copy_tokenizer_model(cfg["model"], dest)
    report.step("copying the adapter")
    for f in adapter.iterdir():  # the adapter's own files win (weights, config, its tokenizer if saved)
        if f.is_file() and f.name != "README.md":
            shutil.copy2(f, dest / f.name)
    acfg = json.loads((dest / "adapter_config.json").read_text(encoding="utf-8"))
    return {"peft_type": acfg.get("peft_type"), "r": acfg.get("r"), "lora_alpha": acfg.get("lora_alpha"),
            "base_model_name_or_path": acfg.get("base_model_name_or_path"),
            "use_dora": acfg.get("use_dora", False)}


# -------------------------------------------------------------------------------------- merged
def merge_dtype(model_id: str):
    """The base checkpoint's own float type (bf16 for Gemma 3): the merge is never done in 4-bit, and
    never in a lower precision than the checkpoint was published in."""
    import torch

    name = _dtype_name(model_id) or "bfloat16"
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}.get(name, torch.bfloat16)


def _dtype_name(model_id_or_dir: str) -> str | None:
    """The float type a checkpoint's config.json records (a registry id, hub id or model folder)."""
    from core import models

    cfg = models.read_model_config(model_id_or_dir)
    name = cfg.get("dtype") or cfg.get("torch_dtype") or (cfg.get("text_config") or {}).get("dtype")
    return str(name) if name else None


def _export_merged(cfg: dict, source: Weights, dest: Path, report, keep_model: bool = False):
    """A 16-bit model folder with processor and generation_config: the LoRA adapter merged into its
    base, or a full fine-tune's own weights. Returns (meta, model, processor), the model kept on demand."""
    if source.kind == "full":
        meta, model, processor = _full_model(cfg, source.path, report)
    else:
        meta, model, processor = _merged_lora(cfg, source.path, report)
    report.step("saving the merged model")
    model.save_pretrained(dest, safe_serialization=True)  # writes generation_config.json too
    processor.save_pretrained(dest)
    _copy_tokenizer_model(cfg["model"], dest, first=source.path if source.kind == "full" else None)
    meta["parameters"] = sum(p.numel() for p in model.parameters())
    if not keep_model:
        del model
        return meta, None, None
    return meta, model, processor


def _merged_lora(cfg: dict, adapter: Path, report):
    """Base reloaded in its own 16-bit precision (even when training was 4-bit), adapter merged."""
    from peft import PeftModel

    from core import models

    dtype = merge_dtype(cfg["model"])
    info = models.get_model_info(cfg["model"])
    report.step(f"loading the base model in {str(dtype).replace('torch.', '')}")
    base = models.load_model(cfg["model"], device="cuda" if info.gpu_only else "cpu", dtype=dtype,
                             load_in_4bit=False)
    report.step("merging the adapter")
    try:
        model = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    except (ValueError, RuntimeError, KeyError) as e:
        raise StudioError(f"The adapter does not fit the base model {cfg['model']}: {e}",
                          "Export a run whose adapter was trained on this base model.") from e
    model.eval()
    meta = {"dtype": str(dtype).replace("torch.", ""), "loaded_4bit_for_training": bool(cfg.get("load_in_4bit"))}
    return meta, model, models.load_processor(cfg["model"])


def _full_model(cfg: dict, model_dir: Path, report):
    """A full fine-tune's RUN/model loaded in the base checkpoint's precision: bf16 for Gemma 3 even
    when training kept fp32 master weights; the fp32 demo model stays fp32, as its LoRA export does."""
    from core import models

    dtype = merge_dtype(cfg["model"])
    name = str(dtype).replace("torch.", "")
    saved = _dtype_name(str(model_dir))
    info = models.get_model_info(str(model_dir))
    report.step(f"loading the fine-tuned model (RUN/{model_dir.name}) in {name}")
    model = models.load_model(str(model_dir), device="cuda" if info.gpu_only else "cpu", dtype=dtype)
    report.step("preparing the fine-tuned model for saving")
    if getattr(model.config, "use_cache", None) is False:
        model.config.use_cache = True  # training turns the KV cache off to save memory; answering wants it
    if name == "float32":
        note = ("Saved in float32: the base checkpoint is published in float32 (as the offline demo model is), "
                "so the export keeps its precision, as the LoRA export does; Gemma 3 hub models export in bfloat16.")
    elif saved and saved != name:
        note = f"The run saved its weights in {saved}; they were cast to {name}, the base checkpoint's precision."
    else:
        note = f"Saved in {name}, the base checkpoint's precision."
    meta = {"dtype": name, "trained_weights_dtype": saved, "loaded_4bit_for_training": False,
            "full_finetune": True, "dtype_note": note}
    return meta, model, models.load_processor(str(model_dir))


def _copy_tokenizer_model(model_id: str, dest: Path, first: Path | None = None) -> None:
    """transformers 5 does not write SentencePiece's tokenizer.model; llama.cpp's Gemma 3 converter
    needs it, so it is copied from `first` (a run's model folder) or else the base checkpoint."""
    from core import models

    if (dest / "tokenizer.model").is_file():
        return
    if first is not None and (first / "tokenizer.model").is_file():
        shutil.copy2(first / "tokenizer.model", dest / "tokenizer.model")
        return
    src = Path(models.resolve(model_id))
    if src.is_dir():
        if (src / "tokenizer.model").is_file():
            shutil.copy2(src / "tokenizer.model", dest / "tokenizer.model")
        return
    try:
        from huggingface_hub import hf_hub_download

        shutil.copy2(hf_hub_download(str(src), "tokenizer.model", token=models.hf_token()), dest / "tokenizer.model")
    except Exception:  # noqa: BLE001 - the GGUF step says what is missing; other exports do not need it
        pass


# ---------------------------------------------------------------------------------------- gguf
def _export_gguf(run: Path, cfg: dict, source: Weights, dest: Path, out: Path, quant: str, report,
                 verify: bool, task=None) -> dict:
    """Merged (or full fine-tuned) model -> llama.cpp converter (text, mmproj) -> optional quantization -> read back ->
    answered by llama.cpp -> Modelfile. The merged folder is a scratch copy, removed at the end."""
    from core import export_gguf as gg
    from core.modelcard import OLLAMA_VISION_CAVEAT, modelfile, ollama_commands, ollama_name

    with tempfile.TemporaryDirectory(prefix=".work-", dir=dest, ignore_cleanup_errors=True) as scratch:
        work = Path(scratch)
        gg.converter_dir(report)  # fetched/unpacked before the slow merge, so a missing tool fails fast
        merged_meta, model, processor = _export_merged(cfg, source, work / "merged", report, keep_model=verify)
        samples, refs = [], []
        if verify:
            report.step("answering demo images with the merged model (transformers, greedy)")
            samples = sample_inputs(cfg)
            refs = [hf_greedy(model, processor, im, p) for im, p in samples]
        del model, processor
        report.step("preparing the converter's input (tokenizer.model, vision weight names)")
        src = gg.converter_source(work / "merged", work / "src")
        name = _file_stem(run.name)
        text = dest / f"{name}-{quant}.gguf"
        report.step(f"converting the text model ({quant})")
        raw = work / "f16.gguf" if quant == "q4_k_m" else text
        gg.convert(src, raw, mmproj=False, outtype="f16" if quant == "q4_k_m" else quant, progress=report)
        config = json.loads((src / "config.json").read_text(encoding="utf-8"))
        fixed_layers = gg.fix_layer_pattern(raw, config)
        if quant == "q4_k_m":
            report.step("quantizing the text model to q4_k_m")
            gg.quantize(raw, text, quant)
        mmproj = dest / f"mmproj-{name}-f16.gguf"
        report.step("converting the vision projector (mmproj, f16)")
        gg.convert(src, mmproj, mmproj=True, outtype="f16", progress=report)
    result = {"merged": merged_meta, "gguf": gg.describe(text), "mmproj": gg.describe(mmproj),
              "llama_cpp_python": gg.LLAMA_CPP_PYTHON, "notes": [], "layer_pattern_written": fixed_layers}
    report.step("checking the files with llama.cpp")
    result["verification"] = _verify(gg, text, mmproj, samples, refs) if verify else not_verified()
    tag = ollama_name(run.name, quant)
    atomic_write_text(dest / "Modelfile", modelfile(text.name, mmproj.name, task or cfg.get("task")))
    result["ollama"] = {"name": tag, "commands": ollama_commands(out, tag), "ran": False,
                        "note": OLLAMA_VISION_CAVEAT}
    result["notes"] += [OLLAMA_VISION_CAVEAT]
    return result


def not_verified() -> dict:
    """The verification entry of an export asked not to verify: turned off by choice, or off
    because the checker (llama-cpp-python) is not installed, with how to install it."""
    from core import export_gguf as gg

    why = gg.llama_cpp_available()
    if why is None:
        return {"ran": False, "reason": "verification was turned off", "hint": "Export again with verification on."}
    return {"ran": False, "reason": why, "hint": gg.INSTALL_HINT}


def _verify(gg, text: Path, mmproj: Path, samples: list, refs: list[dict]) -> dict:
    """llama.cpp answers the demo images; compared token for token with transformers' greedy answers."""
    why = gg.llama_cpp_available()
    if why:
        return {"ran": False, "reason": why, "hint": gg.INSTALL_HINT}
    answers = gg.answer_images(text, mmproj, samples, max_tokens=REF_TOKENS)
    rows = []
    for ref, ans in zip(refs, answers):
        n = min(len(ref["tokens"]), len(ans["tokens"]))
        diverge = next((i for i in range(n) if ref["tokens"][i] != ans["tokens"][i]), None)
        rows.append({"prompt": samples[len(rows)][1], "llama_cpp_text": ans["text"], "transformers_text": ref["text"],
                     "llama_cpp_tokens": ans["tokens"], "transformers_tokens": ref["tokens"],
                     "equal": ref["tokens"] == ans["tokens"], "first_divergence": diverge,
                     "prompt_tokens": {"llama_cpp": ans["prompt_tokens"], "transformers": ref["prompt_tokens"]},
                     "first_step_max_abs_logprob_diff": _max_diff(ref["first_logprobs"], ans["first_logprobs"])})
    return {"ran": True, "answers": rows, "all_equal": all(r["equal"] for r in rows)}


def verdict(summary: dict) -> dict:
    """What the export proves, in one sentence a person reads first: {"status", "text"}. status is
    "verified" (llama.cpp answered like transformers), "differs", "not_verified" (files written and
    read back, but nothing answered with them) or "written" (adapter / merged: nothing to compare)."""
    if summary.get("format") != "gguf":
        return {"status": "written", "text": f"Wrote the {summary.get('format')} export "
                f"({len(summary.get('files') or [])} files). It loads with transformers like any model folder."}
    ver = summary.get("verification") or {}
    files = f"{(summary.get('gguf') or {}).get('file')} + {(summary.get('mmproj') or {}).get('file')}"
    if not ver.get("ran"):
        why = ver.get("reason") or "verification was not run"
        return {"status": "not_verified",
                "text": f"Not verified: the GGUF files ({files}) were written and read back, but llama.cpp did not "
                        f"answer with them, so nothing shows they work ({why}). "
                        + (ver.get("hint") or "Export again with verification on.")}
    rows = ver.get("answers") or []
    same = sum(1 for r in rows if r.get("equal"))
    sample = (rows[0].get("llama_cpp_text") or "").strip().replace("\n", " ")[:80] if rows else ""
    if rows and same == len(rows):
        return {"status": "verified", "text": f"Verified: llama.cpp answered {len(rows)} sample images with exactly "
                f"the tokens transformers gives for the merged model (e.g. “{sample}”)."}
    first = min((r["first_divergence"] for r in rows if r.get("first_divergence") is not None), default=None)
    return {"status": "differs", "text": f"llama.cpp's answers differ from transformers' on {len(rows) - same} of "
            f"{len(rows)} sample images" + (f" (from token {first + 1})" if first is not None else "")
            + f"; {summary.get('quant')} quantization changes some tokens, f16 should match (e.g. “{sample}”)."}


def _max_diff(a: list[float], b: list[float]) -> float | None:
    if len(a) != len(b):
        return None
    return round(max(abs(x - y) for x, y in zip(a, b)), 5)


def _file_stem(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-.") or "model"


# ------------------------------------------------------------------------ answers to compare
def sample_inputs(cfg: dict, n: int = 2) -> list[tuple]:
    """(image, prompt) pairs to check an export on: the run's own test/val images when its dataset is
    here, else the task's own samples (Task.samples), else a plain test card. Images are squared to the
    model's input size first, as training does, so transformers and llama.cpp see the very same pixels."""
    from core import models
    from core.training.data import native_image_side, resize_square

    pairs, task = [], None
    try:
        from core.dataset import Dataset
        from core.evaluate import resolve_dataset_dir

        ds = Dataset.open(resolve_dataset_dir(cfg.get("dataset") or ""))
        task = ds.task
        recs = [r for sp in ("test", "val", "train", None) for r in ds.records(split=sp)
                if r.get("status") in ("labeled", "reviewed")]
        pairs = [(ds.load_image(r), ds.task.prompt(r)) for r in recs[:n]]
    except (StudioError, OSError, KeyError, ValueError):
        pairs = []
    if len(pairs) < n:
        if task is None:
            from core.tasks import all_tasks

            task = all_tasks().get(cfg.get("task") or "")
        try:
            more = task.samples(n - len(pairs)) if task is not None else []
            pairs += [(rec["image_obj"], task.prompt(rec)) for rec in more]
        except Exception:  # noqa: BLE001 - samples are a convenience; the test card below still checks
            pass
    while len(pairs) < n:  # any picture shows whether the image is read the same way
        prompt = task.prompt({"id": "", "fields": {}, "image": ""}) if task is not None else "Describe the image."
        pairs.append((_test_card(len(pairs)), prompt))
    side = native_image_side(models.load_processor(cfg["model"])) or 896
    return [(resize_square(im.convert("RGB"), side), p) for im, p in pairs[:n]]


def _test_card(seed: int):
    """A deterministic picture with structure (bars of grey levels)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (256, 256), (240, 240, 240))
    draw = ImageDraw.Draw(im)
    for i in range(8):
        shade = (37 * (i + seed)) % 200
        draw.rectangle([8 + 30 * i, 40 + 10 * ((i + seed) % 5), 30 + 30 * i, 220], fill=(shade, shade, 255 - shade))
    return im


def hf_greedy(model, processor, image, prompt: str, max_new_tokens: int = REF_TOKENS) -> dict:
    """transformers' greedy answer: token ids (up to and including a stop token) and text."""
    import torch

    from core.infer import chat_messages

    tok = processor.tokenizer
    stops = [tok.eos_token_id, tok.convert_tokens_to_ids("<end_of_turn>")]
    text = processor.apply_chat_template(chat_messages(prompt), add_generation_prompt=True, tokenize=False)
    # The template already starts with <bos>; TRL trains without a second one, so none is added here.
    inputs = processor(text=[text], images=[[image]], return_tensors="pt", add_special_tokens=False)
    inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    with torch.inference_mode():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=stops,
                             pad_token_id=tok.pad_token_id, output_logits=True, return_dict_in_generate=True)
    ids = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    first = torch.log_softmax(out.logits[0][0].float(), -1)
    return {"tokens": ids, "text": tok.decode([t for t in ids if t not in stops], skip_special_tokens=True),
            "prompt_tokens": int(inputs["input_ids"].shape[1]), "first_logprobs": first.tolist()}


# ----------------------------------------------------------------------------------- helpers
def run_task(cfg: dict):
    """The run's task as its dataset configures it (a json dataset's schema sets the prompt and the
    answer cap), else the task by name (None when not installed)."""
    try:
        from core.dataset import Dataset
        from core.evaluate import resolve_dataset_dir

        return Dataset.open(resolve_dataset_dir(cfg.get("dataset") or "")).task
    except (StudioError, OSError, KeyError, ValueError):
        from core.tasks import all_tasks

        return all_tasks().get(cfg.get("task") or "")


def _card(fmt: str, run: Path, cfg: dict, summary: dict, task=None) -> str:
    from core.modelcard import model_card

    dataset, evals = None, []
    try:
        from core.dataset import Dataset
        from core.evaluate import resolve_dataset_dir

        ds = Dataset.open(resolve_dataset_dir(cfg.get("dataset") or ""))
        dataset = {"name": ds.name, **ds.counts()}
    except (StudioError, OSError, ValueError):
        pass
    for f in sorted((run / "eval").glob("*.summary.json")):
        try:
            evals.append(json.loads(f.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    files = {"gguf": summary.get("gguf", {}).get("file", "MODEL.gguf"),
             "mmproj": summary.get("mmproj", {}).get("file", "MMPROJ.gguf")}
    return model_card(fmt, run.name, cfg, summary.get("base_source", cfg["model"]), dataset, evals, files,
                      [*(summary.get("notes") or []), *([summary["verdict"]["text"]] if fmt == "gguf" else [])],
                      full_finetune=summary.get("run_kind") == "full", task=task)


class _Progress:
    def __init__(self, callback, total: int):
        self.callback, self.total, self.n = callback, max(1, total), 0

    def step(self, message: str) -> None:
        self.n += 1
        if self.callback:
            self.callback(min(self.n / self.total, 0.99), message)

    def __call__(self, fraction, message: str) -> None:  # sub-steps keep the current fraction
        if self.callback:
            self.callback(min(self.n / self.total, 0.99) if fraction is None else fraction, message)

    def done(self, message: str) -> None:
        if self.callback:
            self.callback(1.0, message)
