"""The batched-serving row of bench/load_test.py (`--batched N`): N keys/analyze requests against
`python -m core serve` with the demo model on CPU, three ways in one run:

    one by one        server with batching off (--max-batch 1), requests sent sequentially
    concurrent        the same server, all N sent at once (they queue for the one model)
    concurrent, batched   server with --max-batch B, all N at once (one generate call per B)

Every request must answer 200; the speed-up is the wall time of one-by-one over batched.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from load_test import HOST, KEY_IMAGES, ROOT, free_port, summarize, write_section


def _server(ws: Path, port: int, max_batch: int, max_new_tokens: int, n: int) -> subprocess.Popen:
    env = dict(os.environ, TRINITY_WORKSPACE=str(ws), HF_HUB_OFFLINE="1",
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    env.pop("TRINITY_API_KEY", None)
    return subprocess.Popen([sys.executable, "-m", "core", "serve", "--port", str(port), "--device", "cpu",
                             "--max-batch", str(max_batch), "--max-queue", str(max(64, n)),
                             "--max-new-tokens", str(max_new_tokens), "--preload"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait(base: str, proc: subprocess.Popen, limit: float = 300) -> None:
    t = time.perf_counter()
    while time.perf_counter() - t < limit:
        if proc.poll() is not None:
            raise SystemExit(f"python -m core serve exited with {proc.returncode}")
        try:
            if requests.get(base + "/api/v1/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit("python -m core serve did not start in time")


def _call(base: str, i: int, timeout: float) -> dict:
    img = KEY_IMAGES[i % len(KEY_IMAGES)]
    t = time.perf_counter()
    try:
        r = requests.post(base + "/api/v1/keys/analyze", files={"image": (img.name, img.read_bytes(), "image/png")},
                          timeout=timeout)
        ok = r.status_code == 200 and isinstance(r.json().get("success"), bool)
        code = r.status_code
    except requests.RequestException as e:
        ok, code = False, type(e).__name__
    return {"ok": ok, "status": code, "s": time.perf_counter() - t}


def _phase(base: str, n: int, concurrent: bool, timeout: float) -> tuple[list[dict], float]:
    t = time.perf_counter()
    if concurrent:
        with ThreadPoolExecutor(n) as pool:
            rows = list(pool.map(lambda i: _call(base, i, timeout), range(n)))
    else:
        rows = [_call(base, i, timeout) for i in range(n)]
    return rows, time.perf_counter() - t


def _measure(ws: Path, max_batch: int, args, phases) -> dict:
    port = free_port()
    base = f"http://{HOST}:{port}"
    proc = _server(ws, port, max_batch, args.max_new_tokens, args.batched)
    out = {}
    try:
        _wait(base, proc)
        _call(base, 0, args.timeout)  # warm-up: first forward pass
        for name, concurrent in phases:
            out[name] = _phase(base, args.batched, concurrent, args.timeout)
        out["health"] = requests.get(base + "/api/v1/health", timeout=10).ok and proc.poll() is None
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return out


def run_batched(args, argv) -> int:
    n = min(max(args.batched, 1), 128)
    args.batched = n
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="trinity-batched-") as ws:
        off = _measure(Path(ws), 1, args, [("one by one", False), ("concurrent, batching off", True)])
        on = _measure(Path(ws), args.max_batch, args, [(f"concurrent, batched (max {args.max_batch})", True)])
    rows = {**{k: v for k, v in off.items() if k != "health"}, **{k: v for k, v in on.items() if k != "health"}}
    failures = sum(1 for r, _ in rows.values() for x in r if not x["ok"])
    serial, batched = rows["one by one"][1], rows[f"concurrent, batched (max {args.max_batch})"][1]
    cmd = " ".join(["python", "bench/load_test.py", *(argv if argv is not None else sys.argv[1:])])
    machine = (f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} CPUs, "
               f"{psutil.virtual_memory().total / 2 ** 30:.0f} GiB")
    lines = ["## Batched serving (issue 18)", "",
             f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}, {machine}; the demo model on CPU, "
             f"answers capped at {args.max_new_tokens} tokens).", "",
             f"`python -m core serve`, {n} `POST /api/v1/keys/analyze` requests per row, after one warm-up "
             "request. One by one and concurrent-without-batching ran on a server with `--max-batch 1`; the "
             f"batched row on one with `--max-batch {args.max_batch}` (concurrent requests share one generate call).", "",
             "| requests | answered | failed | wall s | p50 s | p99 s | requests/s |", "|---|---|---|---|---|---|---|"]
    for name, (r, wall) in rows.items():
        s = summarize(r)
        lines.append(f"| {name} | {s['ok']}/{s['n']} | {s['n'] - s['ok']} | {wall:.1f} | {s['p50']:.2f} | "
                     f"{s['p99']:.2f} | {len(r) / wall:.2f} |")
    lines += ["", f"- Speed-up of batched over one by one (wall time): **{serial / batched:.1f}x**.",
              f"- Failures: {failures}. Servers still healthy afterwards: {off['health'] and on['health']}.",
              f"- 1-minute load average: {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on "
              f"{psutil.cpu_count()} CPUs (other jobs on a shared machine slow the rows unevenly).", ""]
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        write_section(text, "## Batched serving (issue 18)")
    return 0 if failures == 0 and off["health"] and on["health"] else 1
