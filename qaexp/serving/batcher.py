"""Request batching: questions of requests that arrive within a few milliseconds share one forward pass.

One worker takes the oldest waiting request, adds those already queued and waits at most `max_wait_ms` for more,
up to `max_questions` questions, answers them all in one call on the model thread and hands each request its own
answers. It waits only while requests come together (the last pass answered more than one): a lone client
never waits for company that does not come, and under load the queue fills while the model works anyway. The queue is bounded: when `max_pending` requests wait, a new one is refused
(ServiceBusy, HTTP 503) instead of waiting without end. Answering a request alone or with others gives the same
answers: windows are answered independently, padding is masked and post-processing is per question.

Stopping (close): requests already taken keep being answered for a grace period; then the batch in progress is
abandoned (answer_all sees `abandon` set and gives up at its next forward pass) and every request still
unanswered gets ServiceStopping (HTTP 503), so the model thread ends at once and nobody waits without an answer.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

log = logging.getLogger(__name__)

STOP_GRACE_S = 0.5  # after a stop signal, how long requests in flight may still take before they get 503


class ServiceBusy(Exception):
    pass


class ServiceStopping(Exception):
    """The service stopped before it answered this request."""


@dataclass
class _Waiting:
    questions: list
    reply: asyncio.Future


@dataclass
class BatchStats:
    """What GET /health reports about the batching so far."""

    batches: int = 0  # forward passes
    requests: int = 0
    questions: int = 0
    largest_batch_requests: int = 0
    busy_refusals: int = 0  # 503 answers: the queue was full
    model_seconds: float = 0.0

    def record(self, requests: int, questions: int, seconds: float) -> None:
        self.batches += 1
        self.requests += requests
        self.questions += questions
        self.largest_batch_requests = max(self.largest_batch_requests, requests)
        self.model_seconds += seconds

    def as_dict(self) -> dict:
        return {"batches": self.batches, "requests": self.requests, "questions": self.questions,
                "largest_batch_requests": self.largest_batch_requests, "busy_refusals": self.busy_refusals,
                "mean_batch_requests": round(self.requests / self.batches, 2) if self.batches else 0.0,
                "model_seconds": round(self.model_seconds, 3)}


class RequestBatcher:
    """`answer_all(questions) -> per-question results` runs on one dedicated thread (the model's)."""

    def __init__(self, answer_all: Callable[[list], list], *, batching: bool = True, max_questions: int = 32,
                 max_wait_ms: float = 5.0, max_pending: int = 256, abandon: Optional[threading.Event] = None):
        self.answer_all, self.batching = answer_all, batching
        # Set when the batcher gives up on the batch in progress (the service stops); answer_all may watch it.
        self.abandon = abandon or threading.Event()
        self.max_questions, self.max_wait = max_questions, max_wait_ms / 1000.0
        self.max_pending = max_pending
        self.stats = BatchStats()
        self._queue: Optional[asyncio.Queue] = None
        self._held_over: Optional[_Waiting] = None  # taken from the queue but did not fit the last batch
        self._last_batch_requests = 0
        self._unanswered: set[asyncio.Future] = set()  # the replies of the requests taken, until they are answered
        self._worker: Optional[asyncio.Task] = None
        self._hurry: Optional[asyncio.Event] = None
        self._closing: Optional[asyncio.Task] = None
        self._model_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="qaexp-model")

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.max_pending)
        self._hurry = asyncio.Event()
        self._worker = asyncio.create_task(self._work())

    async def close(self, grace_s: float) -> None:
        """Answer for up to grace_s seconds more (hurry() ends that early), then refuse what is left."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(grace_s))
        await asyncio.shield(self._closing)

    def hurry(self) -> None:
        """End close()'s grace period now: the requests still unanswered get ServiceStopping."""
        if self._hurry is not None:
            self._hurry.set()

    async def stop(self) -> None:
        self.hurry()
        await self.close(0.0)

    async def _close(self, grace_s: float) -> None:
        if self._hurry is not None:
            try:
                await asyncio.wait_for(self._hurry.wait(), grace_s)
            except asyncio.TimeoutError:
                pass
        self.abandon.set()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for reply in list(self._unanswered):  # queued, gathered into a batch, or in the abandoned batch
            if not reply.done():
                reply.set_exception(ServiceStopping("its grace period for requests in flight ended"))
        # Once the model thread is idle: soon, when answer_all watches `abandon`. Meanwhile the loop runs on, so
        # the refused requests get their replies.
        await asyncio.get_running_loop().run_in_executor(None, self._model_thread.shutdown)

    @property
    def pending(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def answer(self, questions: list) -> list:
        if self.abandon.is_set():
            raise ServiceStopping("it takes no more requests")
        waiting = _Waiting(questions, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(waiting)
        except asyncio.QueueFull:
            self.stats.busy_refusals += 1
            raise ServiceBusy(f"{self.max_pending} requests are already waiting; try again shortly") from None
        self._unanswered.add(waiting.reply)
        try:
            return await waiting.reply
        finally:
            self._unanswered.discard(waiting.reply)

    async def _work(self) -> None:
        while True:
            batch = await self._next_batch()
            await self._answer_batch(batch)

    async def _next_batch(self) -> list[_Waiting]:
        first = self._held_over or await self._queue.get()
        self._held_over = None
        batch, questions = [first], len(first.questions)
        if not self.batching:
            return batch
        deadline = time.monotonic() + (self.max_wait if self._last_batch_requests > 1 else 0.0)
        while questions < self.max_questions:
            waiting = await self._next_waiting(deadline)
            if waiting is None:
                break
            if questions + len(waiting.questions) > self.max_questions:
                self._held_over = waiting
                break
            batch.append(waiting)
            questions += len(waiting.questions)
        return batch

    async def _next_waiting(self, deadline: float) -> Optional[_Waiting]:
        if not self._queue.empty():
            return self._queue.get_nowait()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), remaining)
        except asyncio.TimeoutError:
            return None

    async def _answer_batch(self, batch: list[_Waiting]) -> None:
        self._last_batch_requests = len(batch)
        live = [w for w in batch if not w.reply.done()]  # a client that gave up has its future cancelled
        if not live:
            return
        questions = [q for w in live for q in w.questions]
        began = time.perf_counter()
        try:
            answers = await asyncio.get_running_loop().run_in_executor(self._model_thread, self.answer_all,
                                                                       questions)
        except Exception as err:  # one bad batch fails its requests, never the worker
            log.exception("answering a batch of %d questions failed", len(questions))
            for waiting in live:
                if not waiting.reply.done():
                    waiting.reply.set_exception(err)
            return
        self.stats.record(len(live), len(questions), time.perf_counter() - began)
        position = 0
        for waiting in live:
            mine = answers[position: position + len(waiting.questions)]
            position += len(waiting.questions)
            if not waiting.reply.done():
                waiting.reply.set_result(mine)
