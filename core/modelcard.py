"""Text written next to exported models: the model card (README.md), the Ollama Modelfile and the
commands that use it, and the plain statement about TensorFlow.js."""
from __future__ import annotations

import json
from pathlib import Path

from core import decoding

# Shown by the Export tab instead of a button that could only fail.
TFJS_NOTE = (
    "TensorFlow.js export is not offered: transformers 5 has no TensorFlow implementation of Gemma 3 "
    "(its TF model classes were removed), so there is no TF graph to convert to TF.js. For running on "
    "a device use the GGUF export (llama.cpp, Ollama, LM Studio); ONNX is the other route, but no "
    "exporter for Gemma 3's vision + text model was tested here."
)

# Gemma 3's turn format as an Ollama (Go) template: system text goes in a user turn, the assistant
# role is "model", and a turn ends with <end_of_turn>. Images are placed by Ollama itself.
GEMMA3_OLLAMA_TEMPLATE = """{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if or (eq .Role "user") (eq .Role "system") }}<start_of_turn>user
{{ .Content }}<end_of_turn>
{{ if $last }}<start_of_turn>model
{{ end }}
{{- else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}{{ if not $last }}<end_of_turn>
{{ end }}
{{- end }}
{{- end }}"""

OLLAMA_VISION_CAVEAT = (
    "Ollama was not run here (it cannot be installed on this machine). Ollama takes the projector as a "
    "second FROM line, but its own Gemma 3 engine has been reported to drop vision from a separate "
    "mmproj file (ollama/ollama#9967); if `ollama show` lists no vision capability, create the model "
    "from the merged folder instead (`python -m core export --format merged`, then `FROM <that folder>`), "
    "which Ollama converts itself. llama.cpp (llama-server -m MODEL --mmproj MMPROJ) uses both files "
    "as they are; that is the path the export checks when llama-cpp-python is installed (see its verdict)."
)


def system_line(task) -> str:
    """The system prompt of exported models: the task's own (Task.system_prompt; a Task or its name)."""
    from core.tasks import all_tasks
    from core.tasks.base import DEFAULT_SYSTEM

    if isinstance(task, str) or task is None:
        task = all_tasks().get(task or "")
    return getattr(task, "system_prompt", None) or DEFAULT_SYSTEM


def _generate_kwargs(task) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in decoding.generation_settings(task).items())


def modelfile(gguf_name: str, mmproj_name: str, task) -> str:
    """An Ollama Modelfile next to the two GGUF files (paths relative to the Modelfile), decoding as
    the studio does (core/decoding.py)."""
    system = system_line(task).replace('"""', "'''")
    lines = [f"FROM ./{gguf_name}", f"FROM ./{mmproj_name}",
             f'TEMPLATE """{GEMMA3_OLLAMA_TEMPLATE}"""',
             'PARAMETER stop "<end_of_turn>"', 'PARAMETER stop "<eos>"']
    # the decoding the studio scored with (the task's generation preset), not Ollama's defaults
    lines += [f"PARAMETER {k} {v}" for k, v in decoding.ollama_parameters(task).items()]
    lines.append(f'SYSTEM """{system}"""')
    return "\n".join(lines) + "\n"


def ollama_name(run_name: str, quant: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in run_name.lower()).strip("-.") or "model"
    return f"trinity-{safe}:{quant}"


def ollama_commands(out_dir: Path, name: str, image_hint: str = "./photo.png") -> list[str]:
    return [f'cd "{out_dir}" && ollama create {name} -f Modelfile',
            f'ollama run {name} "Read this image. {image_hint}"']


def _config_rows(cfg: dict) -> list[str]:
    keys = ["model_id", "task", "method", "lora_r", "lora_alpha", "lora_dropout", "use_dora", "use_rslora",
            "target_modules", "finetune_vision_layers", "load_in_4bit", "learning_rate", "batch_size",
            "gradient_accumulation_steps", "num_epochs", "max_steps", "precision", "seed"]
    if cfg.get("method") == "full":  # the LoRA settings were not used
        keys = [k for k in keys if not k.startswith(("lora_", "use_dora", "use_rslora", "target_modules"))]
    return [f"| {k} | {json.dumps(cfg[k])} |" for k in keys if k in cfg]


