"""Generations in flight: per-request token caps, a bounded queue, and cancellation.

Every sample request, from the OpenAI routes or Tinker's ``asample``, is admitted here before
it reaches the engine's batcher. The engine decodes on one worker, so without limits one request
could hold it for minutes: ``max_tokens`` above the server's cap is a 400 (the default fits the
machine: ``CPU_MAX_TOKENS`` on a CPU, ``ACCELERATOR_MAX_TOKENS`` on a GPU), and a full queue
(``max_pending`` generations admitted and not finished) is a 429 with ``Retry-After``, which the
OpenAI clients and the Tinker SDK both wait out and retry. Each admitted generation carries a
cancel event that the engine checks once per decode step: a client that disconnects (HTTP), a
Tinker ``cancel_future`` and a shutting-down server set it, so abandoned work stops within a
step instead of running to its budget. While the server drains, new generations are a 503.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from starlette.requests import Request

from evaltune.engine.batcher import SampleBatcher, SampleOutput
from evaltune.engine.sampling import DEFAULT_MAX_TOKENS, SampleSpec
from evaltune.errors import EvaltuneError
from evaltune.server.http import ApiError

__all__ = [
    "ACCELERATOR_MAX_TOKENS",
    "CPU_MAX_TOKENS",
    "MAX_PENDING",
    "Generations",
    "Ticket",
    "default_max_tokens",
    "gather",
    "settle",
    "wait_or_cancel",
]

CPU_MAX_TOKENS = 1024
ACCELERATOR_MAX_TOKENS = 4096
MAX_PENDING = 256
RETRY_AFTER_S = 1


def default_max_tokens(device_type: str) -> int:
    """The per-request cap when none is configured: what the machine decodes in about a minute
    with gemma-3-270m, so one request cannot hold the worker for much longer."""
    return CPU_MAX_TOKENS if device_type == "cpu" else ACCELERATOR_MAX_TOKENS


@dataclass
class Ticket:
    """One admitted generation: its future and the event that stops its decode."""

    future: Future[SampleOutput]
    stop: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.stop.set()
        self.future.cancel()  # before it starts: never runs; once running: the event stops it

    @property
    def cancelled(self) -> bool:
        return self.stop.is_set() or self.future.cancelled()


class Generations:
    def __init__(self, batcher: SampleBatcher, max_tokens: int, max_pending: int) -> None:
        self.batcher = batcher
        self.max_tokens = max_tokens
        self.max_pending = max_pending
        self.closing = False
        self._live: dict[Future[SampleOutput], Ticket] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._live)

    def live(self) -> list[Ticket]:
        """The generations admitted and not finished, oldest first."""
        with self._lock:
            return list(self._live.values())

    def budget(self, max_tokens: int | None, name: str = "max_tokens") -> int | None:
        """``max_tokens`` checked against the cap (None: the engine's default, within it)."""
        if max_tokens is None:
            return None if self.max_tokens >= DEFAULT_MAX_TOKENS else self.max_tokens
        if max_tokens > self.max_tokens:
            raise ApiError(
                400,
                f"{name} {max_tokens} is over this server's limit of {self.max_tokens} tokens "
                "per request (so that one request cannot hold the model for long); ask for at "
                "most that many, or start evaltune serve with a higher max_tokens limit",
            )
        return max_tokens

    def start(
        self, adapter: Path | None, specs: list[SampleSpec], prompt_logprobs: bool = False
    ) -> list[Ticket]:
        """Admit ``specs`` together and queue them on the batcher; 429/503 when it cannot."""
        if len(specs) > self.max_pending:
            raise ApiError(
                400,
                f"a request of {len(specs)} prompts is over this server's queue of "
                f"{self.max_pending}; send at most {self.max_pending} at once",
            )
        with self._lock:
            if self.closing:
                raise ApiError(
                    503,
                    "evaltune serve is shutting down and takes no new generations",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            if len(self._live) + len(specs) > self.max_pending:
                raise ApiError(
                    429,
                    f"the server is busy: {len(self._live)} generations are queued or running "
                    f"(at most {self.max_pending}); retry after {RETRY_AFTER_S}s",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            tickets = []
            for spec in specs:
                stop = threading.Event()
                future = self.batcher.submit(adapter, replace(spec, cancel=stop), prompt_logprobs)
                ticket = Ticket(future, stop)
                self._live[future] = ticket
                tickets.append(ticket)
        for ticket in tickets:  # outside the lock: a finished future calls back at once
            ticket.future.add_done_callback(self._finished)
        return tickets

    def _finished(self, future: Future[SampleOutput]) -> None:
        with self._lock:
            self._live.pop(future, None)

    def cancel(self, future: Future[object]) -> bool:
        """Stop the generation behind ``future``; False if it is not one of ours (or is done)."""
        ticket = self._live.get(future)  # type: ignore[call-overload]
        if ticket is None:
            return False
        ticket.cancel()
        return True

    def close(self) -> None:
        """Refuse new generations (503): the server is draining."""
        with self._lock:
            self.closing = True

    def cancel_all(self) -> None:
        for ticket in self.live():
            ticket.cancel()


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (the body has been read, so only that can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def wait_or_cancel(request: Request, tickets: list[Ticket]) -> list[SampleOutput]:
    """The tickets' results; if the client disconnects first (or this handler is cancelled),
    their generations are cancelled and the answer is a 499 nobody reads."""
    waiting = gather(tickets)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not waiting.done():
            for ticket in tickets:
                ticket.cancel()
    if not waiting.done():
        waiting.cancel()
        raise ApiError(499, "the client closed the request; its generation was cancelled")
    return settle(tickets, waiting)


def gather(tickets: list[Ticket]) -> asyncio.Future[list[SampleOutput]]:
    """One awaitable for the tickets' results, in order."""
    return asyncio.gather(*(asyncio.wrap_future(t.future) for t in tickets))


def settle(tickets: list[Ticket], waiting: asyncio.Future[Any]) -> list[SampleOutput]:
    """The results of a finished ``gather``, or why there are none as the route's ApiError:
    stopped by the server's shutdown (503), or refused by the engine (400)."""
    failed = None if waiting.cancelled() else waiting.exception()  # (retrieved either way)
    if any(t.cancelled for t in tickets):  # stopped by the server's shutdown, not the client
        raise ApiError(
            503,
            "evaltune serve is shutting down; the generation was stopped before it finished",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    if isinstance(failed, EvaltuneError):
        raise ApiError(400, str(failed)) from None
    return waiting.result()
