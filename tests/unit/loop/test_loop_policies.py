"""Hyperparameter policies between rounds (policies.py) on hand-built round records: the LoRA
parameter arithmetic, the capacity advice, and ``next_plan`` for every policy and for the
reaction to a broken guard. No model, no files."""

from __future__ import annotations

from typing import Any

import pytest

from evaltune.config.schema import LoopConfig
from evaltune.loop.decide import SuiteRule
from evaltune.loop.policies import Plan, capacity_advice, lora_parameter_count, next_plan

QA = SuiteRule("qa", "accuracy", "target", threshold=0.9)
SAFE = SuiteRule("safe", "accuracy", "guard", tolerance=0.05)

# A GQA model: 4 query heads of 16 over 2 key/value heads, so q is 64 wide and k, v are 32.
FACTS: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 256,
    "vocab_size": 1000,
}


def count(facts: dict[str, Any], rank: int = 1, **parts: bool) -> int | None:
    which = {"train_attn": False, "train_mlp": False, "train_unembed": False} | parts
    return lora_parameter_count(facts, rank, **which)


# -- lora_parameter_count -------------------------------------------------------------------
def test_attention_counts_each_projection_with_gqa_widths() -> None:
    # q: 64→64, k: 64→32, v: 64→32, o: 64→64; rank × (in + out) each, 3 layers.
    per_layer = (64 + 64) + (64 + 32) + (64 + 32) + (64 + 64)
    assert count(FACTS, train_attn=True) == per_layer * 3
    assert count(FACTS, rank=8, train_attn=True) == 8 * per_layer * 3


def test_attention_without_kv_heads_is_multi_head() -> None:
    facts = FACTS | {"num_key_value_heads": None}
    assert count(facts, train_attn=True) == 4 * (64 + 64) * 3  # k and v as wide as q


def test_attention_head_dim_defaults_to_hidden_over_heads() -> None:
    # head_dim 32 (not 64 / 4 = 16) makes q 128 wide and k, v 64 wide.
    wide = FACTS | {"head_dim": 32}
    assert count(wide, train_attn=True) == ((64 + 128) * 2 + (64 + 64) * 2) * 3
    assert count(FACTS | {"head_dim": None}, train_attn=True) == count(FACTS, train_attn=True)


def test_mlp_counts_gate_up_and_down() -> None:
    assert count(FACTS, rank=2, train_mlp=True) == 2 * 3 * (64 + 256) * 3
    # without an intermediate size, 4 × hidden
    assert count(FACTS | {"intermediate_size": None}, train_mlp=True) == 3 * (64 + 256) * 3
    assert count(FACTS | {"intermediate_size": 100}, train_mlp=True) == 3 * (64 + 100) * 3


def test_unembed_is_one_matrix_not_per_layer() -> None:
    assert count(FACTS, rank=4, train_unembed=True) == 4 * (64 + 1000)
    assert count(FACTS | {"num_hidden_layers": 30}, rank=4, train_unembed=True) == 4 * 1064


def test_parts_add_up() -> None:
    every = count(FACTS, rank=16, train_attn=True, train_mlp=True, train_unembed=True)
    parts = [
        count(FACTS, rank=16, **{p: True}) for p in ("train_attn", "train_mlp", "train_unembed")
    ]
    assert every == sum(p for p in parts if p is not None)
    assert count(FACTS, rank=16) == 0  # nothing trained


@pytest.mark.parametrize("missing", ["hidden_size", "num_hidden_layers"])
def test_missing_sizes_give_none(missing: str) -> None:
    assert count(FACTS | {missing: None}, train_attn=True, train_mlp=True) is None
    assert count({k: v for k, v in FACTS.items() if k != missing}, train_mlp=True) is None
    assert count({}, train_unembed=True) is None


def test_unembed_without_vocab_size_adds_nothing() -> None:
    facts = FACTS | {"vocab_size": None}
    assert count(facts, train_mlp=True, train_unembed=True) == count(facts, train_mlp=True)


