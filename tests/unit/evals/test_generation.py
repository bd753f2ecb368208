"""evaluate_examples on the real local backend and tiny model, plus a recording fake sampler
for the submit-everything-before-waiting contract and error paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tinker import types

from evaltune.backends.local import ServiceClient
from evaltune.data.example import Example, Message
from evaltune.data.renderers import Renderer, get_renderer
from evaltune.engine import get_engine
from evaltune.errors import EvalError
from evaltune.evals.generation import evaluate_examples, prompt_text, sampling_stop
from evaltune.evals.registry import make_grader
from evaltune.evals.result import EvalResult

QUESTIONS = [
    "What is two plus two?",
    "What is the capital of Italy?",
    "What is the capital of France?",
    "How can I help you today?",
    "Numbers 0 1 2 3 and more?",
    "The quick brown fox jumps over?",
    "What is the weather today?",
    "A tiny model for tests?",
    "What is 10 plus 11?",
    "hello there!",
    "What is the lazy dog?",
    "Question: What is four?",
    "Is Paris lovely?",
    "What does it learn fast?",
    "What is 12 plus 0?",
    "Who forgets nothing?",
    "What jumps over the dog?",
    "Answer: Rome or Paris?",
    "What is the capital?",
    "What are numbers?",
]
TAGS = ["math", "geo", "geo", "chat"]  # item i gets TAGS[i % 4], and "all"


def make_examples(targets: list[str]) -> list[Example]:
    return [
        Example.single_turn(f"q{i:02d}", q, t, tags=(TAGS[i % len(TAGS)], "all"))
        for i, (q, t) in enumerate(zip(QUESTIONS, targets, strict=False))
    ]


@pytest.fixture(scope="module")
def sampler(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    service = ServiceClient(checkpoint_dir=tmp_path_factory.mktemp("ckpt"))
    return service.create_sampling_client(base_model=str(tiny_model_dir)).result()


@pytest.fixture(scope="module")
def renderer(sampler: Any) -> Renderer:
    return get_renderer("role_colon", sampler.get_tokenizer())


@pytest.fixture(scope="module")
def probe(sampler: Any, renderer: Renderer) -> EvalResult:
    """One evaluation of QUESTIONS with placeholder targets: the tiny model's greedy answers."""
    return evaluate_examples(
        sampler,
        make_examples(["?"] * len(QUESTIONS)),
        renderer,
        make_grader("exact"),
        suite="demo",
        max_tokens=8,
        model_path="base",
        suite_hash="h",
    )


@pytest.fixture(scope="module")
def greedy(probe: EvalResult) -> list[str]:
    return [r.response for r in probe.records]


def test_records_follow_the_examples(probe: EvalResult) -> None:
    result, examples = probe, make_examples(["?"] * len(QUESTIONS))
    assert [r.id for r in result.records] == [e.id for e in examples]
    assert [r.prompt for r in result.records] == QUESTIONS
    assert [r.target for r in result.records] == ["?"] * len(QUESTIONS)
    assert not any(r.correct for r in result.records)
    assert [r.tags for r in result.records] == [e.tags for e in examples]
    for r in result.records:
        assert r.stop_reason in ("stop", "length")
        assert 1 <= r.num_tokens <= 8
        assert r.num_tokens == 8 or r.stop_reason == "stop"
    assert result.suite == "demo" and result.model_path == "base" and result.suite_hash == "h"
    assert result.sampling == {
        "max_tokens": 8,
        "temperature": 0.0,
        "seed": None,
        "num_samples": 1,
        "stop": ["\n\nUser:"],  # role_colon's strings; EOS ends sampling anyway
    }


def test_accuracy_and_per_tag_on_the_models_own_answers(
    sampler: Any, renderer: Renderer, greedy: list[str]
) -> None:
    # Every third answer is made wrong; the rest are the model's own greedy output.
    expected = [bool(g) and i % 3 != 0 for i, g in enumerate(greedy)]
    assert 5 <= sum(expected) < len(expected), greedy  # a mix, or the test proves nothing
    targets = [g if ok else "zz not an answer" for g, ok in zip(greedy, expected, strict=True)]
    result = evaluate_examples(
        sampler, make_examples(targets), renderer, make_grader("exact"), suite="own", max_tokens=8
    )
    assert [r.correct for r in result.records] == expected
    assert [r.response for r in result.records] == greedy
    assert result.metrics["n"] == len(QUESTIONS)
    assert result.metrics["accuracy"] == pytest.approx(sum(expected) / len(expected))
    for tag in ("math", "geo", "chat"):
        hits = [ok for i, ok in enumerate(expected) if TAGS[i % 4] == tag]
        assert result.per_tag[tag]["n"] == len(hits)
        assert result.per_tag[tag]["accuracy"] == pytest.approx(sum(hits) / len(hits))
    assert result.per_tag["all"]["accuracy"] == result.metrics["accuracy"]


