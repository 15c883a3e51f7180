"""Generation: one base model loaded once, any number of runs' adapters on it, batched answers.

The base model answers with every adapter disabled, so "base vs run" side by side never loads the
model twice. Every Answer carries a confidence computed from the model's own token probabilities.
"""
from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from core import workspace
# the decoding settings: one source of truth, the task's generation preset (re-exported here)
from core.decoding import DEFAULT_MAX_NEW_TOKENS, generation_settings  # noqa: F401
from core.errors import StudioError
from core.tasks.base import value_spans

BASE = "base"  # the label side_by_side uses for the base model (adapters disabled)


def chat_messages(prompt: str) -> list[dict]:
    """The user turn exactly as training builds it: the image, then the task prompt."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


@dataclass
class Answer:
    text: str
    token_ids: list[int]
    token_probs: list[float]       # the model's probability of each generated token
    # How sure the model is of a valid answer: with a task, 0 when the answer did not parse, else the
    # mean probability of the parsed fields' tokens; without a task, the mean of the content tokens.
    confidence: float
    adapter: str | None = None     # None = base model
    parsed: object | None = None   # core.tasks.Parsed when a task was given
    field_confidence: dict[str, float] = field(default_factory=dict)  # per field (Task.field_spans)
    token_confidence: float = 0.0  # mean probability of all content tokens, parsed or not
    valid: bool | None = None      # the answer parsed (None: no task was given)

    def to_dict(self) -> dict:
        return {"text": self.text, "adapter": self.adapter, "confidence": self.confidence, "valid": self.valid,
                "field_confidence": self.field_confidence, "token_confidence": self.token_confidence,
                "n_tokens": len(self.token_ids),
                "parsed": self.parsed.to_dict() if self.parsed is not None else None}


def resolve_run_dir(run: str | Path) -> Path:
    """A run folder given as a path, or as a run id under the workspace's runs/."""
    p = Path(run)
    if not p.is_dir():
        p = workspace.runs_dir() / str(run)
    if not p.is_dir():
        raise StudioError(f"Run '{run}' was not found.",
                          f"Give a run folder or a run id under {workspace.runs_dir()}.")
    return p.resolve()


def read_run_config(run: str | Path) -> dict:
    run_dir = resolve_run_dir(run)
    try:
        cfg = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StudioError(f"Run '{run_dir.name}' has no config.json.",
                          "Runs are folders written by the Train tab or `python -m core train`.") from None
    except json.JSONDecodeError as e:
        raise StudioError(f"Run '{run_dir.name}' has a broken config.json: {e}.",
                          "Restore it from a backup or start the run again.") from None
    if isinstance(cfg, dict) and not cfg.get("model") and cfg.get("model_id"):
        cfg["model"] = cfg["model_id"]  # TrainConfig's name for the base model
    if not isinstance(cfg, dict) or not cfg.get("model"):
        raise StudioError(f"Run '{run_dir.name}' config.json names no base model.",
                          "config.json needs a \"model_id\" entry (the base model id).")
    return cfg


def same_model(a: str, b: str) -> bool:
    """Registry ids and folders compare by what they name (a folder by its resolved path)."""
    from core.models import get_model_info

    return a == b or get_model_info(a).id == get_model_info(b).id


def adapter_dir(path: str | Path) -> Path:
    """The PEFT adapter folder of a run folder (RUN/adapter/) or an adapter folder itself."""
    p = Path(path)
    for cand in (p, p / "adapter"):
        if (cand / "adapter_config.json").is_file():
            # A pickled adapter_model.bin can run code when read: only safetensors are loaded.
            if not (cand / "adapter_model.safetensors").is_file():
                raise StudioError(f"The adapter in '{cand}' has no adapter_model.safetensors.",
                                  "Only safetensors adapters are loaded (a pickled .bin can run code); "
                                  "re-save it with save_pretrained(safe_serialization=True).")
            return cand
    raise StudioError(f"No trained adapter in '{p}'.",
                      "The run has not finished training yet, or its adapter/ folder was removed.")


def run_weights(run: str | Path) -> tuple[str, bool]:
    """(model to load, has_adapter) for a finished run: a LoRA run is its base model + RUN/adapter/;
    a full fine-tune is RUN/model/ on its own (no adapter to switch off, so no base-side-by-side)."""
    run_dir = resolve_run_dir(run)
    cfg = read_run_config(run_dir)
    if (run_dir / "adapter" / "adapter_config.json").is_file():
        return cfg["model"], True
    if (run_dir / "model" / "config.json").is_file():
        return str(run_dir / "model"), False
    raise StudioError(f"Run '{run_dir.name}' has no trained weights yet (no adapter/ or model/ folder).",
                      "Wait for training to finish, or resume the run from its last checkpoint.")


