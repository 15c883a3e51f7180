"""The `seeds` plan of bench/gpu_speed.py: issue 16's rows (the two seed recipes at Unsloth's speed)
and its goals as ratios to the anchors of the same run.

  python3 bench/gpu_speed.py --plan seeds --anchor .gpuspeed/anchor_bench.py --out $OUT --deadline 575
  python3 bench/gpu_speed.py --plan seeds --list          # the rows and goals, no GPU needed

Each Unsloth process compiles for 1.5-2 minutes, so the plan splits in two calls: `seeds_hf` (the
anchors and the hf rows) and `seeds_unsloth` (the default path, the warm-cache pair, 3n and 12B);
pass the first call's speed.json to the second with `--append FILE` for one table of both.
Rows: (kind, label, details) as in gpu_speed.PLANS; a job row's details are (size, TrainConfig
overrides, backend, environment).
"""
from __future__ import annotations

SEQ = 822
Q4 = {"load_in_4bit": True, "lora_r": 64, "lora_alpha": 64, "use_rslora": True, "max_seq_length": SEQ,
      "max_steps": 8, "seed": 3407}
TRINITY = {**Q4, "use_dora": True}
# Keylike's preset at b8 x accum 1 on 306-token samples (one 768 px image), as issue 19 measured it
KEYLIKE_B8 = {"preset": "Keylike", "max_seq_length": 306, "batch_size": 8, "gradient_accumulation_steps": 1,
              "max_steps": 6}

A, D = "HF+PEFT QLoRA (baseline)", "Unsloth QLoRA (anchor D)"
TRINITY_4B, QLORA_AUTO, QLORA_HF = "job auto Trinity 4B r64", "job auto QLoRA", "job hf QLoRA"
TRINITY_4B_UNSLOTH, TRINITY_4B_HF = "job unsloth Trinity 4B r64", "job hf Trinity 4B r64"
E4B, TRINITY_12B = "job auto Gemma 3n E4B Keylike b8", "job auto 12B Trinity"
COLD, WARM = "job unsloth QLoRA, cache cold", "job unsloth QLoRA, second run (cache warm)"
# issue 24's unsloth_warm plan: the warm-ups fill the cache, then the timed row is a second run
WARM_AUTO, COLD_WARMUP = "job auto QLoRA", "warm: unsloth QLoRA (cache cold)"

SEEDS_HF = [
    ("anchor", A, ("A", "1,4")),
    ("job", QLORA_HF, ("4b", {**Q4, "batch_size": 1}, "hf", {})),
    ("job", QLORA_HF, ("4b", {**Q4, "batch_size": 4}, "hf", {})),
    # Liger's kernels are on by default on this path where liger-kernel is installed: the A/B
    ("job", "job hf QLoRA, liger off", ("4b", {**Q4, "batch_size": 1, "liger_kernel": "off"}, "hf", {})),
    ("job", "job hf Trinity 4B r64", ("4b", {**TRINITY, "batch_size": 1}, "hf", {})),
]
SEEDS_UNSLOTH = [
    ("build12b", "12B build (background)", ()),
    ("build3n", "Gemma 3n E4B build", ()),
    ("anchor", D, ("D", "1,4")),
    ("job", TRINITY_4B, ("4b", {**TRINITY, "batch_size": 1}, "auto", {})),
    ("job", QLORA_AUTO, ("4b", {**Q4, "batch_size": 1}, "auto", {})),
    ("job", QLORA_AUTO, ("4b", {**Q4, "batch_size": 4}, "auto", {})),
    # the same shapes twice in a fresh workspace cache: the second run's first step is the goal
    ("job", COLD, ("4b", {**Q4, "batch_size": 1, "max_steps": 3}, "unsloth", {"SEEDS_FRESH_CACHE": "1"})),
    ("job", WARM, ("4b", {**Q4, "batch_size": 1, "max_steps": 3}, "unsloth", {})),
    ("job", E4B, ("e4b", KEYLIKE_B8, "auto", {})),
    ("job", TRINITY_12B, ("12b", {**TRINITY, "batch_size": 1, "max_steps": 4}, "auto", {})),
]
# issue 24's third call: the two big models alone (their builds fill the call's first minute)
SEEDS_BIG = [
    ("build12b", "12B build (background)", ()),
    ("build3n", "Gemma 3n E4B build", ()),
    ("job", E4B, ("e4b", KEYLIKE_B8, "auto", {})),
    ("job", TRINITY_12B, ("12b", {**TRINITY, "batch_size": 1, "max_steps": 6}, "auto", {})),
    ("job", QLORA_HF, ("4b", {**Q4, "batch_size": 4}, "hf", {})),
]
PLANS = {"seeds": SEEDS_HF + SEEDS_UNSLOTH, "seeds_big": SEEDS_BIG, "seeds_hf": SEEDS_HF, "seeds_unsloth": SEEDS_UNSLOTH}


def _row(rows, label, batch=1):
    return next((r for r in rows if r.get("label") == label and r.get("batch") == batch and r.get("step_s")), None)


def _ratio(x, y):
    return x / y if x and y else None


