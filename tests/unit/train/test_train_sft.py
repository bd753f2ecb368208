"""One SFT round: seeded batches, and ``run_sft_round`` on the local backend with the tiny model."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from evaltune.errors import EvaltuneError, TrainingError
from evaltune.train import StepMetrics, batches, lr_at, run_sft_round
from evaltune.train.sft import cycling_batches


# -- batches --------------------------------------------------------------------------------
def epochs(n: int, batch_size: int, seed: int, count: int) -> list[list[list[int]]]:
    per_epoch = max(1, n // min(batch_size, n))
    feed = batches(n, batch_size, seed)
    return [[next(feed) for _ in range(per_epoch)] for _ in range(count)]


def test_batches_cover_every_index_once_per_epoch() -> None:
    for epoch in epochs(12, 4, seed=3, count=3):
        assert [len(b) for b in epoch] == [4, 4, 4]
        assert sorted(i for b in epoch for i in b) == list(range(12))


def test_batches_reshuffle_each_epoch() -> None:
    first, second = epochs(12, 4, seed=3, count=2)
    assert first != second


def test_batches_without_a_partial_batch() -> None:
    # 10 items in batches of 4: two full batches per epoch, no index twice within an epoch.
    for epoch in epochs(10, 4, seed=0, count=5):
        flat = [i for b in epoch for i in b]
        assert [len(b) for b in epoch] == [4, 4]
        assert len(set(flat)) == 8 and set(flat) <= set(range(10))


def test_batches_are_seed_deterministic() -> None:
    a = list(itertools.islice(batches(20, 3, seed=7), 15))
    b = list(itertools.islice(batches(20, 3, seed=7), 15))
    c = list(itertools.islice(batches(20, 3, seed=8), 15))
    assert a == b
    assert a != c


def test_batches_smaller_dataset_than_a_batch() -> None:
    feed = batches(3, 8, seed=0)
    for _ in range(4):
        batch = next(feed)
        assert sorted(batch) == [0, 1, 2]


def test_cycling_batches_span_epochs_and_cover_every_index_once_per_epoch() -> None:
    picked = list(itertools.islice(cycling_batches(7, 3, seed=4), 7))
    assert all(len(b) == 3 for b in picked)  # no short batch at an epoch's end
    flat = [j for b in picked for j in b]
    assert [sorted(flat[k : k + 7]) for k in range(0, 21, 7)] == [list(range(7))] * 3
    assert picked == list(itertools.islice(cycling_batches(7, 3, seed=4), 7))
    assert next(cycling_batches(2, 8, seed=0)) in ([0, 1], [1, 0])  # at most n a batch


def test_batches_of_nothing() -> None:
    with pytest.raises(EvaltuneError, match="no training examples"):
        next(batches(0, 4, seed=0))


# -- run_sft_round on the tiny model -------------------------------------------------------
@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from evaltune.backends.local import ServiceClient

    return ServiceClient(checkpoint_dir=tmp_path_factory.mktemp("sft-ckpt"))


@pytest.fixture(scope="module")
def datums(service: Any, tiny_model_dir: Path) -> list[Any]:
    from evaltune.data import Example, get_renderer, to_datum

    tok = service.create_sampling_client(base_model=str(tiny_model_dir)).result().get_tokenizer()
    renderer = get_renderer("role_colon", tok)
    examples = [
        Example.single_turn(str(i), f"What is {i} plus {i}?", f"The answer is {2 * i}.")
        for i in range(8)
    ]
    return [to_datum(renderer.render_example(e)) for e in examples]


@pytest.fixture
def client(service: Any, tiny_model_dir: Path) -> Any:
    return service.create_lora_training_client(str(tiny_model_dir), rank=8, seed=0).result()


class Recorder:
    """Delegates to a real training client, recording what the round asks of it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.fb_sizes: list[int] = []
        self.lrs: list[float] = []

    def forward_backward(self, data: Any, loss_fn: str) -> Any:
        self.calls.append("fb")
        self.fb_sizes.append(len(data))
        return self.inner.forward_backward(data, loss_fn)

    def optim_step(self, params: Any) -> Any:
        self.calls.append("optim")
        self.lrs.append(params.learning_rate)
        return self.inner.optim_step(params)


def test_steps_are_numbered_after_the_offset(client: Any, datums: list[Any]) -> None:
    result = run_sft_round(
        client, datums, steps=3, batch_size=4, learning_rate=1e-3, seed=0, step_offset=5
    )
    assert [s.step for s in result.steps] == [6, 7, 8]
    assert result.summary()["steps"] == 3


def test_loss_falls(client: Any, datums: list[Any]) -> None:
    result = run_sft_round(client, datums, steps=10, batch_size=4, learning_rate=1e-2, seed=0)
    losses = [s.loss for s in result.steps]
    assert all(loss > 0 for loss in losses)
    assert sum(losses[-3:]) / 3 < 0.6 * sum(losses[:3]) / 3
    summary = result.summary()
    assert summary["first_loss"] == losses[0] and summary["final_loss"] == losses[-1]
    assert summary["mean_loss"] == pytest.approx(sum(losses) / 10)


