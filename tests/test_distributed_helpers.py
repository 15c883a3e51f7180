"""The collectives the training job relies on, through accelerate, in two real ranks (gloo, CPU):
only rank 0 writes events, every rank gets every rank's values in rank order, and a stop asked for
by any rank is agreed on by all."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RANK_SCRIPT = """
import json, os, sys
from core.training.callbacks import _agree, gather_floats, memory_per_rank
from core.training.events import EventWriter
rank = int(os.environ["RANK"])
writer = EventWriter(sys.argv[1])
writer.write("info", rank=rank)
print(json.dumps({"writes": writer.enabled, "gathered": gather_floats([rank, 10.5 + rank]),
                  "stop_if_rank1": _agree(rank == 1), "stop_if_none": _agree(False),
                  "rss": memory_per_rank("cpu")}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(tmp_path: Path, world: int) -> list[dict]:
    port = _free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                   LOCAL_WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        procs.append(subprocess.Popen([sys.executable, "-c", RANK_SCRIPT, str(tmp_path)], env=env, cwd=ROOT,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-3000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_two_ranks_write_once_gather_in_order_and_agree_to_stop(tmp_path):
    r0, r1 = _launch(tmp_path, 2)
    assert (r0["writes"], r1["writes"]) == (True, False)
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["rank"] for line in lines] == [0]  # one file, rank 0's line only
    assert r0["gathered"] == r1["gathered"] == [[0.0, 10.5], [1.0, 11.5]]
    assert r0["stop_if_rank1"] is r1["stop_if_rank1"] is True
    assert r0["stop_if_none"] is r1["stop_if_none"] is False
    assert r0["rss"] == r1["rss"] and len(r0["rss"]["rss_gb_per_rank"]) == 2
    assert all(v > 0 for v in r0["rss"]["rss_gb_per_rank"])


def test_a_single_process_is_rank_zero_and_needs_no_group(tmp_path):
    from core.training.callbacks import _agree, gather_floats, memory_per_rank
    from core.training.events import EventWriter

    assert EventWriter(tmp_path).enabled
    assert gather_floats([1.0, 2.0]) == [[1.0, 2.0]]
    assert _agree(True) is True and _agree(False) is False
    assert memory_per_rank("cpu") == {}
