"""Load test: one studio (app.py on 127.0.0.1 only), 20 concurrent REST requests and 5 browser-like
sessions at the same time. Reports latency percentiles, errors and the server's peak RSS.

    python bench/load_test.py [--api 20] [--sessions 5] [--timeout 300] [--write-results]
    python bench/load_test.py --batched 32 [--max-batch 8] [--max-new-tokens 64] [--write-results]

--batched N: the batched-serving row. `python -m core serve` with the demo model on CPU answers N
keys/analyze requests one by one (batching off), then N at once with batching off, then N at once
with batching on (--max-batch per generate call): latencies, failures and the speed-up.

A browser-like session does what the page does on open: GET /, GET /config, then runs the page's
load event through Gradio's queue (join + server-sent events until process_completed). Everything
stays on loopback; the run is bounded in request count and in time.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
KEY_IMAGES = sorted((ROOT / "assets" / "demo" / "keys" / "images").glob("*.png"))
UI_IMAGES = sorted((ROOT / "assets" / "demo" / "ui2sql" / "images").glob("*.png"))
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class RssSampler(threading.Thread):
    """Peak resident memory of the server process and its children, sampled every 50 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc, self.peak, self.stop = psutil.Process(pid), 0, threading.Event()

    def current(self) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self.current())
            time.sleep(0.05)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def api_call(base: str, i: int, timeout: float) -> dict:
    task = "ui2sql" if i % 4 == 3 and UI_IMAGES else "keys"
    img = (UI_IMAGES if task == "ui2sql" else KEY_IMAGES)[i % len(UI_IMAGES if task == "ui2sql" else KEY_IMAGES)]
    path = "/api/v1/ui2sql" if task == "ui2sql" else "/api/v1/keys/analyze"
    t = time.perf_counter()
    try:
        r = requests.post(base + path, files={"image": (img.name, img.read_bytes(), "image/png")}, timeout=timeout)
        ok, code = r.status_code == 200 and isinstance(r.json(), dict), r.status_code
    except requests.RequestException as e:
        ok, code = False, type(e).__name__
    return {"kind": f"api:{task}", "ok": ok, "status": code, "s": time.perf_counter() - t}


def _load_dependency(config: dict) -> tuple[int, int | None]:
    """(fn_index, trigger id) of the page's load event."""
    for i, dep in enumerate(config.get("dependencies", [])):
        for target in dep.get("targets", []):
            if isinstance(target, (list, tuple)) and len(target) == 2 and target[1] == "load":
                return dep.get("id", i), target[0]
    raise RuntimeError("the studio page has no load event")


def session(base: str, i: int, timeout: float) -> dict:
    """One browser opening the studio; returns page and load-event latencies."""
    t0 = time.perf_counter()
    s = requests.Session()
    try:
        page = s.get(base + "/", timeout=timeout)
        page.raise_for_status()
        config = s.get(base + "/config", timeout=timeout).json()
        t_page = time.perf_counter() - t0
        fn, trigger = _load_dependency(config)
        prefix = config.get("api_prefix", "/gradio_api")
        h = uuid.uuid4().hex[:11]
        t1 = time.perf_counter()
        join = s.post(f"{base}{prefix}/queue/join", json={"data": [], "event_data": None, "fn_index": fn,
                                                          "trigger_id": trigger, "session_hash": h},
                      timeout=timeout)
        join.raise_for_status()
        ok, msg = False, None
        with s.get(f"{base}{prefix}/queue/data", params={"session_hash": h}, stream=True, timeout=timeout) as r:
            for line in r.iter_lines(decode_unicode=True):
                if not line or not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    ok = bool(msg.get("success"))
                    break
                if time.perf_counter() - t0 > timeout:
                    break
        return {"kind": "session", "ok": ok, "status": "completed" if ok else (msg or {}).get("msg"),
                "s": time.perf_counter() - t0, "page_s": t_page, "event_s": time.perf_counter() - t1}
    except (requests.RequestException, RuntimeError, ValueError) as e:
        return {"kind": "session", "ok": False, "status": type(e).__name__, "s": time.perf_counter() - t0}


