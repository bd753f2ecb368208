"""OpenAI-compatible ``/v1/models``, ``/v1/completions`` and ``/v1/chat/completions``.

A model is chosen by name: the base model (as started, as ``--served-model-name``, or its
local folder), any saved adapter as ``<model_id>/<name>`` or its full ``tinker://`` path, or,
with ``evaltune serve --runs WORKSPACE``, a run's best round as ``<run-id>`` and each round as
``<run-id>/round-<k>``. ``/v1/models`` lists them all. Requests go through the
engine's sample batcher, so concurrent requests for one model decode together. Chat prompts
use the tokenizer's own chat template; a model without one answers chat with a 400 that points
to ``/v1/completions``. Returned text excludes the stop string that ended it, as OpenAI's does;
``stream: true`` sends the text as it is generated (server-sent events, ``server.streaming``).
Generations are admitted, capped and cancelled by ``server.generations``: a client that
disconnects while its answer is generated (streaming or not) stops the decode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from jinja2 import TemplateError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from evaltune.bridge import CheckpointError, CheckpointRef
from evaltune.engine import SampleSpec
from evaltune.server import openai_schema as schema
from evaltune.server.generations import gather, settle, wait_or_cancel
from evaltune.server.http import ApiError, read_model
from evaltune.server.logprobs import attach_logprobs
from evaltune.server.state import ServerState
from evaltune.server.streaming import TextDeltas, TokenStream, first_event, sse, tokens_until_done

__all__ = ["openai_router"]


def _cut(text: str, stops: list[str]) -> str:
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(cuts)] if cuts else text


def openai_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/v1")
    limit = state.config.max_body_bytes
    tokenizer = state.engine.tokenizer

    def adapter(name: str) -> Path | None:
        if name in state.base_names():
            return None
        named = state.named_adapters().get(name)
        if named is not None:
            state.check_adapter_base(named, f"model {name!r}")
            return named
        try:
            folder = state.checkpoints.folder(name)
        except CheckpointError:
            raise ApiError(
                404,
                f"model {name!r} does not exist on this server; GET /v1/models lists the base "
                f"model ({state.served_name}) and every saved sampler checkpoint",
            ) from None
        state.check_adapter_base(folder, f"model {name!r}")
        return folder

    def specs(
        prompts: list[list[int]], req: schema._Request, budget: int | None, stream: Any
    ) -> list[SampleSpec]:
        return [
            SampleSpec(
                prompt=prompt,
                num_samples=req.n,
                max_tokens=budget,
                temperature=req.temperature,
                top_p=req.top_p,
                stop_strings=req.stops,
                seed=req.seed,
                on_token=None if stream is None else stream.callback(i * req.n),
            )
            for i, prompt in enumerate(prompts)
        ]

    def choices_of(outputs: list[Any], req: schema._Request) -> list[schema.Choice]:
        choices = []
        for s in (s for out in outputs for s in out.samples):
            text = tokenizer.decode(s.tokens, skip_special_tokens=True)
            choices.append(
                schema.Choice(
                    text=_cut(text, req.stops),
                    finish_reason=s.stop_reason,
                    tokens=len(s.tokens),
                    token_ids=list(s.tokens),
                )
            )
        return choices

    async def generate(
        request: Request,
        folder: Path | None,
        prompts: list[list[int]],
        req: schema._Request,
        budget: int | None,
        name: str = "max_tokens",
    ) -> list[schema.Choice]:
        """Every prompt's samples, decoded together; cancelled if the client goes away."""
        budget = state.generations.budget(budget, name)
        tickets = state.generations.start(folder, specs(prompts, req, budget, None))
        return choices_of(await wait_or_cancel(request, tickets), req)

    async def stream(
        folder: Path | None,
        prompts: list[list[int]],
        req: schema._Request,
        budget: int | None,
        chunks: schema.StreamChunks,
        name: str = "max_tokens",
    ) -> StreamingResponse:
        """Server-sent events as the tokens are drawn (``server.streaming``)."""
        budget = state.generations.budget(budget, name)
        tokens = TokenStream()
        tickets = state.generations.start(folder, specs(prompts, req, budget, tokens))
        waiting = gather(tickets)
        try:
            await first_event(tokens, waiting)
            if waiting.done():
                settle(tickets, waiting)  # refused before any token: still an HTTP error
        except BaseException:
            for ticket in tickets:
                ticket.cancel()
            raise
        deltas = TextDeltas(tokenizer, len(prompts) * req.n, req.stops)

        async def events() -> AsyncIterator[str]:
            try:
                for chunk in chunks.start(len(prompts) * req.n):
                    yield sse(chunk)
                async for choice, token in tokens_until_done(tokens, waiting):
                    if text := deltas.add(choice, token):
                        yield sse(chunks.delta(choice, text))
                try:
                    final = choices_of(settle(tickets, waiting), req)
                except ApiError as exc:  # the status line is sent: the error goes in the stream
                    yield sse({"error": {"type": exc.type, "message": exc.message}})
                    return
                for i, c in enumerate(final):
                    if rest := deltas.finish(i, c.text):
                        yield sse(chunks.delta(i, rest))
                for i, c in enumerate(final):
                    yield sse(chunks.finish(i, c.finish_reason))
                if req.include_usage:
                    yield sse(chunks.usage(final))
                yield sse("[DONE]")
            finally:  # the client went away (the response is cancelled) or it is all sent
                if not waiting.done():
                    for ticket in tickets:
                        ticket.cancel()

        return StreamingResponse(events(), media_type="text/event-stream")

    @router.get("/models")
    async def list_models() -> dict[str, Any]:
        entries = [
            {
                "id": state.served_name,
                "object": "model",
                "created": 0,
                "owned_by": "evaltune",
                "root": state.base_model,
            }
        ]
        for name, folder in state.named_adapters().items():
            entries.append(
                {
                    "id": name,
                    "object": "model",
                    "created": int(folder.stat().st_mtime) if folder.exists() else 0,
                    "owned_by": "evaltune",
                    "root": state.base_model,
                }
            )
        for c in state.checkpoints.all_checkpoints():
            if c.checkpoint_type != "sampler":
                continue
            ref = CheckpointRef.parse(c.tinker_path)
            entries.append(
                {
                    "id": f"{ref.model_id}/{ref.name}",
                    "object": "model",
                    "created": int(c.time.timestamp()),
                    "owned_by": "evaltune",
                    "root": state.base_model,
                    "tinker_path": c.tinker_path,
                }
            )
        return {"object": "list", "data": entries}

    @router.post("/completions")
    async def completions(request: Request) -> Response:
        req = await read_model(request, schema.CompletionRequest, limit)
        folder = adapter(req.model)
        prompts: list[Any] = req.prompt if isinstance(req.prompt, list) else [req.prompt]
        if all(isinstance(p, int) for p in prompts):
            prompts = [prompts]  # one prompt given as token ids
        encoded = [p if isinstance(p, list) else tokenizer(p).input_ids for p in prompts]
        used = sum(len(ids) for ids in encoded)
        if req.stream:
            chunks = schema.StreamChunks(False, req.model, used)
            return await stream(folder, encoded, req, req.max_tokens, chunks)
        if req.max_tokens == 0:  # echo only: score the prompt, generate nothing
            choices = [
                schema.Choice(text="", finish_reason="length", tokens=0)
                for _ in range(len(encoded) * req.n)
            ]
        else:
            choices = await generate(request, folder, encoded, req, req.max_tokens)
        if req.echo or req.logprobs is not None:
            texts = [
                p if isinstance(p, str) else tokenizer.decode(p, skip_special_tokens=False)
                for p in prompts
            ]
            await attach_logprobs(
                state.engine, folder, encoded, texts, choices, req.n, req.logprobs, req.echo
            )
        return JSONResponse(schema.completion_response(req.model, choices, used))

    @router.post("/chat/completions")
    async def chat_completions(request: Request) -> Response:
        req = await read_model(request, schema.ChatRequest, limit)
        folder = adapter(req.model)
        if not getattr(tokenizer, "chat_template", None):
            raise ApiError(400, f"{state.base_model} has no chat template; use /v1/completions")
        messages = [
            {
                "role": "system" if m.role == "developer" else m.role,
                "content": schema.message_text(m),
            }
            for m in req.messages
        ]
        try:
            text = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
        except TemplateError as exc:
            raise ApiError(400, f"the chat template rejected these messages: {exc}") from None
        ids = tokenizer(text, add_special_tokens=False).input_ids
        name = "max_completion_tokens" if req.max_completion_tokens else "max_tokens"
        if req.stream:
            chunks = schema.StreamChunks(True, req.model, len(ids))
            return await stream(folder, [ids], req, req.token_budget, chunks, name)
        choices = await generate(request, folder, [ids], req, req.token_budget, name)
        return JSONResponse(schema.chat_response(req.model, choices, len(ids)))

    return router
