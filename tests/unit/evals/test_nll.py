"""Validation NLL on the real local backend: the TrainingClient and SamplingClient paths agree
for the same saved weights, chunking does not change the number, and bad input is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tinker import types

from evaltune.backends.local import ServiceClient
from evaltune.data.example import Example
from evaltune.data.renderers import RenderedExample, get_renderer, to_datum
from evaltune.errors import EvalError
from evaltune.evals.nll import sampler_nll, validation_nll

PAIRS = [
    ("What is two plus two?", "four."),
    ("What is the capital of Italy?", "Rome."),
    ("What is the capital of France?", "Paris, and the weather today is lovely."),
    ("hello there!", "hi, how can I help you today?"),
    ("The quick brown fox", "jumps over the lazy dog."),
]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> ServiceClient:
    return ServiceClient(checkpoint_dir=tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def trained(service: ServiceClient, tiny_model_dir: Path) -> tuple[Any, list[RenderedExample]]:
    """A LoRA client trained a few steps on PAIRS (so its weights are not the base model's)."""
    tc = service.create_lora_training_client(str(tiny_model_dir), rank=4, seed=0).result()
    renderer = get_renderer("role_colon", tc.get_tokenizer())
    rendered = [
        renderer.render_example(Example.single_turn(f"v{i}", p, c))
        for i, (p, c) in enumerate(PAIRS)
    ]
    data = [to_datum(r) for r in rendered]
    for _ in range(3):
        tc.forward_backward(data, "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=1e-2))
    return tc, rendered


def test_training_and_sampling_paths_agree_on_saved_weights(
    service: ServiceClient, tiny_model_dir: Path, trained: tuple[Any, list[RenderedExample]]
) -> None:
    tc, rendered = trained
    path = tc.save_weights_for_sampler("val").result().path
    sc = service.create_sampling_client(model_path=path).result()
    via_training = validation_nll(tc, [to_datum(r) for r in rendered], chunk_size=2)
    via_sampler = sampler_nll(sc, rendered)
    assert via_training.mean_nll == pytest.approx(via_sampler.mean_nll, abs=1e-4)
    expected_weight = sum(sum(r.weights[1:]) for r in rendered)
    assert via_training.total_weight == via_sampler.total_weight == expected_weight
    assert via_training.n == via_sampler.n == len(PAIRS)

    # The trained weights really differ from the base model's, so the agreement means something.
    base = service.create_sampling_client(base_model=str(tiny_model_dir)).result()
    assert sampler_nll(base, rendered).mean_nll > via_sampler.mean_nll + 0.1


def test_chunking_does_not_change_the_mean(trained: tuple[Any, list[RenderedExample]]) -> None:
    tc, rendered = trained
    data = [to_datum(r) for r in rendered]
    one = validation_nll(tc, data, chunk_size=1)
    all_at_once = validation_nll(tc, data)
    assert one.mean_nll == pytest.approx(all_at_once.mean_nll, rel=1e-5)
    assert one.total_weight == all_at_once.total_weight


def test_datums_without_weights_count_every_target(
    trained: tuple[Any, list[RenderedExample]],
) -> None:
    tc, rendered = trained
    bare = [
        types.Datum(
            model_input=types.ModelInput.from_ints(r.tokens[:-1]),
            loss_fn_inputs={"target_tokens": r.tokens[1:]},
        )
        for r in rendered
    ]
    full = [RenderedExample(r.tokens, [0.0] + [1.0] * (len(r.tokens) - 1)) for r in rendered]
    without = validation_nll(tc, bare)
    with_ones = validation_nll(tc, [to_datum(r) for r in full])
    assert without.total_weight == sum(len(r.tokens) - 1 for r in rendered)
    assert without.mean_nll == pytest.approx(with_ones.mean_nll, rel=1e-5)


def test_bad_input_is_refused(trained: tuple[Any, list[RenderedExample]]) -> None:
    tc, rendered = trained
    with pytest.raises(EvalError, match="at least one datum"):
        validation_nll(tc, [])
    with pytest.raises(EvalError, match="chunk_size must be at least 1"):
        validation_nll(tc, [to_datum(rendered[0])], chunk_size=0)
    unweighted = RenderedExample(rendered[0].tokens, [0.0] * len(rendered[0].tokens))
    with pytest.raises(EvalError, match="carry no loss weight"):
        validation_nll(tc, [to_datum(unweighted)])
    with pytest.raises(EvalError, match="at least one rendered example"):
        sampler_nll(object(), [])  # type: ignore[arg-type]
    with pytest.raises(EvalError, match="rendered example 0 has 3 tokens and 2 weights"):
        sampler_nll(object(), [RenderedExample([2, 5, 6], [0.0, 1.0])])  # type: ignore[arg-type]
