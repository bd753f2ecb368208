"""``EvaltuneModelAPI``: Inspect's ``evaltune/<model-or-checkpoint>`` provider on a SamplingClient.

``inspect eval TASK --model evaltune/gemma-3-270m`` (or ``evaltune/./my-model``,
``evaltune/runs/<id>/checkpoints/<model_id>/sampler_weights/round-2``, ``evaltune/tinker://...``)
resolves the name on the local backend, renders Inspect's chat messages with the model's
renderer (``-M renderer=...``: ``auto``, ``chat_template``, ``role_colon``) and samples through
``SamplingClient.sample``. From Python, ``get_model("evaltune/<name>", sampler=..., renderer=...)``
takes an existing SamplingClient instead (the loop's ``inspect:`` suites pass the run's, so a
Tinker run is evaluated on Tinker).

Why it batches: each ``generate`` submits its ``sample`` and *awaits* the future without
blocking Inspect's event loop, so with ``--max-connections 32`` up to 32 requests are in flight
at once; the local engine coalesces concurrent requests into one batched decode (see
``engine.batcher``), so many Inspect samples cost one forward pass per token, not one
``generate`` each. ``max_connections`` defaults to 64, the batcher's widest batch; ``max_tokens``,
when the task and the command line set none, to 128 (said once in the log).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from inspect_ai.model import (
    ChatCompletionChoice,
    ChatMessage,
    ChatMessageAssistant,
    GenerateConfig,
    Logprob,
    Logprobs,
    ModelAPI,
    ModelOutput,
    ModelUsage,
)
from inspect_ai.tool import ToolChoice, ToolInfo
from tinker import types

from evaltune.data import Message, Renderer, get_renderer
from evaltune.errors import EvalError, EvaltuneError
from evaltune.evals import sampling_stop

__all__ = ["MODEL_ARGS", "EvaltuneModelAPI", "resolve_sampler", "sampling_params", "to_messages"]

MODEL_ARGS = ("renderer", "base_model", "checkpoint_dir", "device", "dtype", "sampler")
DEFAULT_MAX_CONNECTIONS = 64  # the engine batcher's widest batch (engine.batcher max_rows)
DEFAULT_MAX_TOKENS = 128  # new tokens per sample when the task and the command line set none
log = logging.getLogger(__name__)
_ROLES = ("system", "user", "assistant")


def _user_error(message: str) -> Exception:
    """An error Inspect's CLI prints as one message, without a traceback (its
    ``PrerequisiteError``, which is not public API: an ``EvalError`` where it has moved)."""
    try:
        from inspect_ai._util.error import PrerequisiteError
    except ImportError:  # pragma: no cover - a later Inspect moved it
        return EvalError(message)
    return PrerequisiteError(message)


def resolve_sampler(
    name: str,
    *,
    base_model: str | None = None,
    checkpoint_dir: str | Path | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> Any:
    """A local SamplingClient for ``name``: a checkpoint (``tinker://`` path or a folder with
    ``adapter_config.json``) on its base model, else a base model (alias, folder, HF id)."""
    from evaltune.backends.local import ServiceClient, run_checkpoint_dir

    folder = checkpoint_dir or run_checkpoint_dir(name)
    service = ServiceClient(checkpoint_dir=folder, device=device, dtype=dtype)
    if name.startswith("tinker://") or (Path(name) / "adapter_config.json").is_file():
        return service.create_sampling_client(model_path=name, base_model=base_model).result()
    return service.create_sampling_client(base_model=name).result()


def to_messages(input: Sequence[ChatMessage]) -> list[Message]:
    """Inspect's chat messages as evaltune ``Message``s (text only; tool turns refused)."""
    messages = []
    for m in input:
        if m.role not in _ROLES:
            raise EvalError(
                f"evaltune provider: a {m.role!r} message; only system, user and assistant "
                "turns can be rendered (tool calling is not supported)"
            )
        if not isinstance(m.content, str) and any(c.type != "text" for c in m.content):
            kinds = sorted({c.type for c in m.content if c.type != "text"})
            raise EvalError(f"evaltune provider: text only; a {m.role} message holds {kinds}")
        messages.append(Message(m.role, m.text))
    return messages


def sampling_params(
    config: GenerateConfig, renderer_stops: Sequence[str | int], tokenizer: Any
) -> types.SamplingParams:
    """Inspect's GenerateConfig as Tinker ``SamplingParams``.

    ``temperature`` None is 1.0 (Tinker's and OpenAI's default; pass 0 for greedy), ``top_k``
    None is no limit, ``max_tokens`` None is the engine's default within the context. The
    renderer's stops (end of turn) come first, then ``stop_seqs``; when those mix token ids and
    strings, the ids are spelled as their token text, which the engine matches too.
    """
    extra = list(config.stop_seqs or [])
    stops: list[str | int] = [*renderer_stops, *extra]
    if extra and any(isinstance(s, int) for s in stops):
        stops = [tokenizer.decode([s]) if isinstance(s, int) else s for s in stops]
    stop = sampling_stop(stops)
    return types.SamplingParams(
        max_tokens=config.max_tokens,
        temperature=1.0 if config.temperature is None else config.temperature,
        top_p=1.0 if config.top_p is None else config.top_p,
        top_k=-1 if config.top_k is None else config.top_k,
        seed=config.seed,
        stop=stop or None,
    )