# -- capacity_advice ------------------------------------------------------------------------
def test_capacity_advice_enough() -> None:
    text = capacity_advice(20_000, 5_000)
    assert "20,000 trainable parameters" in text and "5,000 training completion tokens" in text
    assert "enough for the data" in text
    assert "higher rank" not in text
    assert "enough for the data" in capacity_advice(5_000, 5_000)  # equal is enough


def test_capacity_advice_too_few() -> None:
    text = capacity_advice(4_999, 5_000)
    assert "4,999 trainable parameters" in text
    assert "consider a higher rank" in text and "`capacity` policy" in text
    assert "enough for the data" not in text


def test_capacity_advice_without_sizes() -> None:
    assert capacity_advice(None, 5_000) == (
        "LoRA capacity: the backend does not report model sizes; no check"
    )


# -- next_plan ------------------------------------------------------------------------------
def rnd(
    k: int,
    qa: float = 0.0,
    safe: float | None = None,
    val_nll: float | None = None,
    lr: float | None = 1e-3,
    rank: int = 8,
) -> dict[str, Any]:
    evals: dict[str, Any] = {"qa": {"metrics": {"accuracy": qa}}}
    if safe is not None:
        evals["safe"] = {"metrics": {"accuracy": safe}}
    return {
        "round": k,
        "evals": evals,
        "val_nll": val_nll,
        "lr": None if k == 0 else lr,
        "rank": rank,
        "checkpoint": None if k == 0 else {"state": f"state-{k}", "sampler": f"sampler-{k}"},
    }


def plan_after(
    rounds: list[dict[str, Any]],
    policies: tuple[str, ...],
    current: Plan | None = None,
    *,
    rules: tuple[SuiteRule, ...] = (QA,),
    lora_params: int | None = None,
    completion_tokens: int = 0,
    base_lr: float = 1e-3,
    verifiable: tuple[str, ...] = (),
    **loop: Any,
) -> tuple[Plan, list[str]]:
    return next_plan(
        current or Plan(lr=1e-3, steps=10, rank=8),
        rounds,
        list(rules),
        policies=policies,
        loop=LoopConfig(**loop).model_dump(),
        base_lr=base_lr,
        lora_params=lora_params,
        completion_tokens=completion_tokens,
        verifiable=verifiable,
    )


TWO = [rnd(0), rnd(1, qa=0.2)]


def test_no_policies_keep_the_plan() -> None:
    plan, notes = plan_after(TWO, (), lr_decay=0.5)
    assert plan == Plan(lr=1e-3, steps=10, rank=8)
    assert notes == []


def test_a_restart_or_fresh_adapter_is_not_carried_over() -> None:
    current = Plan(lr=1e-3, steps=10, rank=8, restart_from="state-1", fresh_adapter=True)
    plan, _ = plan_after(TWO, ("lr_decay",), current)
    assert (plan.restart_from, plan.fresh_adapter) == (None, False)


def test_lr_decay_multiplies() -> None:
    plan, notes = plan_after(TWO, ("lr_decay",), lr_decay=0.5)
    assert plan == Plan(lr=5e-4, steps=10, rank=8)
    assert notes == ["lr_decay: lr → 0.0005"]
    plan, _ = plan_after(TWO, ("lr_decay",), Plan(lr=4e-3, steps=10, rank=8), lr_decay=0.25)
    assert plan.lr == pytest.approx(1e-3)


def test_lr_decay_of_one_changes_nothing() -> None:
    plan, notes = plan_after(TWO, ("lr_decay",), lr_decay=1.0)
    assert plan.lr == 1e-3 and notes == []


def test_capacity_doubles_the_rank_when_parameters_are_fewer_than_tokens() -> None:
    plan, notes = plan_after(TWO, ("capacity",), lora_params=999, completion_tokens=1000)
    assert (plan.rank, plan.fresh_adapter, plan.lr, plan.steps) == (16, True, 1e-3, 10)
    assert len(notes) == 1
    assert notes[0].startswith("capacity: 999 LoRA parameters < 1,000 completion tokens")
    assert "rank → 16" in notes[0] and "fresh adapter" in notes[0]


