"""Shared by tests/test_export*.py (holds no tests): a full fine-tune run made by the training engine
(the LoRA runs come from conftest's trained_run, made by the same engine)."""
from __future__ import annotations

import json
import os
from pathlib import Path

KEYS = Path(__file__).resolve().parent.parent / "assets" / "demo" / "keys"


def make_full_run(runs_dir: Path, name: str = "full1") -> Path:
    """A full fine-tune run as the studio's default flow makes it: `python -m core train` with
    method=full on the demo keys dataset, 3 steps, so RUN/model/ holds the weights and there is no
    adapter. The workspace (TRINITY_WORKSPACE) must already be set."""
    import torch

    from core.__main__ import main

    torch.set_num_threads(1)
    run = runs_dir / name
    code = main(["train", "--dataset", str(KEYS), "--model", "demo", "--out", str(run), "--no-progress",
                 "--set", "method=full", "--set", "max_steps=3", "--set", "batch_size=2",
                 "--set", "eval_split=", "--set", "save_steps=100", "--set", "learning_rate=2e-3"])
    assert code == 0, (run / "events.jsonl").read_text() if (run / "events.jsonl").is_file() else code
    assert (run / "model" / "config.json").is_file() and not (run / "adapter").exists()
    return run


def module_workspace(tmp_path_factory, name: str):
    """A workspace for a whole test module (the demo model is built once per module)."""
    import pytest

    ws = tmp_path_factory.mktemp(name)
    mp = pytest.MonkeyPatch()
    mp.setenv("TRINITY_WORKSPACE", str(ws))
    return ws, mp


def greedy(model, processor, image, prompt: str, n: int = 12) -> list[int]:
    """Greedy token ids with plain transformers (single <bos>, as training formats the prompt)."""
    import torch

    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[[image]], return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=n)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def env_without_workspace_overrides() -> dict:
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env