async def _wait(future: Any) -> Any:
    """A SamplingClient future's result, awaited without blocking the event loop."""
    if hasattr(future, "result_async"):
        return await future.result_async()
    if callable(getattr(future, "future", None)):
        return await asyncio.wrap_future(future.future())
    return await asyncio.to_thread(future.result)


def _cut(text: str, stops: Sequence[str]) -> str:
    """``text`` ending before the first of ``stops`` (OpenAI's stop semantics)."""
    at = min((text.index(s) for s in stops if s and s in text), default=len(text))
    return text[:at]


class EvaltuneModelAPI(ModelAPI):
    """Inspect model provider on an evaltune SamplingClient (see the module docstring)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 (Inspect's own signature)
        **model_args: Any,
    ) -> None:
        super().__init__(model_name=model_name, base_url=base_url, api_key=api_key, config=config)
        unknown = sorted(set(model_args) - set(MODEL_ARGS))
        if unknown:
            raise _user_error(
                f"evaltune provider: unknown model args {unknown}; choose from "
                + ", ".join(MODEL_ARGS)
            )
        if not model_name:
            raise _user_error(
                "evaltune provider: no model; write evaltune/<alias, folder, HF id, "
                "checkpoint folder or tinker:// path>, e.g. evaltune/gemma-3-270m"
            )
        try:
            sampler = model_args.get("sampler") or resolve_sampler(
                model_name,
                base_model=model_args.get("base_model"),
                checkpoint_dir=model_args.get("checkpoint_dir"),
                device=model_args.get("device"),
                dtype=model_args.get("dtype"),
            )
            self.sampler = sampler
            self._said_max_tokens = False
            self.tokenizer = sampler.get_tokenizer()
            renderer = model_args.get("renderer") or "auto"
            self.renderer: Renderer = (
                get_renderer(renderer, self.tokenizer) if isinstance(renderer, str) else renderer
            )
        except EvaltuneError as exc:
            raise _user_error(f"evaltune/{model_name}: {exc}") from None

    def max_connections(self) -> int:
        return DEFAULT_MAX_CONNECTIONS

    def max_tokens(self) -> int:
        """The default when neither the task nor ``--max-tokens`` sets one: short, because a
        small model on a CPU decodes tens of tokens a second and most tasks' answers are a line
        or a number (Inspect asks for no limit otherwise, and the engine would spend up to 256
        tokens an item). Said once in Inspect's log, with how to change it."""
        if not self._said_max_tokens:
            self._said_max_tokens = True
            log.warning(
                "evaltune/%s: the task sets no max_tokens; using %d new tokens per sample "
                "(pass --max-tokens N, or set it in the task's GenerateConfig, for longer "
                "answers)",
                self.model_name,
                DEFAULT_MAX_TOKENS,
            )
        return DEFAULT_MAX_TOKENS

    def connection_key(self) -> str:
        return self.model_name  # one engine per base model: its requests share one pool

    def collapse_user_messages(self) -> bool:
        return True  # chat templates such as Gemma's require alternating turns

    def collapse_assistant_messages(self) -> bool:
        return True

    def collapse_system_messages(self) -> bool:
        return True

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        if tools:
            raise EvalError(
                "evaltune provider: tool calling is not supported; use a task without tools"
            )
        prompt = self.renderer.render_prompt(to_messages(input))
        params = sampling_params(config, self.renderer.stop_sequences, self.tokenizer)
        started = time.monotonic()
        future = self.sampler.sample(
            types.ModelInput.from_ints(prompt), config.num_choices or 1, params
        )
        response = await _wait(future)
        stops = list(config.stop_seqs or [])
        choices = [self._choice(seq, stops, bool(config.logprobs)) for seq in response.sequences]
        output_tokens = sum(len(seq.tokens) for seq in response.sequences)
        return ModelOutput(
            model=self.model_name,
            choices=choices,
            usage=ModelUsage(
                input_tokens=len(prompt),
                output_tokens=output_tokens,
                total_tokens=len(prompt) + output_tokens,
            ),
            time=time.monotonic() - started,
        )

    def _choice(
        self, seq: types.SampledSequence, stops: list[str], logprobs: bool
    ) -> ChatCompletionChoice:
        text = _cut(self.renderer.parse_response(seq.tokens), stops).strip()
        lps = None
        if logprobs and seq.logprobs:
            lps = Logprobs(
                content=[
                    Logprob(token=self.tokenizer.decode([t]), logprob=float(lp))
                    for t, lp in zip(seq.tokens, seq.logprobs, strict=False)
                ]
            )
        return ChatCompletionChoice(
            message=ChatMessageAssistant(content=text, model=self.model_name, source="generate"),
            stop_reason="max_tokens" if seq.stop_reason == "length" else "stop",
            logprobs=lps,
        )