def _load_snippet(kind: str, base: str, files: dict) -> str:
    if kind == "adapter":
        return ("```python\nfrom transformers import AutoModelForImageTextToText, AutoProcessor\n"
                "from peft import PeftModel\n\n"
                f'base = AutoModelForImageTextToText.from_pretrained("{base}")\n'
                'model = PeftModel.from_pretrained(base, "PATH/TO/THIS/FOLDER")\n'
                'processor = AutoProcessor.from_pretrained("PATH/TO/THIS/FOLDER")\n```')
    if kind == "merged":
        return ("```python\nfrom transformers import AutoModelForImageTextToText, AutoProcessor\n\n"
                'model = AutoModelForImageTextToText.from_pretrained("PATH/TO/THIS/FOLDER")\n'
                'processor = AutoProcessor.from_pretrained("PATH/TO/THIS/FOLDER")\n```')
    return ("```bash\nllama-server -m {gguf} --mmproj {mmproj}\n"
            "# or: ollama create NAME -f Modelfile  (see the Ollama note below)\n```").format(**files)


def model_card(kind: str, run_name: str, cfg: dict, base_source: str, dataset: dict | None,
               eval_summaries: list[dict], files: dict | None = None, notes: list[str] | None = None,
               full_finetune: bool = False, task=None) -> str:
    """README.md for an export of kind adapter | merged | gguf (full_finetune: every weight was trained,
    there was no adapter). task: the configured Task (a json dataset's schema sets its answer cap);
    default: the run's task by name."""
    base = cfg.get("model") or cfg.get("model_id") or "?"
    task_obj = task if task is not None else cfg.get("task")
    lib = "peft" if kind == "adapter" else ("transformers" if kind == "merged" else "gguf")
    out = ["---", f"base_model: {base}", f"library_name: {lib}",
           "tags: [gemma3, vision-language, trinity-studio" + (", lora]" if kind == "adapter" else "]"), "---", "",
           f"# {run_name} ({kind})", "",
           {"adapter": "A LoRA adapter (standard PEFT folder) for the base model below, trained with Trinity Studio.",
            "merged": ("A full fine-tune of the base model below (every weight trained, no adapter), saved in "
                       "16-bit (or the base checkpoint's own precision when that is higher)." if full_finetune else
                       "The base model with the LoRA adapter merged into its full-precision weights "
                       "(never into quantized ones)."),
            "gguf": "llama.cpp GGUF files converted with llama.cpp's own converter: the text model and its "
                    "vision projector (mmproj)."}[kind], "",
           "## Base model", "", f"- id: `{base}`", f"- loaded from: `{base_source}`", "",
           "## Task and data", "", f"- task: `{cfg.get('task', '?')}`"]
    if dataset:
        out.append(f"- dataset: `{dataset.get('name')}` ({dataset.get('total', '?')} images; "
                   f"splits {json.dumps(dataset.get('split', {}))}; status {json.dumps(dataset.get('status', {}))})")
    else:
        out.append(f"- dataset: `{cfg.get('dataset') or '?'}` (not found on this machine at export time)")
    out += ["", "## Decoding", "",
            f"- {decoding.describe(task_obj)}: what Compare, Evaluate and the API used to score this run.",
            f"- transformers: `model.generate(**inputs, {_generate_kwargs(task_obj)})`"]
    if kind == "gguf":
        params = " · ".join(f"`{k} {v}`" for k, v in decoding.ollama_parameters(task_obj).items())
        out.append(f"- the Modelfile sets the same: {params}")
    out += ["", "## Training configuration", "", "| setting | value |", "| --- | --- |", *_config_rows(cfg), ""]
    out += ["## Evaluation", ""]
    if eval_summaries:
        from core.evaluate import format_summary

        for s in eval_summaries:
            try:
                out += ["```", format_summary(s), "```", ""]
            except (KeyError, TypeError):
                out += ["```json", json.dumps(s, indent=2)[:2000], "```", ""]
    else:
        out += ["No evaluation was run for this run before export.", ""]
    out += ["## How to load", "", _load_snippet(kind, base_source, files or {}), ""]
    for note in notes or []:
        out += [f"> {note}", ""]
    return "\n".join(out)