def start_studio(workspace: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, TRINITY_WORKSPACE=str(workspace), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    env.pop("SPACE_ID", None)
    return subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_up(base: str, proc: subprocess.Popen, limit: float = 180) -> float:
    t = time.perf_counter()
    while time.perf_counter() - t < limit:
        if proc.poll() is not None:
            raise SystemExit(f"the studio exited with {proc.returncode}")
        try:
            if requests.get(base + "/api/v1/health", timeout=2).ok:
                return time.perf_counter() - t
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit("the studio did not start in time")


def summarize(rows: list[dict], key: str = "s") -> dict:
    v = [r[key] for r in rows if key in r]
    return {"n": len(rows), "ok": sum(r["ok"] for r in rows), "p50": pct(v, 0.5), "p90": pct(v, 0.9),
            "p99": pct(v, 0.99), "max": max(v) if v else float("nan"), "mean": statistics.fmean(v) if v else float("nan")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--api", type=int, default=20, help="concurrent REST requests (max 100)")
    ap.add_argument("--sessions", type=int, default=5, help="concurrent browser-like sessions (max 20)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds for the whole concurrent phase")
    ap.add_argument("--write-results", action="store_true", help="replace the ## Load section of bench/RESULTS.md")
    ap.add_argument("--batched", type=int, default=0, help="run the batched-serving row with N requests (max 128)")
    ap.add_argument("--max-batch", type=int, default=8, help="--batched: requests per generate call")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="--batched: answer length cap")
    args = ap.parse_args(argv)
    if args.batched:
        from batched_serving import run_batched

        return run_batched(args, argv)
    n_api, n_ses = min(max(args.api, 0), 100), min(max(args.sessions, 0), 20)
    port = free_port()
    base = f"http://{HOST}:{port}"
    with tempfile.TemporaryDirectory(prefix="trinity-load-") as ws:
        proc = start_studio(Path(ws), port)
        try:
            startup = wait_up(base, proc)
            listening = {c.laddr.ip for c in psutil.Process(proc.pid).net_connections(kind="inet")
                         if c.status == psutil.CONN_LISTEN}
            assert listening == {HOST}, f"studio listens on {listening}, expected loopback only"
            sampler = RssSampler(proc.pid)
            sampler.start()
            rss_idle = sampler.current()
            cold = api_call(base, 0, args.timeout)  # first request loads the demo model
            jobs = [("api", i) for i in range(n_api)] + [("session", i) for i in range(n_ses)]
            t = time.perf_counter()
            with ThreadPoolExecutor(len(jobs)) as pool:
                futures = [pool.submit(api_call if k == "api" else session, base, i, args.timeout) for k, i in jobs]
                rows = [f.result() for f in futures]
            wall = time.perf_counter() - t
            alive = requests.get(base + "/api/v1/health", timeout=10).ok and proc.poll() is None
            sampler.stop.set()
            sampler.join()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    api_rows = [r for r in rows if r["kind"].startswith("api")]
    ses_rows = [r for r in rows if r["kind"] == "session"]
    result = {
        "startup_s": startup, "cold_first_request_s": cold["s"], "cold_ok": cold["ok"], "wall_s": wall,
        "api": summarize(api_rows), "sessions": summarize(ses_rows),
        "session_page": summarize(ses_rows, "page_s"), "session_event": summarize(ses_rows, "event_s"),
        "failures": [r for r in rows if not r["ok"]], "still_serving": alive,
        "rss_idle_mb": rss_idle / 2 ** 20, "rss_peak_mb": sampler.peak / 2 ** 20,
        "machine": f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} CPUs, "
                   f"{psutil.virtual_memory().total / 2 ** 30:.0f} GiB",
    }
    text = report(result, n_api, n_ses, " ".join(["python", "bench/load_test.py", *(argv or sys.argv[1:])]))
    print(text)
    if args.write_results:
        write_section(text)
    ok = alive and not result["failures"] and cold["ok"]
    return 0 if ok else 1


def report(r: dict, n_api: int, n_ses: int, cmd: str) -> str:
    def row(name, s):
        return (f"| {name} | {s['ok']}/{s['n']} | {s['p50']:.2f} | {s['p90']:.2f} | {s['p99']:.2f} | "
                f"{s['max']:.2f} |")
    lines = [
        "## Load", "",
        f"Command: `{cmd}` ({time.strftime('%Y-%m-%d')}, {r['machine']}; the demo model on CPU).", "",
        f"One studio (`app.py`, bound to 127.0.0.1), {n_api} REST requests (3 of 4 keys/analyze, 1 of 4 "
        f"ui2sql) and {n_ses} browser-like sessions (page + /config + the page's load event through the "
        "Gradio queue), all started at once after one warm-up request.", "",
        "| what | answered | p50 s | p90 s | p99 s | max s |", "|---|---|---|---|---|---|",
        row("REST request", r["api"]), row("browser session (total)", r["sessions"]),
        row("  page + /config", r["session_page"]), row("  load event via queue", r["session_event"]), "",
        f"- Startup to first health answer: {r['startup_s']:.1f} s; first (cold) request, which loads the "
        f"model: {r['cold_first_request_s']:.2f} s.",
        f"- Whole concurrent phase: {r['wall_s']:.1f} s. Still serving afterwards: {r['still_serving']}.",
        f"- Server RSS: {r['rss_idle_mb']:.0f} MB idle, peak {r['rss_peak_mb']:.0f} MB during the run.",
        f"- Failures: {len(r['failures'])}" + (": " + "; ".join(f"{f['kind']} {f['status']}" for f in r['failures'][:10])
                                               if r["failures"] else "."),
    ]
    return "\n".join(lines) + "\n"


def write_section(text: str, title: str = "## Load") -> None:
    """Replaces only this section of bench/RESULTS.md (others belong to others), appended at the end."""
    path = ROOT / "bench" / "RESULTS.md"
    old = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    lines, out, skipping = old.splitlines(keepends=True), [], False
    for line in lines:
        if line.startswith("## "):
            skipping = line.strip() == title
            if skipping:
                continue
        if not skipping:
            out.append(line)
    body = "".join(out).rstrip("\n") + "\n\n" + text
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