def trains_tokens(adapter: Path) -> bool:
    """Whether a PEFT adapter folder also trains embedding rows (train_answer_tokens)."""
    try:
        return bool(json.loads((Path(adapter) / "adapter_config.json").read_text()).get("trainable_token_indices"))
    except (OSError, ValueError):
        return False


class Engine:
    """A base model + processor loaded once; adapters are switched, never reloaded."""

    def __init__(self, base_model_id: str, device: str | None = None, dtype=None):
        from core import models  # late: models pulls in the model registry

        self.base_model_id = base_model_id
        if device in (None, "auto"):
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.model = models.load_model(base_model_id, device=self.device, dtype=dtype)
        self.processor = models.load_processor(base_model_id)
        self.model.eval()
        self.adapters: dict[str, str] = {}   # user-facing name -> PEFT adapter key
        self.adapter_paths: dict[str, str] = {}
        self.lock = threading.RLock()        # one model: generations run one at a time
        tok = self.processor.tokenizer
        self._special = set(getattr(tok, "all_special_ids", []) or [])
        self._stop_ids = self._stop_token_ids()

    @classmethod
    def for_run(cls, run: str | Path, device: str | None = None, dtype=None) -> tuple["Engine", str | None]:
        """An engine for a run: (engine, adapter name); the name is None for a full fine-tune, whose
        engine holds the fine-tuned model itself."""
        model, has_adapter = run_weights(run)
        engine = cls(model, device=device, dtype=dtype)
        return engine, (engine.add_adapter(resolve_run_dir(run)) if has_adapter else None)

    # -- adapters -----------------------------------------------------------------------------
    def add_adapter(self, run_or_adapter: str | Path, name: str | None = None) -> str:
        """Loads a run's (or an adapter folder's) PEFT adapter onto the base; returns its name."""
        path = Path(run_or_adapter)
        if not path.exists():
            path = resolve_run_dir(run_or_adapter)
        adir = adapter_dir(path)
        with self.lock:  # two requests adding one run at once must not load it twice
            for known, where in self.adapter_paths.items():  # already on the model: nothing to check
                if where == str(adir.resolve()) and name in (None, known):
                    return known
            if (path / "config.json").is_file():
                base = read_run_config(path)["model"]
                if not same_model(base, self.base_model_id):
                    raise StudioError(
                        f"Run '{path.name}' was trained on '{base}', not on '{self.base_model_id}'.",
                        "Compare runs that share a base model, or load that base model first.")
            explicit = name is not None
            name = name or (path.name if adir != path else adir.parent.name) or "adapter"
            if name in self.adapters:
                if explicit:
                    raise StudioError(f"An adapter named '{name}' is already loaded.", "Pick another name.")
                name = f"{name}-{len(self.adapters) + 1}"  # two runs with one folder name, from two places
            key = re.sub(r"[^A-Za-z0-9_]", "_", name) + f"_{len(self.adapters)}"  # PEFT keys: no dots
            try:
                if not trains_tokens(adir) and any(trains_tokens(Path(p)) for p in self.adapter_paths.values()):
                    self._reload_with(key, adir)
                else:
                    self._load(key, adir)
            except (ValueError, RuntimeError, KeyError, OSError) as e:
                raise StudioError(f"The adapter in '{adir}' does not fit the base model: {e}",
                                  "Was it trained on a different base model?") from e
            self.model.eval()
            self.adapters[name] = key
            self.adapter_paths[name] = str(adir.resolve())
        return name

    def _load(self, key: str, adir: Path) -> None:
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(adir), adapter_name=key)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(adir), adapter_name=key)

    def _reload_with(self, key: str, adir: Path) -> None:
        """PEFT 0.21 cannot load an adapter without trainable tokens once one with them is on the
        model (TrainableTokensWrapper maps every adapter's load to its own key: KeyError
        'trainable_tokens_delta'), but loads them the other way round. So the adapters come off
        and go back on, the ones without trainable tokens first; names and keys stay the same."""
        loaded = [(self.adapters[n], Path(p)) for n, p in self.adapter_paths.items()] + [(key, adir)]
        self.model = self.model.unload()
        for k, path in sorted(loaded, key=lambda kp: trains_tokens(kp[1])):  # stable: plain ones first
            self._load(k, path)

    def _adapter_context(self, adapter: str | None):
        from contextlib import nullcontext

        if adapter is None:
            return self.model.disable_adapter() if self.adapters else nullcontext()
        if adapter not in self.adapters:
            raise StudioError(f"No adapter named '{adapter}' is loaded.",
                              f"Loaded: {', '.join(self.adapters) or 'none'}.")
        self.model.set_adapter(self.adapters[adapter])
        return nullcontext()

    # -- generation ---------------------------------------------------------------------------
    def _stop_token_ids(self) -> list[int]:
        tok = self.processor.tokenizer
        ids = []
        if tok.eos_token_id is not None:
            ids.append(tok.eos_token_id)
        eot = tok.convert_tokens_to_ids("<end_of_turn>")
        if isinstance(eot, int) and eot != tok.unk_token_id and eot not in ids:
            ids.append(eot)  # Gemma ends a turn with <end_of_turn>, not always <eos>
        return ids

    def _inputs(self, images: list, prompts: list[str]):
        texts = [self.processor.apply_chat_template(chat_messages(p), add_generation_prompt=True,
                                                    tokenize=False) for p in prompts]
        # One processor call per batch; left padding so every row's answer starts at the same column.
        # The chat template already starts with <bos>; adding another would differ from training.
        inputs = self.processor(text=texts, images=[[im] for im in images], padding=True,
                                padding_side="left", add_special_tokens=False, return_tensors="pt")
        dtype = getattr(self.model, "dtype", None) or torch.float32  # 4-bit weights: model.dtype, not params
        return {k: (v.to(self.device, dtype=dtype) if k == "pixel_values" else v.to(self.device))
                for k, v in inputs.items()}

    def generate(self, images: list, prompts: list[str], adapter: str | None = None, *,
                 task=None, batch_size: int = 8, **gen) -> list[Answer]:
        """Answers for (image, prompt) pairs; adapter None = the base model.

        task (a Task or its name) picks the generation preset and parses each answer so that the
        confidence covers the parsed fields' tokens. gen overrides generation kwargs.
        """
        if len(images) != len(prompts):
            raise StudioError("Got a different number of images and prompts.", "Pass one prompt per image.")
        task_obj = _task(task)
        settings = generation_settings(task_obj, **gen)
        pil = [_as_image(im) for im in images]
        answers: list[Answer] = []
        step = max(1, int(batch_size))
        with self.lock, torch.inference_mode():
            with self._adapter_context(adapter):
                for start in range(0, len(pil), step):
                    answers += self._generate_batch(pil[start:start + step], prompts[start:start + step], settings)
        for a in answers:
            a.adapter = adapter
            if task_obj is not None:
                self._attach_parse(a, task_obj)
        return answers

    def _generate_batch(self, images, prompts, settings) -> list[Answer]:
        inputs = self._inputs(images, prompts)
        tok = self.processor.tokenizer
        recorder = _ChosenTokenProbs()
        out = self.model.generate(**inputs, **settings, eos_token_id=self._stop_ids,
                                  pad_token_id=tok.pad_token_id if tok.pad_token_id is not None
                                  else self._stop_ids[0],
                                  logits_processor=LogitsProcessorList([recorder]),
                                  return_dict_in_generate=True)
        new = out.sequences[:, inputs["input_ids"].shape[1]:]
        probs = recorder.finish(new)                                      # (batch, steps)
        answers = []
        for row in range(new.shape[0]):
            ids, ps = [], []
            for t, p in zip(new[row].tolist(), probs[row].tolist()):
                if t in self._stop_ids:
                    break
                ids.append(t)
                ps.append(p)
            content = [p for t, p in zip(ids, ps) if t not in self._special]
            conf = sum(content) / len(content) if content else 0.0
            text = tok.decode(ids, skip_special_tokens=True)
            answers.append(Answer(text=text, token_ids=ids, token_probs=ps, confidence=round(conf, 6),
                                  token_confidence=round(conf, 6)))
        return answers

    def _attach_parse(self, answer: Answer, task) -> None:
        """Parses the answer; its confidence becomes how sure the model is of a *valid* answer: 0 when
        it did not parse, else the mean probability of the tokens spelling the parsed fields (each
        field's own in field_confidence; the spans come from the task: Task.field_spans)."""
        answer.parsed = task.parse(answer.text)
        answer.valid = bool(answer.parsed.ok)
        if not answer.valid:
            answer.confidence = 0.0  # sure of its tokens, maybe, but not of an answer that parses
            return
        finder = getattr(task, "field_spans", None)
        try:
            fields = (finder(answer.text, answer.parsed) if callable(finder)
                      else value_spans(answer.text, task.fields_from_parsed(answer.parsed)))
        except Exception:  # noqa: BLE001 - a task that cannot locate its fields: keep the token mean
            return
        tokens = self._field_tokens(answer, fields or {})
        picked: set[int] = set()
        for name, idx in tokens.items():
            answer.field_confidence[name] = round(sum(answer.token_probs[i] for i in idx) / len(idx), 6)
            picked |= set(idx)
        if picked:
            answer.confidence = round(sum(answer.token_probs[i] for i in picked) / len(picked), 6)

    def field_confidence(self, answer: Answer, fields: dict, reduce: str = "mean", task=None) -> dict[str, float]:
        """The probability of the tokens that spell each field's value in the answer ("mean", or "min":
        the least sure token), also for an answer that did not parse as a whole (a field not found in
        the text is left out). With the task, its field_spans locate the values it can (nested json)."""
        spans = value_spans(answer.text, fields)
        finder = getattr(task, "field_spans", None)
        if callable(finder) and answer.parsed is not None:
            try:
                spans.update({k: v for k, v in (finder(answer.text, answer.parsed) or {}).items() if k in fields})
            except Exception:  # noqa: BLE001 - a task that cannot locate its fields: the spellings found
                pass
        pick = min if reduce == "min" else (lambda ps: sum(ps) / len(ps))
        return {name: round(pick([answer.token_probs[i] for i in idx]), 6)
                for name, idx in self._field_tokens(answer, spans).items()}

    def _field_tokens(self, answer: Answer, spans: dict) -> dict[str, list[int]]:
        """{field: indices of the tokens overlapping its character spans ({field: [(start, end)]})}."""
        tokens = self._token_spans(answer.token_ids)
        out = {}
        for name, chars in spans.items():
            idx = [i for i, (a, b) in enumerate(tokens) if b > a and any(a < end and b > start for start, end in chars)]
            if idx:
                out[name] = idx
        return out

    def _token_spans(self, ids: list[int]) -> list[tuple[int, int]]:
        """Character span of each token in the decoded text (prefix decoding handles merged bytes)."""
        tok = self.processor.tokenizer
        spans, prev = [], 0
        for i in range(len(ids)):
            end = len(tok.decode(ids[:i + 1], skip_special_tokens=True))
            spans.append((prev, end))
            prev = end
        return spans

    def side_by_side(self, image, prompt: str, adapters: list[str | None] = (None,), *, task=None,
                     **gen) -> dict[str, Answer]:
        """One answer per adapter (None = base) for one image, on this one loaded model."""
        out = {}
        for name in adapters:
            out[name or BASE] = self.generate([image], [prompt], adapter=name, task=task, **gen)[0]
        return out


