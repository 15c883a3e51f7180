"""GGUF export with llama.cpp's own tools: converter (text model + mmproj), quantizer, reader, runner.

The converter and gguf-py come from one pinned llama-cpp-python source distribution, fetched from
PyPI by pip (nothing else is downloaded) and unpacked once into workspace/tools/; the same version,
installed with pip, provides the quantizer and the multimodal runner used for verification, so the
files are written and read by one llama.cpp.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from core import workspace
from core.errors import StudioError
from core.fsutil import atomic_dir

LLAMA_CPP_PYTHON = "0.3.36"
SDIST = f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
_VENDOR = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
_NEEDED = ("convert_hf_to_gguf.py", "LICENSE", "conversion/", "gguf-py/gguf/")
_DONE = ".complete"
QUANTS = {"f16": None, "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}
INSTALL_HINT = (f"Install it with `bash scripts/install_llama_cpp.sh` (pip builds llama-cpp-python=={LLAMA_CPP_PYTHON} "
                "from PyPI, ~5 min on 2 cores).")


# ---------------------------------------------------------------------------------- the converter
def converter_dir(progress=None) -> Path:
    """A folder holding convert_hf_to_gguf.py, conversion/ and gguf-py/ of the pinned llama.cpp.

    TRINITY_LLAMA_CPP_DIR may point at such a folder (or a llama.cpp checkout); otherwise the pinned
    sdist is fetched by pip into workspace/tools/ once and the converter unpacked next to it."""
    env = os.environ.get("TRINITY_LLAMA_CPP_DIR")
    if env:
        p = Path(env)
        if not (p / "convert_hf_to_gguf.py").is_file():
            raise StudioError(f"TRINITY_LLAMA_CPP_DIR={env} holds no convert_hf_to_gguf.py.",
                              "Point it at a llama.cpp folder, or unset it to use the pinned copy.")
        return p
    tools = workspace.root() / "tools"
    target = tools / f"llama.cpp-{LLAMA_CPP_PYTHON}"
    if (target / _DONE).is_file():
        return target
    sdist = tools / SDIST
    if not sdist.is_file():
        _notify(progress, f"fetching llama-cpp-python {LLAMA_CPP_PYTHON} source from PyPI (77 MB, once)")
        fetch_sdist(tools)
    _notify(progress, "unpacking llama.cpp's converter")
    unpack_converter(sdist, target)
    return target


def fetch_sdist(dest: Path) -> Path:
    """pip download of the pinned sdist (the registry is the only place anything comes from)."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sdist.", dir=dest) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
               f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "-d", tmp, "-q"]
        res = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / SDIST
        if res.returncode != 0 or not got.is_file():
            raise StudioError(f"Could not fetch llama-cpp-python {LLAMA_CPP_PYTHON} from PyPI: "
                              f"{(res.stderr or res.stdout).strip()[-400:]}",
                              f"Check the connection to pypi.org, or copy {SDIST} into {dest} by hand.")
        os.replace(got, dest / SDIST)
    return dest / SDIST


def unpack_converter(sdist: Path, target: Path) -> Path:
    """Extracts only the converter, its conversion package and gguf-py (regular files, no links)."""
    with atomic_dir(target) as tmp, tarfile.open(sdist, "r:gz") as tar:
        for m in tar.getmembers():
            if not m.isfile() or not m.name.startswith(_VENDOR):
                continue
            rel = m.name[len(_VENDOR):]
            if ".." in Path(rel).parts or not any(rel == n or (n.endswith("/") and rel.startswith(n))
                                                  for n in _NEEDED):
                continue
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            with tar.extractfile(m) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
        if not (tmp / "convert_hf_to_gguf.py").is_file():
            raise StudioError(f"{sdist} holds no vendor/llama.cpp/convert_hf_to_gguf.py.",
                              f"Delete it so the studio fetches llama-cpp-python {LLAMA_CPP_PYTHON} again.")
        (tmp / _DONE).write_text(LLAMA_CPP_PYTHON + "\n")
    return target


# --------------------------------------------------------------------- preparing the merged folder
def _converter_name(key: str) -> str:
    """transformers 5 saves Gemma 3's SigLIP weights as `vision_tower.<x>`; llama.cpp's converter maps
    `vision_tower.vision_model.<x>`. Text and projector names are left alone."""
    if key.startswith("model.") and key[6:].startswith(("vision_tower.", "multi_modal_projector.")):
        key = key[6:]
    if key.startswith("vision_tower.") and not key.startswith("vision_tower.vision_model."):
        key = "vision_tower.vision_model." + key[len("vision_tower."):]
    return key


