"""Token streaming for the OpenAI routes (``stream: true``): server-sent events as tokens are drawn.

The engine calls each sample's ``on_token`` on its worker thread; ``TokenStream`` hands the
token to the event loop, and the route's event generator turns every choice's tokens into text
deltas. A delta never holds text that may still turn out to be part of a stop string (the last
``len(longest stop) - 1`` characters wait) or half of a multi-byte character (a trailing
``\\ufffd`` waits); when the generation ends, the rest of the final, stop-cut text is sent, so
the assembled stream equals the non-streamed answer. Errors found before the first token (a
prompt over the context, a bad adapter) are still an HTTP 4xx, because the response starts only
once the first token or the result is in. A client that goes away cancels the generation, as
without streaming.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

__all__ = ["TextDeltas", "TokenStream", "first_event", "sse", "tokens_until_done"]


class TokenStream:
    """Tokens from the engine's worker into the event loop, as ``(choice, token)``."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        self.first: tuple[int, int] | None = None  # taken off the queue by ``first_event``

    def callback(self, offset: int) -> Callable[[int, int], None]:
        """``on_token`` for the spec whose first choice is number ``offset``."""

        def put(sample: int, token: int) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody listens any more
                self.loop.call_soon_threadsafe(self.queue.put_nowait, (offset + sample, token))

        return put


class TextDeltas:
    """Each choice's text so far, and what of it is safe to send."""

    def __init__(self, tokenizer: Any, choices: int, stops: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.tokens: list[list[int]] = [[] for _ in range(choices)]
        self.sent = [""] * choices
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1

    def add(self, choice: int, token: int) -> str:
        """The new text of ``choice`` that can be sent now ("" if none yet)."""
        self.tokens[choice].append(token)
        text = self.tokenizer.decode(self.tokens[choice], skip_special_tokens=True)
        cuts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if cuts:  # a stop string is complete: the answer ends before it
            return self._send(choice, text[: min(cuts)])
        safe = len(text) - self.hold  # the tail could still become a stop string
        while safe > 0 and text[safe - 1] == "\ufffd":  # half a character: wait for the rest
            safe -= 1
        return self._send(choice, text[: max(safe, 0)])

    def finish(self, choice: int, final: str) -> str:
        """What is left of ``choice`` once its final (stop-cut) text is known."""
        return self._send(choice, final)

    def _send(self, choice: int, upto: str) -> str:
        sent = self.sent[choice]
        if len(upto) <= len(sent) or not upto.startswith(sent):
            return ""
        self.sent[choice] = upto
        return upto[len(sent) :]


async def first_event(stream: TokenStream, waiting: asyncio.Future[Any]) -> None:
    """Wait until a token has arrived or the generation is over (the token is kept, first in
    line, for ``tokens_until_done``)."""
    peek = asyncio.ensure_future(stream.queue.get())
    try:
        await asyncio.wait({peek, waiting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if peek.done() and not peek.cancelled():
            stream.first = peek.result()
        else:
            peek.cancel()


async def tokens_until_done(
    stream: TokenStream, waiting: asyncio.Future[Any]
) -> AsyncIterator[tuple[int, int]]:
    """Every ``(choice, token)`` in order, until the generation is over and the queue empty."""
    if stream.first is not None:
        yield stream.first
        stream.first = None
    while True:
        if not stream.queue.empty():
            yield stream.queue.get_nowait()
            continue
        if waiting.done():
            return  # its tokens were queued before it completed (both via the loop, in order)
        get = asyncio.ensure_future(stream.queue.get())
        await asyncio.wait({get, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if get.done():
            yield get.result()
        else:
            get.cancel()


def sse(chunk: dict[str, Any] | str) -> str:
    return f"data: {chunk if isinstance(chunk, str) else json.dumps(chunk)}\n\n"
