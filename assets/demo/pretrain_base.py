"""The demo base's recipe: a tiny Gemma 3 (core/demo_model.py) pretrained to *see*, so that a
short fine-tune in the studio only has to teach a task's answer format and mapping - as with a
real Gemma.

    python assets/demo/pretrain_base.py --out assets/demo/base          # the shipped recipe
    python assets/demo/pretrain_base.py --out /tmp/b --steps 20 --batch 4   # a smoke run (CI)

It builds the random-weight demo model (same classes, tokenizer, processor and chat template as
every other path of the studio), then trains every weight on captions of procedurally drawn
images (assets/demo/pretrain_data.py: keys, UI pages, shapes and digits) with a plain seeded
PyTorch loop: example i is always seed SEED0 + i, so the data, its order and the schedule depend
on the arguments alone. Runs on CUDA when present (bf16 autocast), else on the CPU (slowly; float
sums, and so the last digits of the weights, differ between devices).

Writes OUT (whole, or not at all): the model folder with README.md (the model card: data, steps,
loss, seeds, device) and pretrain.json (the same as data); and, beside OUT, pretrain_hashes.npy (the
pixel hash of every pretraining image, which tests/test_demo_base.py checks against the demo
datasets).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import pretrain_data as pdata  # noqa: E402

DEFAULTS = dict(steps=3500, batch=128, lr=2e-3, warmup=200, weight_decay=0.05, seed=0, eval_n=96)
DEMO_VARIATION = 0.5
HASHES_FILE = "pretrain_hashes.npy"  # beside OUT (not inside: it is no part of the model)  # the shipped demo keys' nuisance level: the probe is scored there


class Examples(torch.utils.data.Dataset):
    """Row i -> the tokenized, masked example of seed SEED0 + i (built in a loader worker)."""

    def __init__(self, processor, n: int, seed0: int = pdata.SEED0, kind: str | None = None,
                 variation: float | None = None):
        self.processor, self.n, self.seed0, self.kind, self.variation = processor, n, seed0, kind, variation
        self.eot = processor.tokenizer.convert_tokens_to_ids("<end_of_turn>")

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        seed = self.seed0 + i
        if self.variation is not None:  # the probe: demo-level nuisance, first caption form
            ex = probe_example(seed, self.variation)
        else:
            ex = pdata.example(seed, self.kind)
        cuts = len(ex["facts"]["bitting"]) if ex["kind"] == "keys" else 0
        return encode(self.processor, ex["image"], ex["prompt"], ex["caption"]) | {
            "hash": pdata.pixel_hash(ex["image"]), "kind": ex["kind"], "cuts": cuts}


def probe_example(seed: int, variation: float) -> dict:
    from core.tasks.keys.catalog import all_keyways
    from core.tasks.keys.render import sample

    codes = list(all_keyways())
    image, fields = sample(seed, variation=variation, keyway=codes[seed % len(codes)])
    caption = (f"A {fields['brand']} key of the {fields['keyway']} keyway with {len(fields['bitting'])} cuts. "
               f"From the bow to the tip the cuts are {' '.join(map(str, fields['bitting']))} deep.")
    return {"image": image, "prompt": "Describe the key.", "caption": caption, "kind": "keys", "facts": fields}


def encode(processor, image, prompt: str, caption: str) -> dict:
    """The chat the studio's fine-tune uses (user: image + text, model: answer), with the loss on
    the answer only."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    batch = processor(text=text, images=[image.convert("RGB")], return_tensors="pt")
    answer = processor.tokenizer(caption + "<end_of_turn>\n", add_special_tokens=False)["input_ids"]
    ids = batch["input_ids"][0].tolist()
    return {"input_ids": ids + answer, "labels": [-100] * len(ids) + answer,
            "token_type_ids": batch["token_type_ids"][0].tolist() + [0] * len(answer),
            "pixel_values": batch["pixel_values"][0]}