def converter_source(merged_dir: Path, dest: Path) -> Path:
    """A copy of the merged folder the converter accepts: weights renamed (per shard, so memory stays
    one shard), everything else copied. The user's folder is never touched."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    if not (merged_dir / "tokenizer.model").is_file():
        raise StudioError("The merged model has no SentencePiece tokenizer.model, which llama.cpp's Gemma 3 "
                          "converter needs.", "Export again; the export copies it from the base model.")
    dest.mkdir(parents=True, exist_ok=True)
    for f in merged_dir.iterdir():
        if f.suffix == ".safetensors":
            with safe_open(str(f), "pt") as fh:
                tensors = {_converter_name(k): fh.get_tensor(k) for k in fh.keys()}
                meta = fh.metadata() or {"format": "pt"}
            save_file(tensors, str(dest / f.name), metadata=meta)
            del tensors
        elif f.name == "model.safetensors.index.json":
            index = json.loads(f.read_text(encoding="utf-8"))
            index["weight_map"] = {_converter_name(k): v for k, v in index.get("weight_map", {}).items()}
            (dest / f.name).write_text(json.dumps(index, indent=2))
        elif f.is_file():
            shutil.copy2(f, dest / f.name)
    _restore_added_tokens(dest)
    return dest


def _restore_added_tokens(folder: Path) -> None:
    """The converter types Gemma's special tokens (<start_of_turn>, <start_of_image>, ...) from
    tokenizer_config.json's `added_tokens_decoder`, which transformers 5 no longer writes; without it
    they become ordinary text pieces in the GGUF and llama.cpp spells them out letter by letter. The
    same entries are rebuilt here from tokenizer.json's `added_tokens`."""
    import json

    cfg_path, tok_path = folder / "tokenizer_config.json", folder / "tokenizer.json"
    if not cfg_path.is_file() or not tok_path.is_file():
        return
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if cfg.get("added_tokens_decoder"):
        return
    added = json.loads(tok_path.read_text(encoding="utf-8")).get("added_tokens") or []
    cfg["added_tokens_decoder"] = {
        str(t["id"]): {k: t.get(k, d) for k, d in (("content", ""), ("lstrip", False), ("normalized", False),
                                                    ("rstrip", False), ("single_word", False), ("special", False))}
        for t in added if "id" in t and "content" in t}
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))


# ------------------------------------------------------------------------------ convert, quantize
def convert(src: Path, outfile: Path, mmproj: bool, outtype: str = "f16", progress=None) -> Path:
    """Runs convert_hf_to_gguf.py in a subprocess (a converter crash cannot take the studio down)."""
    script = converter_dir(progress) / "convert_hf_to_gguf.py"
    cmd = [sys.executable, str(script), str(src), "--outfile", str(outfile), "--outtype", outtype]
    if mmproj:
        cmd.append("--mmproj")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.pop("NO_LOCAL_GGUF", None)  # the converter must use its own gguf-py, not another version
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as proc:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("INFO:hf-to-gguf:") and "-->" not in line and progress:  # not per tensor
                _notify(progress, line.strip()[len("INFO:hf-to-gguf:"):][:120])
        rc = proc.wait()
    if rc != 0 or not outfile.is_file():
        tail = "\n".join(lines[-12:])
        raise StudioError(f"llama.cpp's converter failed ({'mmproj' if mmproj else 'text'} part):\n{tail}",
                          "The model folder may not be a Gemma 3 model this llama.cpp version supports.")
    return outfile


def fix_layer_pattern(text_gguf: Path, config: dict) -> bool:
    """Writes Gemma 3's real sliding/global layer layout into the text GGUF when it differs from the
    one llama.cpp assumes (every 6th layer global). The converter does not record `layer_types`, so a
    model with another layout (the demo model: sliding, global) would run its global layers with the
    local rope base and window. Returns True when the file was rewritten."""
    tc = config.get("text_config") or config
    layers = tc.get("layer_types") or []
    swa = [t == "sliding_attention" for t in layers]
    if not swa or swa == [i % 6 < 5 for i in range(len(swa))]:
        return False
    gguf = gguf_reader()
    reader = gguf.GGUFReader(str(text_gguf))
    arch = reader.fields["general.architecture"].contents()
    tmp = text_gguf.with_name(text_gguf.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == "general.architecture" or field.name.startswith("GGUF."):
            continue  # the writer adds these itself
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    writer.add_sliding_window_pattern(swa)
    for t in reader.tensors:
        writer.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for t in reader.tensors:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()
    del reader
    os.replace(tmp, text_gguf)
    return True


def llama_cpp_available() -> str | None:
    """None when llama_cpp (llama-cpp-python with libmtmd) imports, else why not."""
    try:
        import llama_cpp  # noqa: F401
        import llama_cpp.mtmd_cpp  # noqa: F401
    except Exception as e:  # ImportError, or OSError when the shared library does not load
        return f"llama-cpp-python is not importable ({type(e).__name__}: {e})"
    return None


def quantize(src: Path, dst: Path, quant: str) -> Path:
    """llama.cpp's quantizer (text model only; rows whose width is not a multiple of 256 fall back to
    a type that fits, as llama-quantize does)."""
    why = llama_cpp_available()
    if why:
        raise StudioError(f"Quantizing to {quant} needs llama.cpp: {why}.", INSTALL_HINT + " Or export f16/q8_0.")
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTS[quant])
    params.nthread = os.cpu_count() or 1
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not dst.is_file():
        raise StudioError(f"llama.cpp could not quantize the model to {quant} (code {rc}).", "Try q8_0 or f16.")
    return dst


