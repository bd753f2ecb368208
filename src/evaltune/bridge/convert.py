"""``tinker.types`` to the engine's plain data and back: one conversion each, used by the local
backend in-process and by ``evaltune serve`` (which adds only the wire encoding).

The engine takes token lists, 1-D tensors and small dataclasses and knows no Tinker type; every
Tinker rule about what those types mean lives here: AdamW only, text chunks only, ``stop`` as
strings or token ids (``None`` keeps the end-of-sequence stop, ``[]`` turns every stop off), and
prompt logprobs with ``None`` for the first token (it has no prefix). A request the engine
cannot serve raises ``BackendError`` (a 400 on the wire).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from tinker import types

from evaltune.engine import AdamConfig, ForwardItem, ForwardResult, SampleSpec
from evaltune.engine.batcher import SampleOutput
from evaltune.errors import BackendError

__all__ = [
    "adam_config",
    "check_optimizer",
    "forward_items",
    "forward_output",
    "input_tokens",
    "prompt_logprobs",
    "sample_response",
    "sample_spec",
]


def check_optimizer(config: object | None) -> None:
    """Refuse an optimizer config other than AdamW (``None`` means the default, AdamW)."""
    kind = getattr(config, "type", "adamw")
    if kind != "adamw":
        raise BackendError(f"optimizer {kind!r} is not supported by the local engine; use AdamW")


def adam_config(params: object) -> AdamConfig:
    """One ``optim_step``'s ``AdamParams`` as the engine's ``AdamConfig``."""
    if not isinstance(params, types.AdamParams):
        raise BackendError(
            f"only AdamParams are supported by the local engine; got {type(params).__name__}"
        )
    return AdamConfig(
        params.learning_rate,
        params.beta1,
        params.beta2,
        params.eps,
        params.weight_decay,
        params.grad_clip_norm,
    )


def input_tokens(model_input: types.ModelInput, where: str) -> list[int]:
    """The token ids of a ``ModelInput`` made of encoded text chunks (no images)."""
    for chunk in model_input.chunks:
        if not isinstance(chunk, types.EncodedTextChunk):
            raise BackendError(
                f"{where}: {type(chunk).__name__} inputs are not supported by the local engine; "
                "only encoded text chunks"
            )
    return list(model_input.to_ints())


def forward_items(data: Sequence[types.Datum]) -> list[ForwardItem]:
    items = []
    for i, datum in enumerate(data):
        inputs = {k: v.to_torch().reshape(-1) for k, v in datum.loss_fn_inputs.items()}
        items.append(ForwardItem(input_tokens(datum.model_input, f"datum {i}"), inputs))
    return items


def forward_output(result: ForwardResult) -> types.ForwardBackwardOutput:
    """Per-datum ``logprobs`` and ``elementwise_loss``, and ``loss:sum``, as the SDK returns."""
    outputs = [
        {
            "logprobs": types.TensorData.from_torch(lp),
            "elementwise_loss": types.TensorData.from_torch(el),
        }
        for lp, el in zip(result.logprobs, result.elementwise_loss, strict=True)
    ]
    return types.ForwardBackwardOutput(
        loss_fn_output_type="ArrayRecord",
        loss_fn_outputs=outputs,
        metrics={"loss:sum": result.loss},
    )


def sample_spec(prompt: list[int], num_samples: int, params: types.SamplingParams) -> SampleSpec:
    """Tinker's ``SamplingParams`` as a ``SampleSpec``. ``stop`` may be a string, strings, token
    ids or a mix; ``None`` keeps the implicit EOS stop, ``[]`` disables every stop, EOS too."""
    stop = params.stop
    strings: list[str] = []
    tokens: list[int] = []
    if isinstance(stop, str):
        strings = [stop]
    elif stop is not None:
        for s in stop:
            (strings if isinstance(s, str) else tokens).append(s)
    return SampleSpec(
        prompt=prompt,
        num_samples=num_samples,
        max_tokens=params.max_tokens,
        ignore_eos=stop is not None and not isinstance(stop, str) and len(stop) == 0,
        temperature=params.temperature,
        top_k=params.top_k,
        top_p=params.top_p,
        stop_tokens=tokens,
        stop_strings=strings,
        seed=params.seed,
    )


def prompt_logprobs(scored: Sequence[float], last_n: int | None = None) -> list[float | None]:
    """One logprob per prompt token from the engine's (one per token after the first): ``None``
    for the first token, and for all but the last ``last_n`` when that is given."""
    lps: list[float | None] = [None, *scored]
    if last_n is not None:
        cut = max(0, len(lps) - last_n)
        lps[:cut] = [None] * cut
    return lps


def sample_response(output: SampleOutput) -> types.SampleResponse:
    seqs = [
        types.SampledSequence(
            stop_reason=s.stop_reason,
            sequence_id=uuid.uuid4().hex,
            _tokens_list=s.tokens,
            _logprobs_list=s.logprobs,
        )
        for s in output.samples
    ]
    lps = None if output.prompt_logprobs is None else prompt_logprobs(output.prompt_logprobs)
    return types.SampleResponse(sequences=seqs, _prompt_logprobs_list=lps)