def test_grad_accum_sends_micro_batches_before_the_step(client: Any, datums: list[Any]) -> None:
    rec = Recorder(client)
    result = run_sft_round(
        rec, datums, steps=3, batch_size=2, learning_rate=1e-3, seed=0, grad_accum=2
    )
    assert rec.calls == ["fb", "fb", "optim"] * 3
    assert rec.fb_sizes == [2] * 6
    assert len(result.steps) == 3


def test_grad_accum_matches_one_big_batch(
    service: Any, tiny_model_dir: Path, datums: list[Any]
) -> None:
    # 2 micro-batches of 2 from the same seeded shuffle are the big batch of 4, and summed
    # gradients accumulate: the losses of both rounds agree step for step.
    def losses(batch_size: int, grad_accum: int) -> list[float]:
        tc = service.create_lora_training_client(str(tiny_model_dir), rank=8, seed=0).result()
        result = run_sft_round(
            tc,
            datums,
            steps=3,
            batch_size=batch_size,
            learning_rate=1e-2,
            seed=1,
            grad_accum=grad_accum,
        )
        return [s.loss for s in result.steps]

    big = losses(4, 1)
    assert losses(2, 2) == pytest.approx(big, rel=1e-4)
    assert big[0] != pytest.approx(big[2], rel=1e-3)  # the steps did train


def test_lr_follows_the_schedule(client: Any, datums: list[Any]) -> None:
    rec = Recorder(client)
    result = run_sft_round(
        rec,
        datums,
        steps=5,
        batch_size=4,
        learning_rate=1e-3,
        seed=0,
        schedule="cosine",
        warmup_steps=2,
    )
    want = [lr_at(i, 5, 1e-3, "cosine", 2) for i in range(5)]
    assert rec.lrs == pytest.approx(want)
    assert [s.lr for s in result.steps] == pytest.approx(want)
    assert want[0] == pytest.approx(5e-4) and want[2] == pytest.approx(1e-3)


def test_on_step_once_per_step(client: Any, datums: list[Any]) -> None:
    seen: list[StepMetrics] = []
    result = run_sft_round(
        client,
        datums,
        steps=4,
        batch_size=4,
        learning_rate=1e-3,
        seed=0,
        step_offset=10,
        on_step=seen.append,
    )
    assert seen == result.steps
    assert [m.step for m in seen] == [11, 12, 13, 14]
    event = seen[0].to_event()
    assert event["train/step"] == 11 and event["train/loss"] == seen[0].loss


def test_tokens_are_counted(client: Any, datums: list[Any]) -> None:
    result = run_sft_round(
        client, datums, steps=4, batch_size=3, learning_rate=1e-3, seed=5, grad_accum=2
    )
    feed = batches(len(datums), 3, 5)
    for step in result.steps:
        micro = [next(feed) for _ in range(2)]
        used = [datums[j] for b in micro for j in b]
        assert step.tokens == sum(d.model_input.length for d in used)
        weights = sum(float(d.loss_fn_inputs["weights"].to_numpy().sum()) for d in used)
        assert step.weighted_tokens == pytest.approx(weights)
        assert 0 < step.weighted_tokens < step.tokens
    assert result.tokens == sum(s.tokens for s in result.steps)
    assert result.summary()["tokens"] == result.tokens


def test_example_losses_are_each_datums_last_loss(client: Any, datums: list[Any]) -> None:
    # One step on a batch of all 8: each datum's loss is its own, and their weighted mean is the
    # step's loss (weights are the answer tokens).
    result = run_sft_round(client, datums, steps=1, batch_size=8, learning_rate=1e-3, seed=0)
    assert sorted(result.example_loss) == list(range(8))
    weights = [float(d.loss_fn_inputs["weights"].to_numpy().sum()) for d in datums]
    mean = sum(result.example_loss[i] * w for i, w in enumerate(weights)) / sum(weights)
    assert mean == pytest.approx(result.steps[0].loss, rel=1e-4)
    assert len(set(result.example_loss.values())) > 1
    # Two steps of 4 are one epoch: every datum is covered once.
    again = run_sft_round(client, datums, steps=2, batch_size=4, learning_rate=1e-3, seed=3)
    assert sorted(again.example_loss) == list(range(8))


def test_a_diverging_round_stops_with_a_training_error(client: Any, datums: list[Any]) -> None:
    # lr 1e30: step 1 is finite, its update overflows the weights, step 2's loss is nan.
    seen: list[StepMetrics] = []
    with pytest.raises(TrainingError, match=r"diverged at step 2 of 4 \(step 7 of the run\)"):
        run_sft_round(
            client,
            datums,
            steps=4,
            batch_size=4,
            learning_rate=1e30,
            seed=0,
            step_offset=5,
            on_step=seen.append,
        )
    assert [m.step for m in seen] == [6]  # the diverged step is never reported


def test_a_non_finite_gradient_norm_stops_the_round(client: Any, datums: list[Any]) -> None:
    class Done:
        def __init__(self) -> None:
            self.metrics = {"grad_norm": float("inf")}

        def result(self) -> Any:
            return self

    class InfNorm(Recorder):
        def optim_step(self, params: Any) -> Any:
            self.inner.optim_step(params).result()
            return Done()

    with pytest.raises(TrainingError, match="gradient norm inf"):
        run_sft_round(InfNorm(client), datums, steps=2, batch_size=4, learning_rate=1e-3, seed=0)
