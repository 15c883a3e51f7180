"""How a task's answers are decoded: one source of truth, the task's generation preset
(Task.generation), read by inference (Compare, Evaluate, the Playground), the API, the exported
Ollama Modelfile and the model card, so an exported model decodes the way the studio scored it.

The bundled presets decode greedily (`do_sample: False`); their temperature / top_p apply only
when a caller asks to sample (an API client sending a temperature above 0). No torch here: the
model card and the Modelfile are written without loading a model.
"""
from __future__ import annotations

DEFAULT_MAX_NEW_TOKENS = 256
_FALLBACK = {"do_sample": False, "temperature": 0.3, "top_p": 0.9}


def preset(task) -> dict:
    """The task's own generation preset (Task.generation; a Task or its name); {} for no task or one
    not installed."""
    if task is None or task == "":
        return {}
    if isinstance(task, str):
        from core.tasks import all_tasks

        task = all_tasks().get(task)
    return dict(getattr(task, "generation", None) or {})


def generation_settings(task=None, sample: bool | None = None, **overrides) -> dict:
    """Generation kwargs for Engine.generate / transformers' generate: the task's preset (greedy for
    the bundled tasks); sample=True / False overrides the preset's do_sample; other overrides win.
    temperature and top_p are passed only when sampling (transformers warns about them otherwise)."""
    p = {**_FALLBACK, **preset(task)}
    do_sample = bool(p.get("do_sample")) if sample is None else bool(sample)
    out = {"max_new_tokens": int(p.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS), "do_sample": do_sample}
    if do_sample:
        out["temperature"] = p.get("temperature", _FALLBACK["temperature"])
        out["top_p"] = p.get("top_p", _FALLBACK["top_p"])
    out.update({k: v for k, v in overrides.items() if v is not None})
    return out


def ollama_parameters(task) -> dict:
    """The Modelfile's PARAMETER lines for the task's decoding. Greedy is temperature 0 with top_k 1;
    repeat_penalty 1 because transformers applies none (Ollama's default is 1.1); num_predict is the
    answer cap the studio generates with."""
    s = generation_settings(task)
    out = ({"temperature": s["temperature"], "top_p": s["top_p"]} if s["do_sample"]
           else {"temperature": 0, "top_k": 1})
    return {**out, "repeat_penalty": 1, "num_predict": s["max_new_tokens"]}


def describe(task) -> str:
    """One line for people (the model card, the Export tab): how answers are decoded."""
    s = generation_settings(task)
    how = (f"sampling (temperature {s['temperature']}, top_p {s['top_p']})" if s["do_sample"]
           else "greedy (the most likely token at each step, no sampling)")
    return f"{how}, at most {s['max_new_tokens']} new tokens, no repetition penalty"