def collate(rows: list[dict], pad_id: int) -> dict:
    width = max(len(r["input_ids"]) for r in rows)

    def pad(key, value):
        return torch.tensor([r[key] + [value] * (width - len(r[key])) for r in rows])

    mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows])
    return {"input_ids": pad("input_ids", pad_id), "labels": pad("labels", -100),
            "token_type_ids": pad("token_type_ids", 0), "attention_mask": mask,
            "pixel_values": torch.stack([r["pixel_values"] for r in rows]),
            "hash": [r["hash"] for r in rows], "kind": [r["kind"] for r in rows],
            "cuts": [r["cuts"] for r in rows]}


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def _forward(model, batch, device):
    inputs = {k: v.to(device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    labels = inputs.pop("labels")
    out = model(**inputs)
    logits = out.logits[:, :-1].float()
    target = labels[:, 1:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=-100)
    return loss, logits, target


@torch.no_grad()
def probe(model, processor, device, n: int, autocast) -> dict:
    """Teacher-forced accuracy on held-out keys at the demo's nuisance level: of the cut-depth
    digits, of the keyway/brand words, and the share of keys whose every digit is right."""
    if n <= 0:
        return {}
    model.eval()
    ds = Examples(processor, n, seed0=pdata.EVAL_SEED0, variation=DEMO_VARIATION)
    tok = processor.tokenizer
    digit_ids = {tok.convert_tokens_to_ids(str(d)) for d in range(10)}
    right = total = keys_ok = 0
    losses = []
    for start in range(0, n, 32):
        batch = collate([ds[i] for i in range(start, min(n, start + 32))], tok.pad_token_id)
        with autocast():
            loss, logits, target = _forward(model, batch, device)
        losses.append(float(loss))
        pred = logits.argmax(-1).cpu()
        target = target.cpu()
        for row in range(target.shape[0]):
            pos = [j for j, t in enumerate(target[row].tolist()) if t in digit_ids]
            cut = pos[-batch["cuts"][row]:]  # the depths are the caption's last digits
            ok = [bool(pred[row, j] == target[row, j]) for j in cut]
            right, total = right + sum(ok), total + len(ok)
            keys_ok += all(ok)
    model.train()
    return {"probe_n": n, "probe_variation": DEMO_VARIATION, "digit_acc": round(right / max(total, 1), 4),
            "all_digits_acc": round(keys_ok / n, 4), "probe_loss": round(sum(losses) / len(losses), 4)}


def train(out: Path, steps: int, batch: int, lr: float, warmup: int, weight_decay: float, seed: int,
          eval_n: int, workers: int, init: Path | None, max_seconds: float | None, probe_every: int = 0,
          log=print, resume: Path | None = None, extend: Path | None = None) -> dict:
    """resume: a base this recipe wrote (stopped early by --max-seconds); training goes on from its
    last step with the same schedule and the next examples, so stage 1 + stage 2 see the data and
    learning rates of one uninterrupted run (only AdamW's moments restart, hence a short re-warmup).

    extend: a base this recipe wrote (finished or not); a new stage of `steps` more steps with its
    own warmup and cosine schedule, on the examples after the last one it saw."""
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration

    from core.demo_model import build_demo_model

    t0 = time.time()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if resume and extend:
            raise SystemExit("pass --resume or --extend, not both")
        given, flag = (resume, "--resume") if resume else (extend, "--extend")
        if given and not (Path(given) / "pretrain.json").is_file():
            raise SystemExit(f"{flag} {given}: no pretrain.json there; pass a base this recipe wrote")
        prior = json.loads((Path(given) / "pretrain.json").read_text()) if given else None
        start = prior["steps_done"] if prior else 0
        if resume and prior.get("stages") and prior["stages"][-1].get("extends"):
            raise SystemExit(f"--resume {resume}: its last stage was an --extend stage, which has its own "
                             "schedule; --extend it again instead")
        if resume and (prior["batch"], prior["steps_planned"], prior["seed"]) != (batch, steps, seed):
            raise SystemExit(f"--resume {resume}: it was trained with batch {prior['batch']}, steps "
                             f"{prior['steps_planned']}, seed {prior['seed']}; pass the same values")
        if extend and (prior["batch"], prior["seed"]) != (batch, seed):
            raise SystemExit(f"--extend {extend}: it was trained with batch {prior['batch']}, seed "
                             f"{prior['seed']}; pass the same values")
        if resume and start >= steps:
            raise SystemExit(f"--resume {resume}: all {steps} steps are done already")
        # Global step numbers: an --extend stage runs `steps` more; its schedule counts from 0.
        end, sched0 = (start + steps, start) if extend else (steps, 0)
        src = Path(given) if given else Path(init) if init else build_demo_model(work / "init", seed=seed)
        # The PIL image processor, as the studio uses on CPU (a GPU host with torchvision would
        # otherwise pick the torchvision one, whose resize differs slightly).
        processor = AutoProcessor.from_pretrained(src, backend="pil")
        torch.manual_seed(seed)
        model = Gemma3ForConditionalGeneration.from_pretrained(src, dtype=torch.float32).to(device)
        model.train()
        n_params = sum(p.numel() for p in model.parameters())
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
        rest = [p for n, p in model.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                 {"params": rest, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.98),
                                fused=cuda)
        data = Examples(processor, (end - start) * batch, seed0=pdata.SEED0 + start * batch)
        loader = torch.utils.data.DataLoader(
            data, batch_size=batch, shuffle=False, num_workers=workers, persistent_workers=False,
            prefetch_factor=2 if workers else None,
            collate_fn=lambda rows: collate(rows, processor.tokenizer.pad_token_id))

        def autocast():
            return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

        log(f"model {n_params / 1e6:.2f}M params on {device}; {steps} steps x {batch} "
            f"({steps * batch} images), {workers} loader workers, {type(processor.image_processor).__name__}")
        before = probe(model, processor, device, eval_n, autocast)
        log(f"probe before: {before}")
        hashes, curve, kinds, window, done, probes = [], [], {}, [], start, []
        if prior:
            curve, kinds, probes = list(prior["curve"]), dict(prior["images_by_kind"]), list(prior["probes"])
            hashes_before = np.load(Path(given).parent / HASHES_FILE)
        t_train = time.time()
        for k_step, b in enumerate(loader):
            step = start + k_step
            rewarm = min(1.0, (k_step + 1) / 50) if resume else 1.0
            step_lr = lr_at(step - sched0, end - sched0, lr, warmup) * rewarm
            for g in opt.param_groups:
                g["lr"] = step_lr
            with autocast():
                loss, _, _ = _forward(model, b, device)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            hashes += b["hash"]
            for k in b["kind"]:
                kinds[k] = kinds.get(k, 0) + 1
            window.append(loss.detach())
            done = step + 1
            if done % 50 == 0 or done == end or done == 1:
                curve.append({"step": done, "loss": round(float(torch.stack(window).mean()), 4),
                              "lr": round(step_lr, 6), "s": round(time.time() - t_train, 1)})
                window = []
                log(f"step {done}/{end} loss {curve[-1]['loss']:.4f} "
                    f"({(time.time() - t_train) / (done - start):.3f} s/step)")
            if probe_every and done % probe_every == 0 and done < end:
                mid = probe(model, processor, device, eval_n, autocast)
                probes.append({"step": done, **mid})
                log(f"probe at step {done}: {mid}")
            if max_seconds and time.time() - t0 > max_seconds and done < end:
                log(f"time limit {max_seconds:.0f}s reached at step {done}: saving what is trained")
                break
        train_s = time.time() - t_train
        after = probe(model, processor, device, eval_n, autocast)
        log(f"probe after: {after}")
        model.eval()
        final = work / "base"
        shutil.copytree(src, final, ignore=shutil.ignore_patterns("model.safetensors"))
        saved = work / "saved"
        model.to("cpu").save_pretrained(saved, safe_serialization=True)
        shutil.copy2(saved / "model.safetensors", final / "model.safetensors")
        unique = np.unique(np.concatenate([np.array([int(h, 16) for h in hashes], dtype=np.uint64)]
                                          + ([hashes_before.astype(np.uint64)] if prior else [])))
        hashes_path = out.parent / HASHES_FILE
        tmp_hashes = work / HASHES_FILE
        np.save(tmp_hashes, unique)
        stage = {"command": "python assets/demo/pretrain_base.py " + " ".join(sys.argv[1:]),
                 "steps": [start, done], "device": _device_name(), "train_seconds": round(train_s, 1)}
        if extend:
            stage |= {"extends": True, "lr": lr, "warmup": warmup, "schedule_steps": steps,
                      "probe_at_start": before}
        stages = (prior.get("stages") or [{"command": prior["command"], "steps": [0, start],
                                           "device": prior["device"],
                                           "train_seconds": prior["train_seconds"]}]) if prior else []
        meta = {"steps_planned": end, "steps_done": done,
                "first_plan": prior.get("first_plan", prior["steps_planned"]) if prior else steps, "batch": batch, "images": done * batch,
                "unique_images": int(unique.size), "images_by_kind": kinds,
                "lr": prior["lr"] if extend else lr, "warmup": prior["warmup"] if extend else warmup,
                "schedule": "linear warmup, cosine to 5% of the peak" + (
                    "; each --extend stage has its own (see stages)" if any(
                        st.get("extends") for st in stages + [stage]) else ""), "weight_decay": weight_decay,
                "optimizer": "AdamW (0.9, 0.98), grad clip 1.0", "seed": seed, "seed0": pdata.SEED0,
                "eval_seed0": pdata.EVAL_SEED0, "mix": dict(pdata.MIX), "params": n_params,
                "device": _device_name(), "precision": "bf16 autocast" if cuda else "fp32",
                "train_seconds": round(train_s + sum(st["train_seconds"] for st in stages), 1),
                "total_seconds": round(time.time() - t0, 1), "stages": stages + [stage],
                "loss_first": curve[0]["loss"] if curve else None, "loss_last": curve[-1]["loss"] if curve else None,
                "probe_before": prior["probe_before"] if prior else before, "probe_after": after, "probes": probes, "curve": curve, "versions": _versions(),
                "command": " && ".join(st["command"] for st in stages + [stage])}
        (final / "pretrain.json").write_text(json.dumps(meta, indent=1) + "\n")
        (final / "README.md").write_text(model_card(meta))
        if out.exists():
            shutil.rmtree(out)
        os.replace(final, out)
        os.replace(tmp_hashes, hashes_path)
        return meta
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _versions() -> dict:
    import PIL
    import transformers
    return {"torch": torch.__version__, "transformers": transformers.__version__, "pillow": PIL.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def _stages_table(m: dict) -> str:
    rows = ["| stage | steps | schedule | seconds | device |", "|---|---|---|---|---|"]
    for i, st in enumerate(m.get("stages") or [], 1):
        sched = (f"own: peak lr {st['lr']}, {st['warmup']} warmup, cosine over {st['schedule_steps']} steps"
                 if st.get("extends") else f"peak lr {m['lr']}, {m['warmup']} warmup, cosine over "
                 f"{m.get('first_plan', m['steps_planned'])} steps")
        rows.append(f"| {i} | {st['steps'][0]}-{st['steps'][1]} | {sched} | {st['train_seconds']} | {st['device']} |")
    return "\n".join(rows)


def model_card(m: dict) -> str:
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(m["images_by_kind"].items()))
    pb, pa = m["probe_before"] or {}, m["probe_after"] or {}
    return f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: image-text-to-text
tags: [gemma3, tiny, synthetic-data, trinity-studio]
---

# Trinity Studio demo base

A tiny `Gemma3ForConditionalGeneration` ({m['params'] / 1e6:.2f}M parameters; SigLIP vision tower,
projector, Gemma 3 text decoder, a 2,048-piece SentencePiece tokenizer with Gemma 3's special tokens
and chat template), pretrained from random weights by `assets/demo/pretrain_base.py` so that it can
*see*: it describes keys, shapes, digits, colours and simple UI pages in free text. It has never seen
a task's answer format (`KEYWAY:`/`BITTING:`/`BRAND:` lines, SQL, JSON): fine-tuning in the studio
teaches that, as it would for a real Gemma. It is for the offline demo and the tests, not for use.

## Data

Procedurally drawn images with captions (`assets/demo/pretrain_data.py`), example i = seed
{m['seed0']} + i, mix {m['mix']}:

- keys: `core/tasks/keys/render.py` renders of every catalog keyway at nuisance levels 0-1 (pose,
  background, light, blur, noise), captioned in prose ("A Schlage key of the SC1 keyway with 5 cuts.
  From the bow to the tip the cuts are 1 2 5 3 7 deep.", digits also as words or reversed);
- UI pages: drawn pages (title bar, menu, table or form, buttons) described by their visible labels;
- shapes: 1-5 coloured circles/squares/triangles/diamonds, or one large digit, with count and colour.

Stages 3 and 4 (`--extend`) draw their examples the second and third way (`pretrain_data.py`: V2_SEED,
V3_SEED): page titles in large type (24-30 px, then 40-46 px: at the 96 px input the first pages' 13 px
titles were unreadable), captions that also name a page's purpose in lower case, shape captions with
numerals and quoted names (`3 x 'circle' in 'red'`, the sub-word forms that follow a quote), larger
shapes, and mixes weighted to pages and shapes ({{'keys': 0.5, 'shapes': 0.3, 'ui': 0.2}}, then
{{'keys': 0.25, 'shapes': 0.35, 'ui': 0.4}}).

{m['images']} images ({m['unique_images']} distinct by pixel hash; {kinds}). None of them is an image
of the demo datasets: `../pretrain_hashes.npy` holds every pretraining image's pixel hash and
`tests/test_demo_base.py` checks each demo image against it.

## Training

| | |
|---|---|
| steps | {m['steps_done']} of {m['steps_planned']} planned, batch {m['batch']} |
| optimizer | {m['optimizer']}, lr {m['lr']} ({m['schedule']}, {m['warmup']} warmup steps), weight decay {m['weight_decay']} |
| seed | {m['seed']} (weights init and data: example i is always the same) |
| device | {m['device']}, {m['precision']}, {m['train_seconds']} s of training in {len(m.get('stages') or [1])} stage(s) |
| loss | {m['loss_first']} (first step) -> {m['loss_last']} (last 50 steps) |
| versions | {', '.join(f'{k} {v}' for k, v in m['versions'].items())} |

{_stages_table(m)}

Held-out probe ({pa.get('probe_n', 0)} keys of every keyway at the demo dataset's nuisance level
{DEMO_VARIATION}, seeds from {m['eval_seed0']}; teacher-forced): cut-depth digit accuracy
{pb.get('digit_acc')} before -> {pa.get('digit_acc')} after; keys with every digit right
{pb.get('all_digits_acc')} -> {pa.get('all_digits_acc')}.

Reproduce, stage by stage: `{m['command']}` (`python -m core demo --base` runs stages 1-2's recipe as one run). The same arguments give the same data,
order and schedule on any machine; on another device the float sums, and so the weights' last
digits, differ.
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "base")
    for k, v in DEFAULTS.items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=v)
    ap.add_argument("--workers", type=int, default=min(15, max(0, (os.cpu_count() or 1) - 1)))
    ap.add_argument("--init", type=Path, help="start from this random-init folder instead of building one")
    ap.add_argument("--max-seconds", type=float, help="stop early (and save) after this many seconds")
    ap.add_argument("--resume", type=Path, help="go on training a base this recipe stopped early")
    ap.add_argument("--extend", type=Path, help="a new stage of --steps more steps (own schedule) on a base "
                                                "this recipe wrote, with the examples after its last")
    ap.add_argument("--probe-every", type=int, default=500, help="probe the held-out keys every N steps")
    a = ap.parse_args(argv)
    meta = train(a.out, a.steps, a.batch, a.lr, a.warmup, a.weight_decay, a.seed, a.eval_n, a.workers,
                 a.init, a.max_seconds, a.probe_every, resume=a.resume, extend=a.extend)
    print(f"{a.out}: {meta['steps_done']} steps, loss {meta['loss_first']} -> {meta['loss_last']}, "
          f"probe {meta['probe_after']}, {meta['total_seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
