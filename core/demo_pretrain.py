"""Teaches the offline demo model to see, before any user fine-tuning.

A randomly initialised tiny model barely learns from LoRA alone (the adapters have nothing to adapt).
So the demo base is pre-trained, by a short deterministic full fine-tune, on generic synthetic
pictures: rows of 3-7 bars (rising from a baseline, or notches cut into a strip) in random colours,
sizes and backgrounds, read out left to right as `BARS: 3,5,1,7`. That teaches the vision tower to
measure heights at horizontal positions and the text model to write digit lists from image tokens:
the skills the keys task needs, without ever showing it a key.
"""
from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

BARS_PROMPT = ("Read the bars in this picture from left to right, one digit per bar, in exactly "
               "this format:\nBARS: <d,d,d>")
CANVAS = (256, 128)  # the same 2:1 shape as the key photos


def _color(rng: random.Random, avoid=None) -> tuple[int, int, int]:
    while True:
        c = tuple(rng.randint(0, 255) for _ in range(3))
        if avoid is None or sum(abs(a - b) for a, b in zip(c, avoid)) > 180:
            return c


def bars_image(seed: int, size: tuple[int, int] = CANVAS, difficulty: float = 1.0) -> tuple[Image.Image, list[int]]:
    """One picture and its digits (1-9). Same seed, same picture. difficulty 0 = five dark bars on
    white at fixed places; 1 = any count 3-7, random colours, layout, rotation, blur and noise."""
    rng = random.Random(seed)
    v = min(max(difficulty, 0.0), 1.0)
    n = rng.randint(3, 7) if rng.random() < v else 5
    digits = [rng.randint(1, 9) for _ in range(n)]
    w, h = CANVAS
    if rng.random() < v:
        bg = _color(rng)
        fg = _color(rng, avoid=bg)
    else:
        bg, fg = (255, 255, 255), (30, 30, 30)
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    x0 = 40 + v * rng.uniform(-32, 30)        # the row's span moves and stretches with difficulty
    x1 = 236 - v * rng.uniform(-12, 40)
    pitch = (x1 - x0) / n
    top, bottom = 24 + v * rng.uniform(-10, 10), 106 + v * rng.uniform(-10, 10)
    step = (bottom - top) / 10
    fill = 0.6 + v * rng.uniform(-0.15, 0.3)  # bar width as a share of the pitch
    if rng.random() < 0.5:                    # bars rising from a baseline
        for i, depth in enumerate(digits):
            cx = x0 + pitch * (i + 0.5)
            d.rectangle([cx - pitch * fill / 2, bottom - depth * step, cx + pitch * fill / 2, bottom], fill=fg)
        d.line([x0 - 4, bottom, x1 + 4, bottom], fill=fg, width=2)
    else:                                     # a strip with a notch per digit cut from its top
        d.rectangle([x0, top, x1, bottom], fill=fg)
        for i, depth in enumerate(digits):
            cx = x0 + pitch * (i + 0.5)
            d.rectangle([cx - pitch * fill / 2, top - 1, cx + pitch * fill / 2, top + depth * step], fill=bg)
    if rng.random() < 0.5 * v:
        img = img.rotate(rng.uniform(-3, 3), resample=Image.BILINEAR, fillcolor=bg)
    if rng.random() < 0.3 * v:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + np.random.default_rng(seed).normal(0, v * rng.uniform(0, 8), arr.shape)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    return img.resize(size, Image.BILINEAR) if size != CANVAS else img, digits


def encode(processor, images, prompt: str, answers: list[str]) -> dict:
    """Tensors for training: one shared prompt, so the loss mask is one prompt length for all."""
    import torch

    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    p_text = processor.apply_chat_template(user, add_generation_prompt=True)
    texts = [processor.apply_chat_template(user + [{"role": "assistant", "content": a}]) for a in answers]
    tok = processor.tokenizer
    side = tok.padding_side
    tok.padding_side = "right"
    try:
        batch = processor(images=[[im] for im in images], text=texts, padding=True, add_special_tokens=False,
                          return_tensors="pt")
        n_prompt = processor(images=[images[0]], text=p_text, add_special_tokens=False,
                             return_tensors="pt")["input_ids"].shape[1]
    finally:
        tok.padding_side = side
    labels = batch["input_ids"].clone()
    labels[:, :n_prompt] = -100
    labels[batch["attention_mask"] == 0] = -100
    batch["labels"] = labels
    batch["prompt_len"] = torch.tensor(n_prompt)
    return dict(batch)