# -------------------------------------------------------------------------------------- read back
def gguf_reader():
    """gguf-py from the same converter folder (the PyPI `gguf` may be another version)."""
    path = str(converter_dir() / "gguf-py")
    if path not in sys.path:
        sys.path.insert(0, path)
    import gguf

    return gguf


def describe(path: Path) -> dict:
    """Architecture, tensor count, file type and a few keys, read with gguf-py."""
    gguf = gguf_reader()
    r = gguf.GGUFReader(str(path))

    def val(key):
        f = r.fields.get(key)
        return None if f is None else f.contents()

    types: dict[str, int] = {}
    for t in r.tensors:
        types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
    arch = val("general.architecture")
    info = {"file": path.name, "bytes": path.stat().st_size, "architecture": arch, "n_tensors": len(r.tensors),
            "tensor_types": types, "file_type": val("general.file_type")}
    if arch == "clip":
        info.update(projector_type=val("clip.projector_type"), has_vision=val("clip.has_vision_encoder"),
                    image_size=val("clip.vision.image_size"))
    else:
        info.update(n_layers=val(f"{arch}.block_count"), context=val(f"{arch}.context_length"),
                    has_chat_template=val("tokenizer.chat_template") is not None)
    return info


# ------------------------------------------------------------------------- answering with llama.cpp
def answer_images(text_gguf: Path, mmproj: Path, samples: list[tuple], max_tokens: int = 24) -> list[dict]:
    """Greedy answers from llama.cpp (text GGUF + mmproj through its multimodal chat handler).

    Each answer carries the generated token ids (stop token included) and the log-probabilities of
    the first step, recorded by a logits processor, so it can be compared with transformers."""
    why = llama_cpp_available()
    if why:
        raise StudioError(f"Cannot verify the GGUF files: {why}.", INSTALL_HINT)
    import base64
    import io

    import numpy as np
    from llama_cpp import Llama

    handler = _gemma_handler()(clip_model_path=str(mmproj), verbose=False)
    llm = Llama(model_path=str(text_gguf), chat_handler=handler, n_ctx=2048, n_threads=os.cpu_count() or 1,
                n_gpu_layers=0, verbose=False, seed=0)
    answers = []
    try:
        for image, prompt in samples:
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
            steps: list[np.ndarray] = []

            def record(_ids, logits):
                steps.append(np.array(logits, dtype=np.float32))
                return logits

            messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                     {"type": "text", "text": prompt}]}]
            res = llm.create_chat_completion(messages=messages, temperature=0.0, top_k=1, repeat_penalty=1.0,
                                             max_tokens=max_tokens, logits_processor=[record])
            first = steps[0].astype(np.float64) if steps else np.zeros(1)
            first = first - np.log(np.exp(first - first.max()).sum()) - first.max()
            answers.append({"text": res["choices"][0]["message"]["content"] or "",
                            "tokens": [int(s.argmax()) for s in steps],
                            "prompt_tokens": int(res["usage"]["prompt_tokens"]),
                            "image_prompt": handler.last_text, "first_logprobs": first.tolist()})
    finally:
        llm.close()
    return answers


def _gemma_handler():
    """MTMDChatHandler whose prompt matches transformers' Gemma 3 processor token for token: the
    processor writes "\n\n" before <start_of_image> and after <end_of_image> (mtmd adds those two
    markers itself), and the tokenizer adds <bos>, so the template's own <bos> is dropped."""
    from llama_cpp.llama_chat_format import MTMDChatHandler

    class GemmaMTMDHandler(MTMDChatHandler):
        last_text = ""

        def _postprocess_template_text(self, text, image_urls, media_marker):
            text = super()._postprocess_template_text(text, image_urls, media_marker)
            text = text.replace(media_marker, f"\n\n{media_marker}\n\n")
            text = text[len("<bos>"):] if text.startswith("<bos>") else text
            self.last_text = text
            return text

    return GemmaMTMDHandler


def _notify(progress, message: str) -> None:
    if progress:
        progress(None, message)
