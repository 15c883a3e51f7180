"""Concurrent requests become one batched generate call (core/infer.py pads and batches).

Each loaded engine has one worker thread. Requests wait in a bounded queue; the worker takes every
waiting request with the same adapter, task and generation settings (up to max_batch) and answers
them with one Engine.generate. While a batch runs, new requests queue up for the next one, so under
load batches fill by themselves; after an idle spell the worker waits `window_s` for company.
A full queue refuses at once (QueueFull -> 503 with Retry-After), never hangs.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_QUEUE = 64
DEFAULT_WINDOW_S = 0.02


class QueueFull(Exception):
    def __init__(self, waiting: int, retry_after: int):
        super().__init__(f"{waiting} requests are waiting")
        self.waiting, self.retry_after = waiting, retry_after


@dataclass
class Job:
    adapter: str | None
    task: object
    image: object
    prompt: str
    gen: dict
    streamer: object = None           # a TextIteratorStreamer: answered alone, token by token
    future: Future = field(default_factory=Future)

    @property
    def key(self):
        if self.streamer is not None:
            return ("stream", id(self))
        return (self.adapter, getattr(self.task, "name", None), tuple(sorted(self.gen.items())))


class Batcher:
    def __init__(self, max_batch: int = DEFAULT_MAX_BATCH, max_queue: int = DEFAULT_MAX_QUEUE,
                 window_s: float = DEFAULT_WINDOW_S):
        if max_batch < 1 or max_queue < 1:
            raise ValueError("max_batch and max_queue must be at least 1")
        self.max_batch, self.max_queue, self.window_s = int(max_batch), int(max_queue), float(window_s)
        self._cond = threading.Condition()
        self._queues: dict[int, deque] = {}
        self._engines: dict[int, object] = {}
        self._seconds_per_batch = 1.0   # running estimate for Retry-After
        self.batches: list[int] = []    # sizes of the batches run (bench and tests read it)
        self.running = 0                # requests in the generate call now running

    def waiting(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def submit(self, engine, job: Job) -> Future:
        with self._cond:
            waiting = sum(len(q) for q in self._queues.values())
            if waiting >= self.max_queue:
                batches_ahead = math.ceil(waiting / self.max_batch) + 1
                raise QueueFull(waiting, max(1, math.ceil(batches_ahead * self._seconds_per_batch)))
            key = id(engine)
            if key not in self._queues:
                self._queues[key], self._engines[key] = deque(), engine
                threading.Thread(target=self._work, args=(key,), daemon=True,
                                 name=f"batcher-{type(engine).__name__}").start()
            self._queues[key].append(job)
            self._cond.notify_all()
        return job.future

    def _take(self, key: int) -> list[Job]:
        q = self._queues[key]
        with self._cond:
            while not q:
                self._cond.wait()
            # After an idle spell, a burst's other requests arrive within milliseconds: wait for them.
            deadline = time.monotonic() + self.window_s
            while q and len(q) < self.max_batch and q[0].streamer is None and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            if not q:
                return []
            first = q[0].key
            batch, rest = [], deque()
            while q:
                job = q.popleft()
                (batch if job.key == first and len(batch) < self.max_batch else rest).append(job)
            q.extend(rest)
        return [j for j in batch if j.future.set_running_or_notify_cancel() or _end(j)]

    def _work(self, key: int) -> None:
        engine = self._engines[key]
        while True:
            batch = self._take(key)
            if not batch:
                continue
            t = time.perf_counter()
            self.running += len(batch)
            try:
                self._run(engine, batch)
            finally:
                self.running -= len(batch)
            self.batches.append(len(batch))
            self._seconds_per_batch = 0.7 * self._seconds_per_batch + 0.3 * (time.perf_counter() - t)

    def _run(self, engine, batch: list[Job]) -> None:
        first = batch[0]
        gen = dict(first.gen, **({"streamer": first.streamer} if first.streamer is not None else {}))
        try:
            answers = engine.generate([j.image for j in batch], [j.prompt for j in batch], adapter=first.adapter,
                                      task=first.task, batch_size=len(batch), **gen)
        except Exception as e:  # noqa: BLE001 - every waiting client gets the error, none hangs
            if len(batch) > 1:   # one bad request must not fail the others: answer them one by one
                for job in batch:
                    self._run(engine, [job])
                return
            _end(first)
            first.future.set_exception(e)
            return
        for job, ans in zip(batch, answers):
            job.future.set_result(ans)


def _end(job: Job) -> bool:
    """Releases a streaming client whose job will not run (its iterator would wait forever)."""
    if job.streamer is not None:
        job.streamer.end()
    return False
