"""RL, DPO and on-policy distillation rounds: their arithmetic on hand-built numbers, and each
round on the tiny model through the local backend (the metric it optimises moves the right way)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from tinker import types

from evaltune.errors import TrainingError
from evaltune.train.distill import run_distill_round, teacher_advantages
from evaltune.train.dpo import DPOPair, dpo_loss, pair_datums, run_dpo_round
from evaltune.train.rl import group_advantages, rollout_datums, run_rl_round


# -- arithmetic -----------------------------------------------------------------------------
def test_group_advantages_centre_each_group_on_its_mean() -> None:
    assert group_advantages([1, 0, 0, 1, 1, 1], 3) == pytest.approx(
        [2 / 3, -1 / 3, -1 / 3, 0, 0, 0]
    )
    # normalised by the group's standard deviation; a group without spread stays at 0
    assert group_advantages([1, 0, 1, 1], 2, normalize=True) == pytest.approx([1, -1, 0, 0])
    with pytest.raises(TrainingError, match="groups of 3"):
        group_advantages([1, 0], 3)


def seq(tokens: list[int], logprobs: list[float] | None) -> types.SampledSequence:
    return types.SampledSequence(
        stop_reason="stop", sequence_id="s", _tokens_list=tokens, _logprobs_list=logprobs
    )


def test_rollout_datums_put_logprobs_and_advantages_on_the_completion_only() -> None:
    seqs = [seq([7, 8], [-0.5, -1.5]), seq([9], [-2.0])]
    (datum,) = rollout_datums([1, 2, 3], seqs, [0.5, 0.0])  # no advantage: left out
    assert datum.model_input.to_ints() == [1, 2, 3, 7]
    assert datum.loss_fn_inputs["target_tokens"].tolist() == [2, 3, 7, 8]
    assert datum.loss_fn_inputs["logprobs"].tolist() == [0, 0, -0.5, -1.5]
    assert datum.loss_fn_inputs["advantages"].tolist() == [0, 0, 0.5, 0.5]
    bare = [seq([7], None)]
    with pytest.raises(TrainingError, match="no logprobs"):
        rollout_datums([1], bare, [1.0])


def test_dpo_loss_against_hand_computed_values() -> None:
    # chosen gained 1 nat over the reference, rejected lost 1: z = β·2
    losses, margins, grads = dpo_loss([-1.0, -5.0], [-2.0, -4.0], beta=0.5)
    assert margins == pytest.approx([1.0])
    assert losses == pytest.approx([math.log(1 + math.exp(-1.0))])  # −log σ(1) = 0.3133
    assert losses[0] == pytest.approx(0.31326, abs=1e-5)
    assert grads == pytest.approx([1 / (1 + math.e)])  # σ(−1)
    # equal to the reference: z = 0, loss log 2
    assert dpo_loss([-3.0, -3.0], [-3.0, -3.0], beta=0.1)[0] == pytest.approx([math.log(2)])
    # far margins stay finite
    assert dpo_loss([0.0, -1e4], [0.0, 0.0], beta=1.0)[0][0] == pytest.approx(0.0)
    assert dpo_loss([-1e4, 0.0], [0.0, 0.0], beta=1.0)[0][0] == pytest.approx(1e4)


def test_the_weights_dpo_sends_are_its_gradient() -> None:
    # L(π_c, π_r): the closed-form ∂L/∂π_c = −β·σ(−z) against a central difference
    beta, pc, pr, rc, rr, h = 0.3, -2.0, -3.5, -2.5, -3.0, 1e-5

    def loss(c: float, r: float) -> float:
        return dpo_loss([c, r], [rc, rr], beta)[0][0]

    grad = dpo_loss([pc, pr], [rc, rr], beta)[2][0]
    assert (loss(pc + h, pr) - loss(pc - h, pr)) / (2 * h) == pytest.approx(-beta * grad)
    assert (loss(pc, pr + h) - loss(pc, pr - h)) / (2 * h) == pytest.approx(beta * grad)
    # and pair_datums signs them: +scale on the chosen completion, −scale on the rejected
    chosen, rejected = pair_datums([DPOPair([1, 2], [3, 4], [5])], [0.25])
    assert chosen.loss_fn_inputs["weights"].tolist() == [0, 0.25, 0.25]
    assert rejected.loss_fn_inputs["weights"].tolist() == [0, -0.25]


def test_teacher_advantages_are_the_negative_reverse_kl_per_token() -> None:
    assert teacher_advantages([-1.0, -2.0, -0.5], [-1.5, None, -0.5], 2.0) == pytest.approx(
        [-1.0, 0.0, 0.0]
    )
    with pytest.raises(TrainingError, match="scored 1 tokens"):
        teacher_advantages([-1.0, -2.0], [-1.0], 1.0)


# -- rounds on the tiny model ---------------------------------------------------------------
@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from evaltune.backends.local import ServiceClient

    return ServiceClient(checkpoint_dir=tmp_path_factory.mktemp("methods-ckpt"))


@pytest.fixture(scope="module")
def tokenizer(service: Any, tiny_model_dir: Path) -> Any:
    return service.create_sampling_client(base_model=str(tiny_model_dir)).result().get_tokenizer()


def fresh(service: Any, tiny_model_dir: Path, seed: int = 0) -> Any:
    return service.create_lora_training_client(str(tiny_model_dir), rank=8, seed=seed).result()


def test_rl_raises_the_reward_on_a_two_token_toy_task(
    service: Any, tiny_model_dir: Path, tokenizer: Any
) -> None:
    # Reward: the share of the two sampled tokens whose id is even. The random tiny model
    # starts near 0.5; RL with group-relative advantages must push it up.
    client = fresh(service, tiny_model_dir)
    prompts = [tokenizer.encode(f"Question: number {i}? Answer:") for i in range(8)]

    def reward(_: Any, completions: Any) -> list[float]:
        return [sum(t % 2 == 0 for t in c) / max(len(c), 1) for c in completions]

    result = run_rl_round(
        client,
        prompts,
        reward,
        steps=14,
        prompts_per_step=8,
        group_size=8,
        learning_rate=5e-2,
        seed=0,
        max_tokens=2,
    )
    rewards = [s.reward for s in result.steps]
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.15
    first = result.steps[0]
    assert first.signal > 0.5 and first.sampled_tokens == 8 * 8 * 2 and first.tokens > 0
    # sampler and trainer are the same weights at temperature 1: their logprobs agree
    assert abs(first.kl) < 1e-3
    assert first.entropy > 0
    assert result.summary()["steps"] == 14


def test_rl_with_ppo_and_a_constant_reward_trains_nothing(
    service: Any, tiny_model_dir: Path, tokenizer: Any
) -> None:
    client = fresh(service, tiny_model_dir)
    prompts = [tokenizer.encode("Question: hello? Answer:")]
    result = run_rl_round(
        client,
        prompts,
        lambda _, cs: [1.0] * len(cs),
        steps=2,
        prompts_per_step=1,
        group_size=4,
        learning_rate=1e-2,
        seed=0,
        loss_fn="ppo",
        max_tokens=3,
    )
    assert [s.signal for s in result.steps] == [0.0, 0.0]
    assert [s.tokens for s in result.steps] == [0, 0]  # no group had signal: no step taken
    with pytest.raises(TrainingError, match="choose one of"):
        run_rl_round(
            client,
            prompts,
            lambda _, cs: [],
            steps=1,
            prompts_per_step=1,
            group_size=1,
            learning_rate=1e-3,
            seed=0,
            loss_fn="reinforce",
        )


def test_dpo_raises_the_margin_and_the_implicit_reward_accuracy(
    service: Any, tiny_model_dir: Path, tokenizer: Any
) -> None:
    client = fresh(service, tiny_model_dir)
    pairs = [
        DPOPair(
            tokenizer.encode(f"Question: what is {i} plus {i}? Answer:"),
            tokenizer.encode(f" {2 * i}", add_special_tokens=False),
            tokenizer.encode(" the quick brown fox", add_special_tokens=False),
        )
        for i in range(6)
    ]
    result = run_dpo_round(
        client, pairs, steps=12, batch_size=6, learning_rate=2e-2, beta=0.5, seed=0
    )
    first, last = result.steps[0], result.steps[-1]
    assert first.loss == pytest.approx(math.log(2), abs=1e-4)  # policy = reference at first
    assert first.margin == pytest.approx(0.0, abs=1e-4)
    assert last.loss < first.loss - 0.2
    assert last.margin > 0.5 and last.accuracy == 1.0


def test_on_policy_distillation_lowers_the_reverse_kl_to_the_teacher(
    service: Any, tiny_model_dir: Path, tokenizer: Any
) -> None:
    from evaltune.data import Example, get_renderer, to_datum
    from evaltune.train import run_sft_round

    # The teacher: the tiny model taught to answer "Paris" (15 SFT steps). The student: the
    # same task, barely started (3 steps), so its samples sometimes agree with the teacher
    # (a random model's samples never would: its advantages would all be negative).
    renderer = get_renderer("role_colon", tokenizer)
    examples = [Example.single_turn(str(i), f"Capital {i}?", "Paris") for i in range(8)]
    data = [to_datum(renderer.render_example(e)) for e in examples]
    teacher_client = fresh(service, tiny_model_dir, seed=1)
    run_sft_round(teacher_client, data, steps=15, batch_size=8, learning_rate=3e-2, seed=0)
    teacher = teacher_client.save_weights_and_get_sampling_client().result()
    student = fresh(service, tiny_model_dir, seed=2)
    run_sft_round(student, data, steps=3, batch_size=8, learning_rate=1e-2, seed=0)
    prompts = [renderer.render_prompt(e.prompt_messages) for e in examples]
    result = run_distill_round(
        student,
        teacher,
        prompts,
        steps=15,
        prompts_per_step=8,
        learning_rate=1e-2,
        seed=0,
        max_tokens=4,
    )
    kls = [s.reverse_kl for s in result.steps]
    assert kls[0] > 5  # the student starts far from the teacher
    assert sum(kls[-5:]) / 5 < sum(kls[:2]) / 2 / 4  # and ends much closer
    assert result.summary()["final_reverse_kl"] == kls[-1]