def test_prompts_are_batched_and_progress_counts(
    sampler: Any, renderer: Renderer, tiny_model_dir: Path
) -> None:
    batcher = get_engine(str(tiny_model_dir)).batcher
    before = batcher.batches_run
    calls: list[tuple[int, int]] = []
    evaluate_examples(
        sampler,
        make_examples(["x"] * len(QUESTIONS)),
        renderer,
        make_grader("exact"),
        suite="batched",
        max_tokens=4,
        temperature=1.0,
        seed=3,
        progress=lambda done, total: calls.append((done, total)),
    )
    # Submitted all at once: the first drain may catch only the first request, not more.
    assert batcher.batches_run - before <= 2
    n = len(QUESTIONS)
    assert calls == [(i, n) for i in range(1, n + 1)]


# -- a recording fake: what evaluate_examples asks of a sampler -----------------------------
class _Future:
    def __init__(self, log: list[str], i: int, tokens: list[int], error: Exception | None):
        self.log, self.i, self.tokens, self.error = log, i, tokens, error

    def result(self, timeout: float | None = None) -> types.SampleResponse:
        self.log.append(f"result {self.i}")
        if self.error:
            raise self.error
        seq = types.SampledSequence(stop_reason="stop", sequence_id="s", _tokens_list=self.tokens)
        return types.SampleResponse(sequences=[seq])


class FakeSampler:
    def __init__(self, tokens: list[int], fail_at: int | None = None) -> None:
        self.tokens, self.fail_at = tokens, fail_at
        self.log: list[str] = []
        self.params: list[types.SamplingParams] = []
        self.prompts: list[list[int]] = []

    def sample(
        self, prompt: types.ModelInput, num_samples: int, sampling_params: types.SamplingParams
    ) -> _Future:
        i = len(self.params)
        self.log.append(f"sample {i}")
        self.params.append(sampling_params)
        self.prompts.append(prompt.to_ints())
        error = RuntimeError("boom") if i == self.fail_at else None
        return _Future(self.log, i, self.tokens, error)


@pytest.fixture
def answer_tokens(renderer: Renderer, sampler: Any) -> list[int]:
    return sampler.get_tokenizer().encode(" Rome", add_special_tokens=False)


def test_every_sample_is_submitted_before_any_result(
    renderer: Renderer, answer_tokens: list[int]
) -> None:
    fake = FakeSampler(answer_tokens)
    examples = make_examples(["Rome"] * 5)
    result = evaluate_examples(
        fake,
        examples,
        renderer,
        make_grader("normalized"),
        suite="s",
        max_tokens=7,
        temperature=0.5,
        seed=11,
    )
    assert fake.log == [f"sample {i}" for i in range(5)] + [f"result {i}" for i in range(5)]
    assert fake.prompts == [renderer.render_prompt(e.prompt_messages) for e in examples]
    assert {(p.max_tokens, p.temperature, p.seed) for p in fake.params} == {(7, 0.5, 11)}
    assert fake.params[0].stop == sampling_stop(renderer.stop_sequences)
    assert [r.response for r in result.records] == ["Rome"] * 5
    assert result.metrics["accuracy"] == 1.0


def test_a_failed_sample_names_its_example(renderer: Renderer, answer_tokens: list[int]) -> None:
    fake = FakeSampler(answer_tokens, fail_at=2)
    with pytest.raises(EvalError, match=r"suite 's': sampling failed for example 'q02'.*boom"):
        evaluate_examples(
            fake, make_examples(["Rome"] * 4), renderer, make_grader("exact"), suite="s"
        )


def test_no_examples_is_an_error(renderer: Renderer) -> None:
    with pytest.raises(EvalError, match="suite 'empty' has no examples"):
        evaluate_examples(FakeSampler([]), [], renderer, make_grader("exact"), suite="empty")


def test_prompt_text_of_a_conversation() -> None:
    assert prompt_text([Message("user", "Hi?")]) == "Hi?"
    turns = [Message("system", "Be brief."), Message("user", "Hi?")]
    assert prompt_text(turns) == "system: Be brief.\n\nuser: Hi?"


@pytest.mark.parametrize(
    ("stops", "sent"),
    [([1, "\n\nUser:"], ["\n\nUser:"]), ([106, 1], [106, 1]), (["</s>"], ["</s>"]), ([], [])],
)
def test_sampling_stop_is_homogeneous(stops: list[str | int], sent: list[str | int]) -> None:
    assert sampling_stop(stops) == sent


def test_an_unrenderable_prompt_names_its_example(renderer: Renderer) -> None:
    bad = Example("odd", (Message("assistant", "hi"), Message("assistant", "x")))
    with pytest.raises(EvalError, match=r"suite 's': cannot render the prompt of example 'odd'"):
        evaluate_examples(FakeSampler([]), [bad], renderer, make_grader("exact"), suite="s")