class _ChosenTokenProbs(LogitsProcessor):
    """Records the model's probability of each token it picks, one step behind.

    It runs before any temperature / top-p warper, so it sees the model's own distribution; unlike
    generate(output_logits=True) it keeps one (batch, vocab) row at a time, not one per step
    (a 1024-token schema over Gemma 3's 262k vocabulary would otherwise hold gigabytes)."""

    def __init__(self):
        self.prev: torch.Tensor | None = None
        self.picked: list[torch.Tensor] = []

    def __call__(self, input_ids, scores):
        if self.prev is not None:  # input_ids now ends with the token chosen from self.prev
            self.picked.append(self.prev.gather(1, input_ids[:, -1:])[:, 0])
        self.prev = torch.softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: torch.Tensor) -> torch.Tensor:
        if self.prev is not None and len(self.picked) < new_tokens.shape[1]:
            self.picked.append(self.prev.gather(1, new_tokens[:, -1:])[:, 0])
        self.prev = None
        if not self.picked:
            return torch.zeros(new_tokens.shape[0], 0)
        return torch.stack(self.picked, dim=1).cpu()


def _task(task):
    if task is None or not isinstance(task, str):
        return task
    from core.tasks import get_task
    return get_task(task)


def _as_image(im):
    from PIL import Image

    if isinstance(im, Image.Image):
        return im if im.mode == "RGB" else im.convert("RGB")
    from core.images import load_image
    return load_image(im)