@pytest.mark.parametrize("params", [1000, 5000, None], ids=["equal", "more", "unknown"])
def test_capacity_keeps_the_rank_when_parameters_suffice(params: int | None) -> None:
    plan, notes = plan_after(TWO, ("capacity",), lora_params=params, completion_tokens=1000)
    assert (plan.rank, plan.fresh_adapter) == (8, False)
    assert notes == []


def test_capacity_caps_at_max_rank() -> None:
    current = Plan(lr=1e-3, steps=10, rank=96)
    plan, notes = plan_after(
        TWO, ("capacity",), current, lora_params=1, completion_tokens=10, max_rank=128
    )
    assert (plan.rank, plan.fresh_adapter) == (128, True)
    assert "rank → 128" in notes[0]
    at_max = Plan(lr=1e-3, steps=10, rank=128)
    plan, notes = plan_after(
        TWO, ("capacity",), at_max, lora_params=1, completion_tokens=10, max_rank=128
    )
    assert (plan.rank, plan.fresh_adapter) == (128, False)  # no new adapter for nothing
    assert notes == []


def val_rounds(before: float | None, now: float | None) -> list[dict[str, Any]]:
    return [rnd(0), rnd(1, qa=0.1, val_nll=before), rnd(2, qa=0.2, val_nll=now)]


def test_more_steps_grows_steps_when_validation_loss_fell() -> None:
    plan, notes = plan_after(val_rounds(2.0, 1.5), ("more_steps",), steps_growth=1.5)
    assert (plan.steps, plan.lr, plan.rank, plan.fresh_adapter) == (15, 1e-3, 8, False)
    assert notes == ["more_steps: validation loss fell (2.000 → 1.500): steps → 15"]
    # rounded up: 7 × 1.5 = 10.5 → 11
    plan, _ = plan_after(val_rounds(2.0, 1.5), ("more_steps",), Plan(1e-3, 7, 8))
    assert plan.steps == 11


@pytest.mark.parametrize(
    ("before", "now"),
    [(1.5, 2.0), (1.5, 1.5), (None, 1.5), (2.0, None), (None, None)],
    ids=["rose", "flat", "no-before", "no-now", "none"],
)
def test_more_steps_keeps_steps_unless_validation_loss_fell(
    before: float | None, now: float | None
) -> None:
    plan, notes = plan_after(val_rounds(before, now), ("more_steps",))
    assert plan.steps == 10 and notes == []


def test_more_steps_needs_two_trained_rounds() -> None:
    # The baseline has no validation loss to compare with.
    rounds = [rnd(0, val_nll=9.0), rnd(1, val_nll=1.0)]
    plan, notes = plan_after(rounds, ("more_steps",))
    assert plan.steps == 10 and notes == []


def test_more_steps_caps_at_max_steps_per_round() -> None:
    plan, notes = plan_after(
        val_rounds(2.0, 1.0), ("more_steps",), steps_growth=3.0, max_steps_per_round=25
    )
    assert plan.steps == 25 and "steps → 25" in notes[0]
    plan, notes = plan_after(
        val_rounds(2.0, 1.0), ("more_steps",), Plan(1e-3, 25, 8), max_steps_per_round=25
    )
    assert plan.steps == 25 and notes == []


def bayes_rounds() -> list[dict[str, Any]]:
    return [rnd(0), rnd(1, qa=0.2, lr=1e-3), rnd(2, qa=0.5, lr=5e-4), rnd(3, qa=0.4, lr=2e-3)]


def bayes(rounds: list[dict[str, Any]], seed: int = 0, **settings: float) -> float:
    plan, notes = plan_after(
        rounds, ("bayes",), Plan(7e-4, 10, 8), base_lr=1e-3, bayes={"seed": seed, **settings}
    )
    assert (plan.steps, plan.rank, plan.restart_from) == (10, 8, None)
    assert notes == [f"bayes: Optuna proposes lr {plan.lr:.3g}"]
    return plan.lr


