"""Application evaluation: examples → rendered prompts → one batched round of sampling → graded
records → ``EvalResult``.

It sees only the SamplingClient contract (``sample`` returning a future), so the same function
evaluates the local engine and Tinker. Every ``sample`` call is submitted before any result is
awaited: the local engine coalesces concurrent requests into one batched decode and Tinker runs
them in parallel, whereas waiting on each in turn would sample one prompt at a time.

Grading is separate (``grade_responses``), so responses from elsewhere (an HTTP endpoint, an
Inspect log) are graded the same way. A grader with a ``grade_batch`` method (``BatchGrader``:
the judge sends its requests concurrently, HumanEval runs programs in parallel) gets every
response at once; any other grader is called once per response.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from tinker import types

from evaltune.backends.contract import Future, SamplingClient
from evaltune.data.example import Example, Message
from evaltune.data.renderers import Renderer
from evaltune.errors import DataError, EvalError
from evaltune.evals.graders import Grader, GradeResult
from evaltune.evals.result import EvalResult, SampleRecord, is_correct

__all__ = [
    "BatchGrader",
    "Sampler",
    "evaluate_examples",
    "grade_responses",
    "prompt_text",
    "sampling_stop",
]

# The client an application eval samples from (it calls only ``sample``); the old name stays.
Sampler = SamplingClient


@runtime_checkable
class BatchGrader(Protocol):
    """A grader that scores many responses at once (in parallel, or concurrently over a
    network); ``grade_batch`` returns one ``GradeResult`` per item, in order."""

    def __call__(self, response: str, target: str, example: Example) -> GradeResult: ...

    def grade_batch(self, items: Sequence[tuple[str, str, Example]]) -> list[GradeResult]: ...


def prompt_text(messages: Sequence[Message]) -> str:
    """A prompt as a person reads it: a lone user turn is its text; a longer conversation is
    ``role: content`` turns separated by blank lines."""
    if len(messages) == 1 and messages[0].role == "user":
        return messages[0].content
    return "\n\n".join(f"{m.role}: {m.content}" for m in messages)


def sampling_stop(stops: Sequence[str | int]) -> list[str] | list[int]:
    """``stops`` as ``SamplingParams.stop`` accepts them: all strings or all token ids.

    A renderer may mix both (``role_colon``: EOS and ``"\\n\\nUser:"``), which Tinker's type
    refuses. A mixed list keeps its strings: the local engine always ends at EOS, and
    ``parse_response`` cuts at the token ids in any case, so the graded text is the same; only
    where a backend does not stop at EOS by itself would a few wasted tokens be sampled.
    """
    strings = [s for s in stops if isinstance(s, str)]
    if strings:
        return strings
    return [int(s) for s in stops]


def evaluate_examples(
    sampling_client: Sampler,
    examples: Sequence[Example],
    renderer: Renderer,
    grader: Grader,
    *,
    suite: str,
    max_tokens: int = 64,
    temperature: float = 0.0,
    seed: int | None = None,
    model_path: str | None = None,
    suite_hash: str = "",
    progress: Callable[[int, int], None] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Sample one answer per example, grade it against ``example.completion``, aggregate.

    Records keep the examples' order. ``progress(done, total)`` is called after each sample is
    collected (in order), so it advances once the batch starts returning; grading follows.
    ``provenance`` (renderer, template, grader, data source) is stamped on the result.
    """
    if not examples:
        raise EvalError(f"suite {suite!r} has no examples to evaluate")
    stop = sampling_stop(renderer.stop_sequences)
    params = types.SamplingParams(
        max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop or None
    )
    futures = [sampling_client.sample(_prompt(ex, renderer, suite), 1, params) for ex in examples]
    sequences: list[types.SampledSequence] = []
    for done, (example, future) in enumerate(zip(examples, futures, strict=True), 1):
        sequences.append(_collect(future, example, suite))
        if progress is not None:
            progress(done, len(examples))
    records = grade_responses(
        examples,
        [renderer.parse_response(s.tokens) for s in sequences],
        grader,
        stop_reasons=[str(s.stop_reason) for s in sequences],
        num_tokens=[len(s.tokens) for s in sequences],
    )
    sampling: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": temperature,
        "seed": seed,
        "num_samples": 1,
        "stop": stop,
    }
    return EvalResult.from_records(
        suite,
        records,
        model_path=model_path,
        sampling=sampling,
        suite_hash=suite_hash,
        provenance=provenance,
    )


def grade_responses(
    examples: Sequence[Example],
    responses: Sequence[str],
    grader: Grader,
    *,
    stop_reasons: Sequence[str] | None = None,
    num_tokens: Sequence[int] | None = None,
) -> list[SampleRecord]:
    """One graded ``SampleRecord`` per (example, response), against ``example.completion``."""
    if len(responses) != len(examples):
        raise EvalError(f"{len(responses)} responses for {len(examples)} examples")
    items = [(r, ex.completion, ex) for r, ex in zip(responses, examples, strict=True)]
    if isinstance(grader, BatchGrader):
        grades = grader.grade_batch(items)
    else:
        grades = [grader(*item) for item in items]
    return [
        SampleRecord(
            id=example.id,
            prompt=prompt_text(example.prompt_messages),
            response=response,
            target=example.completion,
            score=grade.score,
            correct=is_correct(grade.score) if grade.correct is None else grade.correct,
            tags=tuple(example.tags),
            detail=grade.detail,
            stop_reason=stop_reasons[i] if stop_reasons else "",
            num_tokens=num_tokens[i] if num_tokens else 0,
            metrics=dict(grade.metrics),
        )
        for i, (example, response, grade) in enumerate(
            zip(examples, responses, grades, strict=True)
        )
    ]


def _prompt(example: Example, renderer: Renderer, suite: str) -> types.ModelInput:
    try:
        return types.ModelInput.from_ints(renderer.render_prompt(example.prompt_messages))
    except DataError as exc:
        where = example.source or f"example {example.id!r}"
        raise EvalError(f"suite {suite!r}: cannot render the prompt of {where}: {exc}") from exc


def _collect(
    future: Future[types.SampleResponse], example: Example, suite: str
) -> types.SampledSequence:
    try:
        response = future.result()
    except EvalError:
        raise
    except Exception as exc:
        raise EvalError(
            f"suite {suite!r}: sampling failed for example {example.id!r} "
            f"({example.source or 'no source'}): {exc}"
        ) from exc
    return response.sequences[0]
