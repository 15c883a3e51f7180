"""TrainConfig: everything a training run needs, as plain data (saved as RUN/config.json).

One dataclass with help text per field (read by the CLI and the Train tab), presets for the two
seed documents, `--set key=value` overrides, and a validation step that fails before launch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import StudioError
from core.fsutil import atomic_write_json
from core.training.hardware import Hardware

METHODS = ("lora", "full")
OPTIMIZERS = ("auto", "adamw_torch", "adamw_8bit", "paged_adamw_8bit", "adafactor", "sgd")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt")
BACKENDS = ("auto", "hf", "unsloth")
SWITCHES = ("auto", "on", "off")
EVAL_POINTS = 10  # eval_steps=-1: about this many eval-loss points per run


def _f(default, help: str, **kw):
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    # --- what to train on
    model_id: str = _f("demo", "Base model: a registry id ('demo', 'gemma-3-4b', ...) or a Hugging Face hub id.")
    task: str = _f("", "Task that turns a record into prompt and target text (empty: the dataset's own task).")
    dataset: str = _f("", "Dataset folder (holds dataset.json and records.jsonl).")
    train_split: str = _f("train", "Split trained on.")
    eval_split: str = _f("val", "Split evaluated on every eval_steps (skipped when that split is empty).")
    image_size: int | None = _f(None, "Side in pixels images are resized to before the processor; empty = the model's native input size.")
    max_seq_length: int = _f(1024, "Longest tokenized example (prompt + image tokens + answer); longer ones are truncated and counted.")
    # --- method
    method: str = _f("lora", "'lora' trains a small adapter (LoRA/DoRA/rsLoRA); 'full' trains every weight (small models).")
    lora_r: int = _f(16, "LoRA rank: size of the adapter matrices. Higher learns more, costs more memory.")
    lora_alpha: int = _f(16, "LoRA scaling numerator (scale = alpha / r, or alpha / sqrt(r) with rsLoRA).")
    lora_dropout: float = _f(0.0, "Dropout on the adapter's input, 0 to 1.")
    target_modules: list[str] = _f(["all-linear"], "Layers that get adapters: 'all-linear' or layer names (q_proj, v_proj, ...), within the parts chosen below.")
    finetune_language_layers: bool = _f(True, "Put adapters on the language model.")
    finetune_vision_layers: bool = _f(False, "Put adapters on the vision tower and its projector too.")
    finetune_attention_modules: bool = _f(True, "Adapt attention projections (q/k/v/o).")
    finetune_mlp_modules: bool = _f(True, "Adapt MLP projections (gate/up/down, fc1/fc2).")
    use_dora: bool = _f(False, "DoRA: weight-decomposed LoRA (learns a magnitude too; slower, often better).")
    use_rslora: bool = _f(False, "rsLoRA: scale by alpha/sqrt(r), which keeps high ranks stable.")
    train_answer_tokens: bool = _f(False, "LoRA also trains the embedding rows of the answers' tokens (PEFT trainable "
                                          "tokens): for a base that never wrote the format's tokens, like the demo "
                                          "base. transformers+PEFT path.")
    load_in_4bit: bool = _f(False, "QLoRA: load the frozen base in 4-bit nf4 (bitsandbytes, needs CUDA).")
    double_quant: bool = _f(True, "Quantize the 4-bit scales too (saves ~0.4 bit per weight).")
    # --- optimisation
    batch_size: int = _f(1, "Examples per device per step.")
    gradient_accumulation_steps: int = _f(4, "Steps whose gradients add up before one optimizer update.")
    learning_rate: float = _f(2e-4, "Peak learning rate.")
    lr_scheduler: str = _f("linear", "Learning-rate schedule after warmup: " + ", ".join(SCHEDULERS) + ".")
    warmup_ratio: float = _f(0.03, "Share of the total steps spent warming the learning rate up, 0 to 1.")
    num_epochs: float = _f(1.0, "Passes over the training split (used when max_steps is -1).")
    max_steps: int = _f(-1, "Optimizer updates to run; -1 = use num_epochs.")
    weight_decay: float = _f(0.0, "Decoupled weight decay.")
    max_grad_norm: float = _f(1.0, "Gradients are clipped to this norm; 0 = no clipping.")
    optimizer: str = _f("auto", "'auto' = adamw_8bit with bitsandbytes on CUDA, else adamw_torch.")
    precision: str = _f("auto", "'auto' = bf16 where the GPU has it, fp16 on older GPUs, fp32 on CPU.")
    gradient_checkpointing: bool = _f(True, "Recompute activations in the backward pass: much less memory, ~30% slower.")
    # --- bookkeeping
    logging_steps: int = _f(1, "Write a log event every N optimizer steps.")
    eval_steps: int = _f(-1, "Evaluate on eval_split every N steps; -1 = about 10 times per run (every max_steps / 10 "
                             "steps, and at the end); 0 = only at the end.")
    save_steps: int = _f(50, "Save a checkpoint every N steps (stop/resume restarts from the last one).")
    save_total_limit: int = _f(2, "Checkpoints kept on disk (older ones are deleted).")
    seed: int = _f(3407, "Random seed (data order, adapter init).")
    gpus: int = _f(1, "GPUs to train on (more than 1 runs under accelerate launch).")
    backend: str = _f("auto", "'auto' = Unsloth when CUDA and unsloth import, else transformers+PEFT+TRL.")
    # Off by default until the GPU A/B (bench/gpu_speed.py --plan seeds, its liger pair) shows it pays.
    liger_kernel: str = _f("off", "Liger Kernel's Triton RMSNorm / GEGLU / RoPE on the transformers+PEFT path: "
                                  "'auto' = on for Gemma 3 on CUDA when liger-kernel is installed; 'on' also makes "
                                  "backend=auto take that path; 'off' (the default until it is measured).")

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        if not isinstance(data, dict):
            raise StudioError("A training config must be a JSON object.", "Start from `python -m core train --help` or a preset.")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise StudioError(f"Unknown config key(s): {', '.join(unknown)}.", f"Known keys: {', '.join(FIELDS)}.")
        cfg = cls()
        for key, value in data.items():
            setattr(cfg, key, _coerce(key, value))
        return cfg

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise StudioError(f"No config file at {p}.", "Create the run with `python -m core train --dataset DIR`.") from None
        except json.JSONDecodeError as e:
            raise StudioError(f"{p} is not valid JSON (line {e.lineno}, column {e.colno}).", "Fix the file or recreate the run.") from None
        return cls.from_dict(data)

    def config_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def apply_overrides(self, pairs: list[str]) -> "TrainConfig":
        """In place: each 'key=value' sets one field with its type ('a,b' for lists; 'none' clears)."""
        for pair in pairs or []:
            key, sep, raw = pair.partition("=")
            key = key.strip()
            if not sep or not key:
                raise StudioError(f"Override '{pair}' is not key=value.", "Example: --set max_steps=10")
            if key not in FIELDS:
                near = [k for k in FIELDS if key.lower() in k or k in key.lower()]
                raise StudioError(f"Unknown config key '{key}'.",
                                  f"Did you mean {', '.join(near)}?" if near else f"Known keys: {', '.join(FIELDS)}.")
            setattr(self, key, _parse(key, raw.strip()))
        return self

    # ---------------------------------------------------------------- resolved choices
    def resolved_optimizer(self, hw: Hardware) -> str:
        if self.optimizer != "auto":
            return self.optimizer
        return "adamw_8bit" if hw.cuda and hw.bitsandbytes else "adamw_torch"

    def resolved_precision(self, hw: Hardware) -> str:
        if self.precision != "auto":
            return self.precision
        if not hw.cuda:
            return "fp32"
        return "bf16" if hw.bf16 else "fp16"

    def resolved_backend(self, hw: Hardware) -> str:
        """'auto' takes Unsloth on one CUDA GPU when it imports, except for Gemma 3n, whose first
        Unsloth step compiled for over 7 minutes on an H100 without finishing, and except for DoRA,
        which skips Unsloth's fast LoRA kernels (Trinity 4B b1 on one H100, 2026-12-08: 0.617 s/step
        on Unsloth after a 96 s first-step compile, 0.574 s on hf; bench/RESULTS.md)."""
        if self.backend != "auto":
            return self.backend
        if self.liger_kernel == "on" or self.train_answer_tokens:  # both are the transformers model's
            return "hf"
        if not (hw.cuda and hw.unsloth and self.gpus == 1 and self.method == "lora" and not self.use_dora):
            return "hf"
        from core import models
        try:
            family = models.get_model_info(self.model_id).family
        except StudioError:
            return "hf"
        return "hf" if family == "gemma3n" else "unsloth"

    def resolved_liger(self, hw: Hardware, backend: str) -> bool:
        """Liger's kernels on this run: only on the hf path; 'auto' = Gemma 3 (liger-kernel 0.8.5 has
        no Gemma 3n kernels) on CUDA (Triton) with liger-kernel installed."""
        if self.liger_kernel == "off" or backend != "hf":
            return False
        if self.liger_kernel == "on":
            return True
        if not (hw.cuda and hw.liger):
            return False
        from core import models
        try:
            return models.get_model_info(self.model_id).family == "gemma3"
        except StudioError:
            return False

    def planned_steps(self, n_train: int, world: int = 1) -> int:
        """Optimizer steps the run will take: max_steps, or num_epochs over n_train examples."""
        if self.max_steps > 0:
            return self.max_steps
        per_epoch = math.ceil(math.ceil(max(1, n_train) / (self.batch_size * max(1, world))) / self.gradient_accumulation_steps)
        return max(1, math.ceil(per_epoch * self.num_epochs))

    def resolved_eval_steps(self, total_steps: int) -> int | None:
        """Steps between evaluations (None: only at the end): eval_steps, or for -1 about EVAL_POINTS
        evaluations over the run's total_steps."""
        if self.eval_steps == 0:
            return None
        if self.eval_steps > 0:
            return self.eval_steps
        return max(1, math.ceil(max(1, total_steps) / EVAL_POINTS))

    # ---------------------------------------------------------------- validation
    def validate(self, hw: Hardware) -> None:
        """Raises StudioError on the first invalid value or combination for this hardware."""
        for key in FIELDS:
            _coerce(key, getattr(self, key))  # types (a hand-edited config.json may hold strings)
        _choice("method", self.method, METHODS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("precision", self.precision, PRECISIONS)
        _choice("lr_scheduler", self.lr_scheduler, SCHEDULERS)
        _choice("backend", self.backend, BACKENDS)
        _choice("liger_kernel", self.liger_kernel, SWITCHES)
        if self.liger_kernel == "on":
            if self.backend == "unsloth":
                raise StudioError("liger_kernel=on applies to the transformers+PEFT path, not to backend=unsloth "
                                  "(Unsloth has its own kernels).", "Use backend=auto or hf with liger_kernel=on, "
                                                                    "or liger_kernel=auto.")
            if not hw.cuda:
                raise StudioError("liger_kernel=on needs a CUDA GPU (its kernels are Triton); this machine has none.",
                                  "Use liger_kernel=auto (off on CPU) or off.")
            if not hw.liger:
                raise StudioError("liger_kernel=on but liger-kernel is not installed.",
                                  "pip install -r requirements-gpu.txt (liger-kernel==0.8.5), or use liger_kernel=auto.")
        if self.train_answer_tokens and self.backend == "unsloth":
            raise StudioError("train_answer_tokens runs on the transformers+PEFT path, not on backend=unsloth.",
                              "Use backend=auto or hf, or turn train_answer_tokens off.")
        if self.learning_rate <= 0 or self.learning_rate > 1:
            _bad("learning_rate", self.learning_rate, "Use a positive value such as 2e-4 (LoRA) or 5e-5 (full).")
        for key in ("batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps", "gpus",
                    "max_seq_length", "save_total_limit"):
            if getattr(self, key) < 1:
                _bad(key, getattr(self, key), "It must be 1 or more.")
        if self.eval_steps < -1:
            _bad("eval_steps", self.eval_steps, "Use -1 (about 10 evaluations per run), 0 (at the end only) or a "
                                                "positive step count.")
        if not 0 <= self.lora_dropout < 1:
            _bad("lora_dropout", self.lora_dropout, "Use a value from 0 to 0.5.")
        if not 0 <= self.warmup_ratio < 1:
            _bad("warmup_ratio", self.warmup_ratio, "Use a share of the steps from 0 to 0.5, e.g. 0.03.")
        if self.weight_decay < 0:
            _bad("weight_decay", self.weight_decay, "Use 0 or a small positive value such as 0.01.")
        if self.max_grad_norm < 0:
            _bad("max_grad_norm", self.max_grad_norm, "Use 0 (no clipping) or a positive value such as 1.0.")
        if self.max_steps == 0 or self.max_steps < -1:
            _bad("max_steps", self.max_steps, "Use -1 (train for num_epochs) or a positive step count.")
        if self.max_steps == -1 and self.num_epochs <= 0:
            _bad("num_epochs", self.num_epochs, "Train for at least a fraction of an epoch, or set max_steps.")
        if self.image_size is not None and not 16 <= self.image_size <= 4096:
            _bad("image_size", self.image_size, "Leave it empty for the model's native size, or use 16-4096 pixels.")
        if self.method == "lora":
            if self.lora_r < 1:
                _bad("lora_r", self.lora_r, "The LoRA rank must be 1 or more (8-64 are typical).")
            if self.lora_alpha <= 0:
                _bad("lora_alpha", self.lora_alpha, "Use a positive alpha, e.g. equal to the rank.")
            if not self.target_modules:
                raise StudioError("No target modules: the adapter would train nothing.",
                                  "Use target_modules=all-linear or name layers such as q_proj,v_proj.")
            if not (self.finetune_language_layers or self.finetune_vision_layers):
                raise StudioError("Neither language nor vision layers are selected: the adapter would train nothing.",
                                  "Turn on finetune_language_layers and/or finetune_vision_layers.")
            if not (self.finetune_attention_modules or self.finetune_mlp_modules):
                raise StudioError("Neither attention nor MLP modules are selected: the adapter would train nothing.",
                                  "Turn on finetune_attention_modules and/or finetune_mlp_modules.")
        elif self.load_in_4bit:
            raise StudioError("A full fine-tune cannot train 4-bit weights.", "Use method=lora for QLoRA, or turn load_in_4bit off.")
        if not self.dataset:
            raise StudioError("No dataset chosen.", "Pick a dataset folder (--dataset DIR).")
        if not hw.cuda:
            if self.load_in_4bit:
                raise StudioError("4-bit (QLoRA) loading needs a CUDA GPU; this machine has none.",
                                  "Turn load_in_4bit off to train in 32-bit on CPU, or run on a GPU machine.")
            if self.precision in ("bf16", "fp16"):
                raise StudioError(f"precision={self.precision} needs a GPU here.", "Use precision=auto (fp32 on CPU).")
            if self.resolved_optimizer(hw) in ("adamw_8bit", "paged_adamw_8bit"):
                raise StudioError("8-bit optimizers need bitsandbytes on a CUDA GPU.", "Use optimizer=auto or adamw_torch.")
            if self.backend == "unsloth":
                raise StudioError("Unsloth needs a CUDA GPU.", "Use backend=auto or hf on CPU.")
            if self.gpus > 1:
                raise StudioError(f"gpus={self.gpus} but this machine has no GPU.", "Use gpus=1.")
        else:
            if self.load_in_4bit and not hw.bitsandbytes:
                raise StudioError("4-bit loading needs bitsandbytes, which is not installed.", "pip install bitsandbytes, or turn load_in_4bit off.")
            if self.precision == "bf16" and not hw.bf16:
                raise StudioError(f"{hw.gpu_name} has no bf16.", "Use precision=auto (fp16 on this GPU).")
            if self.backend == "unsloth" and not hw.unsloth:
                raise StudioError("backend=unsloth but unsloth is not installed.", "pip install unsloth, or use backend=auto.")
            if self.backend == "unsloth" and (self.gpus > 1 or self.method != "lora"):
                raise StudioError("The Unsloth backend trains LoRA adapters on one GPU here.",
                                  "Use backend=hf (or auto) for several GPUs or a full fine-tune.")
            if self.gpus > hw.gpu_count:
                raise StudioError(f"gpus={self.gpus} but {hw.gpu_count} GPU(s) are visible.", f"Use gpus={hw.gpu_count} or fewer.")
        _check_model(self.model_id, hw)


# ---------------------------------------------------------------------- presets / defaults
# The two seed documents, as overrides on the defaults; numbers exactly as the issue states them.
PRESETS: dict[str, dict] = {
    "Ghost Architect (T4)": {
        "model_id": "google/gemma-3-12b-it", "task": "ui2sql", "load_in_4bit": True, "double_quant": True,
        "method": "lora", "lora_r": 64, "use_dora": True, "use_rslora": True,
        "batch_size": 1, "gradient_accumulation_steps": 4,
    },
    "Keylike": {
        "model_id": "google/gemma-3n-E4B-it", "task": "keys", "load_in_4bit": True, "method": "lora",
        "lora_r": 32, "lora_alpha": 32, "lora_dropout": 0.05,
        "finetune_vision_layers": True, "finetune_language_layers": True,
        "batch_size": 1, "gradient_accumulation_steps": 8, "learning_rate": 1e-4, "lr_scheduler": "cosine",
        "warmup_ratio": 0.05, "num_epochs": 2.0, "max_steps": -1, "optimizer": "adamw_8bit",
        "weight_decay": 0.01, "max_grad_norm": 1.0, "seed": 3407, "eval_steps": 25,
    },
}


def preset(name: str, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise StudioError(f"Unknown preset '{name}'.", f"Presets: {', '.join(PRESETS)}.")
    return TrainConfig.from_dict({**PRESETS[name], **overrides})


# The demo base (assets/demo/base) already sees; a LoRA adapter on its language layers only has
# to learn a task's answer format and mapping. Per task, measured on the 2-core CPU box
# (bench/RESULTS.md, "Demo base"): steps that fit about 3 minutes there and reach the goals.
# method=full stays an option (--set method=full): it trains every weight at the same lr.
# train_answer_tokens: the base never wrote the tasks' format tokens ("{", "BRAND", "CREATE"), and
# LoRA cannot reach their (tied) embedding rows; without them the json task's answers never opened
# a "{" (valid 0.00) and keys wrote "pppp:" for "BRAND:" (bench/RESULTS.md, "Demo base").
DEMO_RECIPE: dict = {
    "method": "lora", "lora_r": 16, "lora_alpha": 32, "learning_rate": 2e-3, "lr_scheduler": "cosine",
    "finetune_vision_layers": True, "train_answer_tokens": True,
    "batch_size": 8, "gradient_accumulation_steps": 1, "max_steps": 300, "warmup_ratio": 0.05,
    "max_seq_length": 1024, "gradient_checkpointing": False, "save_steps": 100, "logging_steps": 10,
}


def demo_recipe(task: str | None = None) -> dict:
    """The demo model's defaults for a task: the shared recipe with the task's own overrides."""
    if not task:
        return dict(DEMO_RECIPE)
    from core.tasks import get_task  # the task owns its overrides (core/tasks/*: demo_recipe)

    return {**DEMO_RECIPE, **getattr(get_task(task), "demo_recipe", {})}


def default_config(model_id: str = "demo", hardware: Hardware | None = None, task: str | None = None,
                   **overrides) -> TrainConfig:
    """Sensible defaults for this model (and task) on this hardware. The demo model gets its
    per-task LoRA recipe (demo_recipe), which learns in a few minutes on a CPU."""
    from core.training.hardware import detect
    hw = hardware or detect()
    cfg = TrainConfig(model_id=model_id)
    if task:
        cfg.task = task
    if model_id == "demo":
        for key, value in demo_recipe(task).items():
            setattr(cfg, key, value)
    elif hw.cuda:
        cfg.load_in_4bit = hw.bitsandbytes and hw.vram_gb < 40
        cfg.lora_r = cfg.lora_alpha = 16
    return cfg.apply_overrides([f"{k}={_fmt(v)}" for k, v in overrides.items()])


# ---------------------------------------------------------------------- typing helpers
FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def help_text(key: str) -> str:
    return FIELDS[key].metadata.get("help", "")


def _fmt(v) -> str:
    return ",".join(map(str, v)) if isinstance(v, list) else ("none" if v is None else str(v))


def _base_type(key: str):
    hint = _HINTS[key]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    optional = isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
    return (args[0] if optional else hint), optional


def _parse(key: str, raw: str):
    """Text from the CLI / UI -> the field's type."""
    typ, optional = _base_type(key)
    if optional and raw.lower() in ("", "none", "null", "auto"):
        return None
    if typing.get_origin(typ) is list:
        return [s.strip() for s in raw.split(",") if s.strip()]
    if typ is bool:
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        _bad(key, raw, "Use true or false.")
    try:
        if typ is int:  # accept "10" and "1e3", refuse "2.5"
            num = float(raw)
            if num != int(num):
                raise ValueError(raw)
            return int(num)
        return typ(raw)
    except (ValueError, OverflowError):
        _bad(key, raw, f"Expected {'a whole number' if typ is int else typ.__name__}.")


def _coerce(key: str, value):
    """Values from JSON -> the field's type (ints stay ints; a float like 2.0 for an int is fine)."""
    typ, optional = _base_type(key)
    if value is None:
        if optional:
            return None
        _bad(key, value, "This field needs a value.")
    if isinstance(value, str) and typ is not str:
        return _parse(key, value)
    if typing.get_origin(typ) is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            _bad(key, value, "Expected a list of names.")
        return list(value)
    if typ is bool:
        if not isinstance(value, bool):
            _bad(key, value, "Use true or false.")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            _bad(key, value, "Expected a whole number.")
        return int(value)
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _bad(key, value, "Expected a number.")
        return float(value)
    if not isinstance(value, typ):
        _bad(key, value, f"Expected {typ.__name__}.")
    return value


def _bad(key: str, value, hint: str):
    raise StudioError(f"Invalid value for {key}: {value!r}. {help_text(key)}", hint)


def _choice(key: str, value, allowed):
    if value not in allowed:
        raise StudioError(f"Invalid value for {key}: {value!r}.", f"Choose one of: {', '.join(allowed)}.")


def _check_model(model_id: str, hw: Hardware) -> None:
    """Unknown models and Gemma 3n on CPU fail here, before a subprocess is started."""
    if not model_id:
        raise StudioError("No base model chosen.", "Pick one, e.g. model_id=demo.")
    from core import models
    info = models.get_model_info(model_id)  # raises StudioError for an unknown id
    if info.gpu_only and not hw.cuda:
        raise StudioError(f"{model_id} (Gemma 3n) trains on a GPU only.",
                          "Its vision tower needs timm + torchvision, which the CPU build here lacks. "
                          "Use a Gemma 3 model (or the demo model) on CPU, or run on a CUDA machine.")