@pytest.mark.parametrize("seed", range(6))
def test_bayes_proposes_an_lr_within_the_factors_of_the_base_lr(seed: int) -> None:
    lr = bayes(bayes_rounds(), seed=seed, lr_min_factor=0.5, lr_max_factor=1.5)
    assert 0.5e-3 <= lr <= 1.5e-3


def test_bayes_is_deterministic_for_the_same_history_and_seed() -> None:
    assert bayes(bayes_rounds(), seed=3) == bayes(bayes_rounds(), seed=3)
    proposals = {bayes(bayes_rounds(), seed=s) for s in range(4)}
    assert len(proposals) > 1  # the seed matters


def test_bayes_leans_towards_the_learning_rates_that_gained() -> None:
    """With enough trials for TPE to model them, the proposal follows the history: where high
    learning rates gained and low ones lost, it proposes a higher one than the reverse."""

    def history(high_gains: bool) -> list[dict[str, Any]]:
        rounds, score = [rnd(0)], 0.0
        for k in range(1, 13):
            factor = (0.25, 1.8)[k % 2]
            score += 0.04 if (factor > 1) == high_gains else -0.02
            rounds.append(rnd(k, qa=score, lr=1e-3 * factor))
        return rounds

    assert bayes(history(high_gains=True)) > bayes(history(high_gains=False))


def test_bayes_without_trained_rounds_changes_nothing() -> None:
    plan, notes = plan_after([rnd(0)], ("bayes",))
    assert plan.lr == 1e-3 and notes == []


def test_bayes_trial_values_are_gains_over_the_round_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import optuna

    values: list[float] = []
    real = optuna.trial.create_trial

    def spy(**kwargs: Any) -> Any:
        values.append(kwargs["value"])
        return real(**kwargs)

    monkeypatch.setattr(optuna.trial, "create_trial", spy)
    rounds = [rnd(0, qa=0.5), rnd(1, qa=0.5, lr=1e-3), rnd(2, qa=0.7, lr=5e-4)]
    plan_after(rounds, ("bayes",))
    assert values == pytest.approx([0.0, 0.2])  # round 1 gained nothing over the baseline


def test_policies_apply_in_order() -> None:
    rounds = val_rounds(2.0, 1.0)
    plan, notes = plan_after(
        rounds,
        ("lr_decay", "capacity", "more_steps"),
        lr_decay=0.5,
        steps_growth=2.0,
        lora_params=1,
        completion_tokens=10,
    )
    assert plan == Plan(lr=5e-4, steps=20, rank=16, fresh_adapter=True)
    assert [n.split(":")[0] for n in notes] == ["lr_decay", "capacity", "more_steps"]
    # bayes after lr_decay sets the learning rate itself; before it, the decay applies on top
    last, _ = plan_after(rounds, ("lr_decay", "bayes"), lr_decay=0.5)
    first, _ = plan_after(rounds, ("bayes", "lr_decay"), lr_decay=0.5)
    assert first.lr == pytest.approx(0.5 * last.lr)


# -- a broken guard ---------------------------------------------------------------------------
EVERY = ("lr_decay", "capacity", "more_steps", "bayes")


def test_broken_guard_restarts_from_the_best_round_that_held() -> None:
    rounds = [
        rnd(0, qa=0.0, safe=0.9),
        rnd(1, qa=0.3, safe=0.9, val_nll=2.0),
        rnd(2, qa=0.5, safe=0.88, val_nll=1.8),  # within tolerance: holds, and the best
        rnd(3, qa=0.9, safe=0.5, val_nll=1.0),  # the highest score, but breaks the guard
    ]
    current = Plan(lr=2e-3, steps=10, rank=8)
    plan, notes = plan_after(
        rounds,
        EVERY,
        current,
        rules=(QA, SAFE),
        lr_decay=0.5,
        lora_params=1,
        completion_tokens=100,
        guard_backoff=0.25,
    )
    # No policy applied: lr only backed off, steps and rank as they were.
    assert plan == Plan(lr=5e-4, steps=10, rank=8, restart_from="state-2", fresh_adapter=False)
    assert notes == ["round 3 broke a guard: restart from round 2, lr × 0.25"]