def _f(x, unit: str = "") -> str:
    return "-" if x is None else f"{x:.2f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def _steady(r) -> float | None:
    """max / median of a job row's step times after its first (the first holds the warm-up)."""
    times = [t for t in ((r or {}).get("extra") or {}).get("step_times") or [] if t][1:]
    if len(times) < 3:
        return None
    times.sort()
    return times[-1] / times[len(times) // 2]


def _first_step(r) -> float | None:
    """A row's first step in seconds: its end event's, else the first of its step times (a warm-up
    stopped by its deadline has no end event)."""
    extra = (r or {}).get("extra") or {}
    return extra.get("first_step_s") or next(iter(extra.get("step_times") or []), None)


def _first(rows, labels, batch=1):
    return next(((lab, r) for lab in labels if (r := _row(rows, lab, batch))), (None, None))


def goals(rows: list[dict]) -> list[tuple[str, str, float | None, bool | None]]:
    """(goal, measured as text, the ratio or value, met) for each of issue 24's goals."""
    d1, d4, a1, a4 = _row(rows, D), _row(rows, D, 4), _row(rows, A), _row(rows, A, 4)
    out = []
    for b, a in ((1, a1), (4, a4)):
        h = _row(rows, QLORA_HF, b)
        r = _ratio(h and h.get("tokens_per_s"), a and a.get("tokens_per_s"))
        s = _steady(h)
        out.append((f"1. hf path QLoRA b{b} tokens/s >= 1.2x anchor A, max/median step <= 1.3",
                    f"{_f(r, 'x')}, max/median {_f(s)}", r, None if r is None or s is None else r >= 1.2 and s <= 1.3))
    # the default backend of a DoRA config: the auto row where the plan has one, else the row of the
    # backend auto resolves to (core.training.config.resolved_backend: hf for DoRA), named in the text
    lab, t = _first(rows, (TRINITY_4B, TRINITY_4B_HF, TRINITY_4B_UNSLOTH))
    r = _ratio(t and t["step_s"], d1 and d1["step_s"])
    mem = _ratio(t and t.get("reserved_gib"), d1 and d1.get("reserved_gib"))
    out.append(("2. Trinity 4B b1 step <= 1.25x Unsloth's QLoRA step, reserved <= 1.10x",
                f"step {_f(r, 'x')}, reserved {_f(mem, 'x')} ({lab or 'no row'})", r,
                None if r is None or mem is None else r <= 1.25 and mem <= 1.10))
    for b, d in ((1, d1), (4, d4)):
        q = _row(rows, QLORA_AUTO, b)
        r = _ratio(q and q.get("tokens_per_s"), d and d.get("tokens_per_s"))
        out.append((f"3. default-path QLoRA b{b} tokens/s >= Unsloth's", _f(r, "x"), r,
                    None if r is None else r >= 1.0))
    # the seeds plan's cold/warm pair, or unsloth_warm's: its warm-up fills the cache, the timed row runs second
    w = _row(rows, WARM) or _row(rows, WARM_AUTO)
    c = _row(rows, COLD) or next((r for r in rows if r.get("label") == COLD_WARMUP and r.get("batch") == 1), None)
    wf, cf = _first_step(w), _first_step(c)
    out.append(("3. warm-cache first step <= 30 s (cache in the workspace)", f"{_f(wf, ' s')} (cold run: {_f(cf, ' s')})", wf,
                None if wf is None else wf <= 30))
    e = _row(rows, E4B, 8)
    out.append(("4. Gemma 3n E4B Keylike b8 <= 0.6 s/step", _f(e and e["step_s"], " s"), e and e["step_s"],
                None if not e else e["step_s"] <= 0.6))
    t12 = _row(rows, TRINITY_12B)
    out.append(("4. 12B Trinity b1 <= 0.8 s/step, <= 14.5 GiB reserved",
                f"{_f(t12 and t12['step_s'], ' s')}, {_f(t12 and t12.get('reserved_gib'), ' GiB')}", t12 and t12["step_s"],
                None if not t12 or t12.get("reserved_gib") is None else
                t12["step_s"] <= 0.8 and t12["reserved_gib"] <= 14.5))
    return out


def goals_table(rows: list[dict]) -> str:
    lines = ["| goal | measured | met |", "|---|---|---|"]
    for goal, text, _value, met in goals(rows):
        lines.append(f"| {goal} | {text} | {'-' if met is None else ('yes' if met else 'no')} |")
    return "\n".join(lines) + "\n"


def listing(plan: list) -> str:
    """The plan's rows as a table, for --list (runs nowhere: no GPU, no model)."""
    lines = ["| # | kind | label | size | batch | backend | overrides | env |", "|---|---|---|---|---|---|---|---|"]
    for i, (kind, label, det) in enumerate(plan, 1):
        if kind == "job":
            size, over, backend, env = det
            extra = {k: v for k, v in over.items() if k not in Q4 or Q4[k] != v}
            lines.append(f"| {i} | job | {label} | {size} | {over.get('batch_size', 1)} | {backend} | {extra} | {env} |")
        elif kind == "anchor":
            lines.append(f"| {i} | anchor | {label} | 4b | {det[1]} | variant {det[0]} | | |")
        else:
            lines.append(f"| {i} | {kind} | {label} | | | | | |")
    return "\n".join(lines) + "\n"
