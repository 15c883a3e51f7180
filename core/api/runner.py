"""One path from a request to an answer for every API family: model name -> served entry ->
loaded engine -> the batcher -> core.infer.Answer (text, token probabilities, parsed structure)."""
from __future__ import annotations

import asyncio
import copy
import os
import threading
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from core.api.batcher import Batcher, Job, QueueFull
from core.api.common import ApiError
from core.api.serving import Served

REQUEST_TIMEOUT_S = float(os.environ.get("TRINITY_API_TIMEOUT", 600))


@dataclass
class Target:
    entry: Served
    engine: object
    adapter: str | None
    task: object


class Runner:
    def __init__(self, provider, batcher: Batcher, generation: dict | None = None):
        self.provider, self.batcher = provider, batcher
        self.generation = {k: v for k, v in (generation or {}).items() if v is not None}

    async def target(self, model_name: str | None) -> Target:
        """Resolves and (on first use) loads a model; the load runs off the event loop."""
        from core.tasks import get_task

        entry = self.provider.find(model_name)
        engine, adapter = await run_in_threadpool(self.provider.load, entry)
        return Target(entry, engine, adapter, entry.task_obj or get_task(entry.task))

    def settings(self, target: Target, requested: dict | None = None) -> dict:
        """Generation overrides for Engine.generate: the client's choice, capped by the server's
        --max-new-tokens; the task's preset fills the rest (core.infer.generation_settings)."""
        gen = {k: v for k, v in (requested or {}).items() if v is not None}
        cap = self.generation.get("max_new_tokens")
        if cap:
            gen["max_new_tokens"] = min(int(gen.get("max_new_tokens") or cap), int(cap))
        return {**{k: v for k, v in self.generation.items() if k != "max_new_tokens"}, **gen}

    def max_new_tokens(self, target: Target, gen: dict) -> int:
        from core.infer import generation_settings

        return int(generation_settings(target.task, **gen)["max_new_tokens"])

    def submit(self, target: Target, image, prompt: str, gen: dict, streamer=None):
        try:
            return self.batcher.submit(target.engine, Job(target.adapter, target.task, image, prompt, gen, streamer))
        except QueueFull as e:
            raise ApiError(503, f"The server is busy: {e.waiting} requests are already waiting.",
                           f"Retry in {e.retry_after} s.", headers={"Retry-After": str(e.retry_after)},
                           code="server_busy") from None

    async def answer(self, target: Target, image, prompt: str, gen: dict):
        fut = self.submit(target, image, prompt, gen)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), REQUEST_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise ApiError(503, f"No answer within {REQUEST_TIMEOUT_S:.0f} s.", "Retry later; the server is overloaded.",
                           headers={"Retry-After": "30"}) from None
        except ApiError:
            raise
        except Exception as e:  # noqa: BLE001 - StudioError from generate: a clear message, not a 500
            from core.errors import StudioError
            if isinstance(e, StudioError):
                raise ApiError(400, e.message, e.hint) from None
            raise

    def prompt_tokens(self, target: Target, prompt: str) -> int:
        """Tokens of the prompt as the model saw it (chat template + the image's tokens). Counted
        with a copy of the tokenizer: the engine's own one is busy padding batches."""
        from core.infer import chat_messages

        proc = target.engine.processor
        with _COUNT_LOCK:
            tok = _COUNTERS.get(id(proc))
            if tok is None:
                tok = _COUNTERS[id(proc)] = copy.deepcopy(proc.tokenizer)
            text = proc.apply_chat_template(chat_messages(prompt), add_generation_prompt=True, tokenize=False)
            n = len(tok(text, add_special_tokens=False)["input_ids"])
        return n + max(0, int(getattr(proc, "image_seq_length", 0) or 0) - 1)


_COUNTERS: dict[int, object] = {}
_COUNT_LOCK = threading.Lock()


def stream(runner: Runner, target: Target, image, prompt: str, gen: dict):
    """(text pieces as the model writes them, the Future of the whole Answer). The job is queued
    (or refused with 503) before this returns, so a client never gets a stream that cannot start."""
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    gone = threading.Event()

    class ClientGone(StoppingCriteria):  # a client that hung up stops its generation at the next token
        def __call__(self, input_ids, scores, **kwargs):
            return gone.is_set()

    streamer = TextIteratorStreamer(target.engine.processor.tokenizer, skip_prompt=True,
                                    skip_special_tokens=True, timeout=REQUEST_TIMEOUT_S)
    fut = runner.submit(target, image, prompt, {**gen, "stopping_criteria": StoppingCriteriaList([ClientGone()])},
                        streamer)

    def pieces():
        try:
            for piece in streamer:
                if piece:
                    yield piece
        finally:  # also when the response is closed early (the client disconnected)
            gone.set()
    return pieces(), fut


def client_gen(temperature=None, top_p=None, max_tokens=None) -> dict:
    """A client's sampling options -> Engine.generate overrides. Without a temperature the task's
    preset decides (core/decoding.py: greedy for the bundled tasks); 0 is greedy; above 0 samples with it."""
    gen: dict = {}
    try:
        if max_tokens is not None and int(max_tokens) > 0:
            gen["max_new_tokens"] = int(max_tokens)
        if temperature is not None and float(temperature) > 0:
            gen.update(sample=True, temperature=float(temperature))
            if top_p is not None and 0 < float(top_p) <= 1:
                gen["top_p"] = float(top_p)
        elif temperature is not None:
            gen["sample"] = False  # 0 is greedy whatever the preset says
    except (TypeError, ValueError):
        raise ApiError(400, "temperature, top_p and max tokens must be numbers.",
                       "e.g. temperature 0 (greedy), max tokens 256.") from None
    return gen


def last_turn(messages, image_of, default_prompt: str) -> tuple[str, object]:
    """(prompt, image) from chat messages: system texts, then the last user message's text; the
    image is that of the last message carrying one. The model answers one turn about one image,
    as it was trained (earlier turns are not replayed). An empty user text asks the task's own
    prompt, the one the run was trained on."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "No messages were sent.", "Send messages=[{'role': 'user', 'content': ..., ...}].")
    system, user, image = [], None, None
    for m in messages:
        if not isinstance(m, dict):
            raise ApiError(400, "Each message must be an object with a role and content.", "")
        text, img = image_of(m)
        if m.get("role") == "system" and text:
            system.append(text)
        elif m.get("role") == "user":
            user = text
        if img is not None:
            image = img
    if user is None:
        raise ApiError(400, "There is no user message.", "Add {'role': 'user', 'content': ...}.")
    if image is None:
        raise ApiError(400, "No image was sent.", "This model answers about a picture: attach one to the user "
                       "message (Ollama: images=[path or base64]; OpenAI: an image_url data: URI).")
    return "\n\n".join([*system, user.strip() or default_prompt]), image