def test_broken_guard_skips_earlier_broken_rounds() -> None:
    rounds = [
        rnd(0, qa=0.0, safe=0.9),
        rnd(1, qa=0.8, safe=0.1),  # broke
        rnd(2, qa=0.2, safe=0.9),  # held
        rnd(3, qa=0.9, safe=0.2),  # broke
    ]
    plan, notes = plan_after(rounds, ("lr_decay",), rules=(QA, SAFE), lr_decay=0.5)
    assert plan.restart_from == "state-2" and not plan.fresh_adapter
    assert plan.lr == pytest.approx(5e-4)  # guard_backoff 0.5; no lr_decay on top
    assert notes == ["round 3 broke a guard: restart from round 2, lr × 0.5"]


def test_broken_guard_with_no_good_round_starts_a_fresh_adapter() -> None:
    rounds = [rnd(0, qa=0.0, safe=0.9), rnd(1, qa=0.5, safe=0.2), rnd(2, qa=0.6, safe=0.1)]
    plan, notes = plan_after(rounds, EVERY, rules=(QA, SAFE), lora_params=1, completion_tokens=9)
    assert plan == Plan(lr=5e-4, steps=10, rank=8, restart_from=None, fresh_adapter=True)
    assert notes == ["round 2 broke a guard: restart from a fresh adapter, lr × 0.5"]


def test_a_held_guard_lets_the_policies_run() -> None:
    rounds = [rnd(0, qa=0.0, safe=0.9), rnd(1, qa=0.5, safe=0.85)]  # 0.05 below: tolerated
    plan, notes = plan_after(rounds, ("lr_decay",), rules=(QA, SAFE), lr_decay=0.5)
    assert plan == Plan(lr=5e-4, steps=10, rank=8)
    assert notes == ["lr_decay: lr → 0.0005"]


def test_broken_guard_restart_takes_the_rank_of_the_round_it_restarts_from() -> None:
    rounds = [
        rnd(0, qa=0.0, safe=0.9),
        rnd(1, qa=0.3, safe=0.9, rank=8),
        rnd(2, qa=0.5, safe=0.1, rank=16),  # capacity doubled the rank; the guard broke
    ]
    plan, _ = plan_after(rounds, ("capacity",), Plan(1e-3, 10, 16), rules=(QA, SAFE))
    assert plan.restart_from == "state-1"
    assert plan.rank == 8


# -- rl_on_plateau ----------------------------------------------------------------------------
def test_rl_on_plateau_switches_when_the_last_sft_round_did_not_gain() -> None:
    rising = [rnd(0), rnd(1, qa=0.3), rnd(2, qa=0.5)]
    flat = [rnd(0), rnd(1, qa=0.3), rnd(2, qa=0.3)]
    plan, notes = plan_after(flat, ("rl_on_plateau",), verifiable=("qa",))
    assert plan.method == "rl"
    assert "rl_on_plateau" in notes[0] and "qa's grader" in notes[0]
    # still gaining: SFT goes on
    assert plan_after(rising, ("rl_on_plateau",), verifiable=("qa",))[0].method == "sft"
    # no verifiable target suite (a judge, say): nothing to reward with, SFT goes on
    assert plan_after(flat, ("rl_on_plateau",))[0].method == "sft"
    # a round that did not beat the baseline is a plateau too
    assert (
        plan_after([rnd(0, qa=0.2), rnd(1, qa=0.1)], ("rl_on_plateau",), verifiable=("qa",))[
            0
        ].method
        == "rl"
    )


def test_rl_on_plateau_leaves_a_non_sft_plan_alone() -> None:
    flat = [rnd(0), rnd(1, qa=0.3), rnd(2, qa=0.3)]
    dpo = Plan(lr=1e-3, steps=10, rank=8, method="dpo")
    plan, notes = plan_after(flat, ("rl_on_plateau",), dpo, verifiable=("qa",))
    assert (plan.method, notes) == ("dpo", [])