def train(model, data: dict, steps: int, batch_size: int = 16, lr: float = 2e-3, seed: int = 0,
          log_every: int = 50, log=print, curriculum: float = 0.0) -> list[float]:
    """Plain AdamW loop with linear warm-up and cosine decay over random minibatches.

    curriculum > 0: examples are ordered easy to hard, and batches are drawn from a growing prefix
    that covers all of them after `curriculum` of the steps (a random model first has to find the
    image at all, which it does far sooner on clean pictures)."""
    import math

    import torch

    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    n = data["input_ids"].shape[0]
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids", "pixel_values", "labels") if k in data]
    model.train()
    losses = []
    for step in range(steps):
        hi = n if curriculum <= 0 else max(batch_size, min(n, int(n * (0.2 + step / (curriculum * steps)))))
        idx = torch.randint(0, hi, (batch_size,), generator=g)
        out = model(**{k: data[k][idx] for k in keys})
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(out.loss.detach()))
        if log and (step + 1) % log_every == 0:
            log(f"step {step + 1}/{steps} loss {np.mean(losses[-log_every:]):.4f}")
    model.eval()
    return losses


def read_answers(model, processor, images, prompt: str, max_new_tokens: int = 24, batch_size: int = 64):
    """Greedy answers for a list of images, all with one prompt."""
    import torch

    user = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    p_text = processor.apply_chat_template(user, add_generation_prompt=True)
    out = []
    for i in range(0, len(images), batch_size):
        chunk = [[im] for im in images[i:i + batch_size]]
        inputs = processor(images=chunk, text=[p_text] * len(chunk), add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        out += processor.batch_decode(gen[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def digits_after(label: str, text: str) -> list[int]:
    m = re.search(label + r"\s*:\s*([\d,\s]*)", text)
    return [int(c) for c in re.findall(r"\d", m.group(1))] if m else []


def digit_scores(predicted: list[list[int]], truth: list[list[int]]) -> dict:
    exact = np.mean([p == t for p, t in zip(predicted, truth)])
    pos = np.mean([np.mean([i < len(p) and p[i] == d for i, d in enumerate(t)]) for p, t in zip(predicted, truth)])
    return {"exact_match": float(exact), "position_accuracy": float(pos)}


def pretrain_demo(model_dir: str | Path, out_dir: str | Path, *, steps: int = 800, n_images: int = 2048,
                  batch_size: int = 16, lr: float = 1e-3, seed: int = 0, n_eval: int = 128,
                  curriculum: float = 0.6, log=print) -> dict:
    """Full fine-tune of the demo model in model_dir on bar pictures; saves the result to out_dir."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    t0 = time.time()
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    side = processor.image_processor.size["height"]
    pics = [bars_image(1_000_000 + seed * 100_000 + i, (side * 2, side), difficulty=i / n_images)
            for i in range(n_images)]
    data = encode(processor, [p for p, _ in pics], BARS_PROMPT,
                  ["BARS: " + ",".join(map(str, d)) for _, d in pics])
    t_data = time.time() - t0
    torch.manual_seed(seed)
    losses = train(model, data, steps, batch_size, lr, seed, log=log, curriculum=curriculum)
    t_train = time.time() - t0 - t_data
    held = [bars_image(9_000_000 + i, (side * 2, side)) for i in range(n_eval)]
    answers = read_answers(model, processor, [p for p, _ in held], BARS_PROMPT)
    scores = digit_scores([digits_after("BARS", a) for a in answers], [d for _, d in held])
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    stats = {"steps": steps, "n_images": n_images, "batch_size": batch_size, "lr": lr, "seed": seed,
             "curriculum": curriculum,
             "seconds_data": round(t_data, 1), "seconds_train": round(t_train, 1),
             "final_loss": float(np.mean(losses[-50:])), **scores}
    (Path(out_dir) / "demo_pretrain.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats
