"""Coalesce concurrent sample requests into one batched decode per adapter.

An evaluation submits one ``sample`` per prompt, often hundreds at once; run one by one they
would leave the batched sampler with a batch of one. Each request here joins a pending list and
schedules a *drain* on the engine's worker; a drain takes everything pending, groups it by
adapter and runs one ``sample_batch`` per group (at most ``max_rows`` rows each). While one
drain decodes, new requests pile up for the next, so batches grow to match the load without any
waiting timer.

Ordering: a drain runs in the worker's FIFO order like any request, and sampler adapters are
immutable snapshots on disk, so coalescing never lets a sample see weights from a different time.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evaltune.engine.sampling import Sampled, SampleSpec

if TYPE_CHECKING:
    from evaltune.engine.engine import Engine

__all__ = ["SampleBatcher", "SampleOutput"]


@dataclass
class SampleOutput:
    samples: list[Sampled]
    prompt_logprobs: list[float] | None = None  # one per prompt token after the first


@dataclass
class _Request:
    adapter: Path | None  # sampler checkpoint folder; None = the base model
    spec: SampleSpec
    prompt_logprobs: bool
    future: Future[SampleOutput]


class SampleBatcher:
    def __init__(self, engine: Engine, max_rows: int = 64) -> None:
        self._engine = engine
        self._max_rows = max_rows
        self._pending: list[_Request] = []
        self._lock = threading.Lock()
        self.batches_run = 0  # how many sample_batch calls drains made (for tests/benchmarks)

    def submit(
        self, adapter: Path | None, spec: SampleSpec, prompt_logprobs: bool = False
    ) -> Future[SampleOutput]:
        future: Future[SampleOutput] = Future()
        with self._lock:
            self._pending.append(_Request(adapter, spec, prompt_logprobs, future))
        self._engine.submit(self._drain)
        return future

    def _drain(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        groups: dict[Path | None, list[_Request]] = {}
        for req in batch:
            if req.future.set_running_or_notify_cancel():
                groups.setdefault(req.adapter, []).append(req)
        for adapter, reqs in groups.items():
            for chunk in _chunks(reqs, self._max_rows):
                self._settle(adapter, chunk)

    def _settle(self, adapter: Path | None, reqs: list[_Request]) -> None:
        """Run a group; if it fails, run each request alone so a bad one fails only itself."""
        try:
            outputs = self._run(adapter, reqs)
        except Exception as exc:
            if len(reqs) == 1:
                reqs[0].future.set_exception(exc)
            else:
                for req in reqs:
                    self._settle(adapter, [req])
            return
        for req, out in zip(reqs, outputs, strict=True):
            req.future.set_result(out)

    def _run(self, adapter: Path | None, reqs: list[_Request]) -> list[SampleOutput]:
        slot = None if adapter is None else self._engine.sampler_slot(adapter)
        results = self._engine.sample(slot, [r.spec for r in reqs])
        self.batches_run += 1
        wanted = [r.spec.prompt for r in reqs if r.prompt_logprobs]
        scored = iter(self._engine.logprobs(slot, wanted) if wanted else [])
        return [
            SampleOutput(res, next(scored) if r.prompt_logprobs else None)
            for r, res in zip(reqs, results, strict=True)
        ]


def _chunks(reqs: list[_Request], max_rows: int) -> list[list[_Request]]:
    chunks: list[list[_Request]] = [[]]
    rows = 0
    for req in reqs:
        if chunks[-1] and rows + req.spec.num_samples > max_rows:
            chunks.append([])
            rows = 0
        chunks[-1].append(req)
        rows += req.spec.num_samples
    return chunks
