"""OpenAI-compatible ``/v1/models``, ``/v1/completions`` and ``/v1/chat/completions``.

A model is chosen by name: the base model (as started, as ``--served-model-name``, or its
local folder), or any saved adapter as ``<model_id>/<name>`` or its full ``tinker://`` path.
``/v1/models`` lists the base model and every sampler checkpoint. Requests go through the
engine's sample batcher, so concurrent requests for one model decode together. Chat prompts
use the tokenizer's own chat template; a model without one answers chat with a 400 that points
to ``/v1/completions``. Returned text excludes the stop string that ended it, as OpenAI's does;
``stream: true`` is answered as a stream of whole-answer chunks (generation is not incremental).
Generations are admitted, capped and cancelled by ``server.generations``: a client that
disconnects while its answer is generated (streaming or not) stops the decode.
"""

from __future__ import annotations

import json
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
from evaltune.server.generations import wait_or_cancel
from evaltune.server.http import ApiError, read_model
from evaltune.server.state import ServerState

__all__ = ["openai_router"]


def _cut(text: str, stops: list[str]) -> str:
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(cuts)] if cuts else text


def _events(chunks: list[dict[str, Any]]) -> StreamingResponse:
    async def gen() -> AsyncIterator[str]:
        for chunk in chunks:
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream")


def openai_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/v1")
    limit = state.config.max_body_bytes
    tokenizer = state.engine.tokenizer

    def adapter(name: str) -> Path | None:
        if name in state.base_names():
            return None
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
        specs = [
            SampleSpec(
                prompt=prompt,
                num_samples=req.n,
                max_tokens=budget,
                temperature=req.temperature,
                top_p=req.top_p,
                stop_strings=req.stops,
                seed=req.seed,
            )
            for prompt in prompts
        ]
        outputs = await wait_or_cancel(request, state.generations.start(folder, specs))
        choices = []
        for s in (s for out in outputs for s in out.samples):
            text = tokenizer.decode(s.tokens, skip_special_tokens=True)
            choices.append(
                schema.Choice(
                    text=_cut(text, req.stops), finish_reason=s.stop_reason, tokens=len(s.tokens)
                )
            )
        return choices

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
        choices = await generate(request, folder, encoded, req, req.max_tokens)
        used = sum(len(ids) for ids in encoded)
        if req.stream:
            return _events(schema.completion_chunks(req.model, choices, used, req.include_usage))
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
        choices = await generate(request, folder, [ids], req, req.token_budget, name)
        if req.stream:
            return _events(schema.chat_chunks(req.model, choices, len(ids), req.include_usage))
        return JSONResponse(schema.chat_response(req.model, choices, len(ids)))

    return router
