"""Requests that arrive together are decoded together: one batch row per request, each with its
own control (a method's ``steer`` takes one control per row, as a sweep packs them).

The batcher waits up to ``max_wait`` after the first waiting request for others (at most
``max_batch``), splits what it collected into groups that can share one ``generate`` call (same
method entry, same decoding: greedy rows always share; a seeded sampled request decodes alone so
its seed means the same alone or not), and hands each group to ``Lab.answer`` on one worker
thread, so the event loop keeps accepting, refusing and streaming meanwhile. The watch it passes
feeds every row its token after every step (``Row.push``): a row ends at its own ``max_tokens``,
stop sequence or when its client has gone, while the others go on. A batch is formed once: a
request that arrives while one decodes waits for the next (no continuous batching).

Bounded: more than ``max_queue`` requests waiting to start is a 429, never an unbounded queue.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from steerlab.controls import Control
from steerlab.inspect.base import OpenRun
from steerlab.model.generation import GenerationSettings, Step
from steerlab.model.prompts import Prompt
from steerlab.serve.protocol import ApiError
from steerlab.serve.rows import Answer, Row

log = logging.getLogger("steerlab.serve")
_ids = itertools.count()


@dataclass(frozen=True)
class Decoding:
    """How a request samples: greedy (``do_sample`` False) or at a temperature and top-p; a seeded
    sampled request carries its seed."""

    do_sample: bool
    temperature: float
    top_p: float
    seed: int | None = None

    def settings(self, base: GenerationSettings) -> GenerationSettings:
        if not self.do_sample:
            return replace(base, do_sample=False)
        return replace(base, do_sample=True, temperature=self.temperature, top_p=self.top_p)


@dataclass
class Job:
    """One request waiting for, or inside, a batch. Its events (streamed pieces, then its
    ``Answer`` or an error) arrive on the event loop that made it."""

    entry: str
    prompt: Prompt
    control: Control
    decoding: Decoding
    row: Row
    loop: asyncio.AbstractEventLoop
    id: int = field(default_factory=lambda: next(_ids))
    events: asyncio.Queue = field(default_factory=asyncio.Queue)

    def __post_init__(self) -> None:
        self.row.emit = self.send

    def send(self, item: Any) -> None:
        """Deliver a piece, an answer or an error from any thread."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the loop has closed (server stopping): nobody is listening
            pass

    def group(self) -> Hashable:
        """Requests with the same group share a generate call."""
        seeded = self.decoding.do_sample and self.decoding.seed is not None
        return (self.entry, self.decoding, self.id if seeded else None)

    async def items(self) -> AsyncIterator[str | Answer]:
        """Streamed pieces, then the answer; an error is raised."""
        while True:
            item = await self.events.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, Answer):
                return

    async def answer(self) -> Answer:
        async for item in self.items():
            if isinstance(item, Answer):
                return item
        raise RuntimeError("a job ended without an answer")


@dataclass
class Stats:
    """What the server has done, for /health, the benchmark and the tests."""

    batches: list[int] = field(default_factory=list)  # rows per generate call, in order (the last 1000)
    ended: deque = field(default_factory=lambda: deque(maxlen=1000))  # (job id, reason, tokens) per finished row
    running: int = 0

    def record(self, jobs: list[Job]) -> None:
        self.ended.extend((j.id, j.row.reason or "length", len(j.row.ids)) for j in jobs)


class Batcher:
    """Collects jobs into batches and decodes them one batch at a time on a worker thread."""

    def __init__(self, entries: dict[str, OpenRun], max_batch: int, max_wait_s: float, max_queue: int) -> None:
        self.entries, self.max_batch, self.max_wait_s, self.max_queue = entries, max_batch, max_wait_s, max_queue
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.waiting = 0  # submitted, not yet started
        self.stats = Stats()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="steerlab-decode")
        self.live: list[Job] = []  # the batch decoding now

    def submit(self, job: Job) -> None:
        if self.waiting >= self.max_queue:
            raise ApiError(429, f"the server is busy: {self.waiting} requests are waiting (the queue holds {self.max_queue}); "
                                "retry later", kind="rate_limit_error", code="queue_full")
        self.waiting += 1
        self.queue.put_nowait(job)

    async def run(self) -> None:
        """Forever: collect, group, decode."""
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            for group in self._groups(jobs):
                self.waiting -= len(group)
                live = [j for j in group if not j.row.cancelled]
                if live:
                    await loop.run_in_executor(self.executor, self._decode, live)

    async def _collect(self) -> list[Job]:
        """The first waiting job and whatever else arrives within ``max_wait_s`` (up to ``max_batch``)."""
        loop = asyncio.get_running_loop()
        jobs = [await self.queue.get()]
        deadline = loop.time() + self.max_wait_s
        while len(jobs) < self.max_batch:
            if not self.queue.empty():
                jobs.append(self.queue.get_nowait())
                continue
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                jobs.append(await asyncio.wait_for(self.queue.get(), left))
            except TimeoutError:
                break
        return jobs

    @staticmethod
    def _groups(jobs: list[Job]) -> list[list[Job]]:
        groups: dict[Hashable, list[Job]] = {}
        for job in jobs:
            groups.setdefault(job.group(), []).append(job)
        return list(groups.values())

    def _decode(self, jobs: list[Job]) -> None:
        """One generate call for ``jobs`` (worker thread); every job gets its answer or the error."""
        self.live, self.stats.running = jobs, len(jobs)
        try:
            answers = self._answers(jobs)
        except Exception as exc:  # noqa: BLE001  a failed batch answers its requests, the server lives on
            log.exception("a batch of %d failed", len(jobs))
            error = ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", kind="server_error")
            for job in jobs:
                job.send(error)
            return
        finally:
            self.live, self.stats.running = [], 0
        self.stats.batches = [*self.stats.batches[-999:], len(jobs)]
        self.stats.record(jobs)
        for job, answer in zip(jobs, answers):
            job.send(answer)

    def _answers(self, jobs: list[Job]) -> list[Answer]:
        run = self.entries[jobs[0].entry]
        decoding = jobs[0].decoding
        settings = replace(decoding.settings(run.lab.settings), batch_size=len(jobs),
                           max_new_tokens=max(j.row.max_tokens for j in jobs))
        if decoding.do_sample and decoding.seed is not None:
            torch.manual_seed(decoding.seed)
        gens = run.lab.answer(run.method, run.artifact, run.entry.space, [j.control for j in jobs], [j.prompt for j in jobs],
                              settings, desc=None, watch=self._watch(jobs))
        return [job.row.answer(gen) for job, gen in zip(jobs, gens)]

    @staticmethod
    def _watch(jobs: list[Job]) -> Callable[[list[int]], Step]:
        """The generation watch: batch row r of a call over ``rows`` is ``jobs[rows[r]]``."""
        def over(rows: list[int]) -> Step:
            def step(tokens: torch.Tensor) -> torch.Tensor:
                return torch.tensor([jobs[i].row.push(t) for i, t in zip(rows, tokens.tolist())], dtype=torch.bool)
            return step
        return over

    def stop(self) -> None:
        """End every row decoding now (server shutdown) and let the worker go."""
        for job in self.live:
            job.row.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)
