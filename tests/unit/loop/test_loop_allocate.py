"""The bandit over tags on hand-built histories: statuses, weights, budget split, replay."""

from __future__ import annotations

import math
from typing import Any

import pytest

from evaltune.data import Example
from evaltune.loop.adaptive import plan_round_data, tag_train_loss, trained_by_round
from evaltune.loop.allocate import (
    ALL,
    PRIOR_RATE,
    allocate_budget,
    gap_rate,
    marginal_gain,
    tag_states,
    two_proportion_z,
    with_pending,
)


def rnd(k: int, accs: dict[str, float], n: int = 10, **extra: Any) -> dict[str, Any]:
    per_tag = {t: {"accuracy": a, "n": n} for t, a in accs.items()}
    return {"round": k, "evals": {"qa": {"per_tag": per_tag}}, **extra}


def states(rounds, trained, **kw):
    return tag_states(rounds, ["qa"], trained, **kw)


def test_every_tag_is_untried_before_any_data_and_weighted_by_headroom() -> None:
    s = states([rnd(0, {"a": 0.0, "b": 0.5})], {})
    assert {t: v.status for t, v in s.items()} == {"a": "untried", "b": "untried"}
    # the prior rate: the next example closes PRIOR_RATE of the gap, in expectation
    first = 1 - math.exp(-PRIOR_RATE)
    assert s["a"].weight == pytest.approx(1.0 * first)
    assert s["b"].weight == pytest.approx(0.5 * first)
    assert (s["a"].rate, s["a"].rate_low) == (PRIOR_RATE, 0.0)


def test_gap_rate_is_the_learning_curve_through_two_points() -> None:
    # 1 − (1 − 0.2)·exp(−r·10) = 0.6  ⇒  r = ln 2 / 10
    assert gap_rate(0.2, 0.6, 10) == pytest.approx(math.log(2) / 10)
    assert gap_rate(0.5, 0.4, 10) == 0.0  # it fell: no rate
    assert gap_rate(0.0, 0.5, 0) == 0.0


def test_a_tag_that_rose_significantly_is_responsive_and_weighs_more() -> None:
    rounds = [rnd(0, {"a": 0.0, "b": 0.0}), rnd(1, {"a": 0.6, "b": 0.1})]
    s = states(rounds, {1: {"a": 5, "b": 5}})
    assert s["a"].status == "responsive"
    assert s["a"].gain == pytest.approx(0.6)
    assert s["a"].rate > s["a"].rate_low > 0  # optimistic and pessimistic rates
    assert s["a"].weight > s["b"].weight > 0  # a's next example is worth more
    assert s["b"].status == "trying"  # +0.1 on 10 items is noise, one round is too early


def test_a_tag_that_took_many_examples_without_moving_has_a_falling_rate() -> None:
    rounds = [rnd(0, {"a": 0.0}), rnd(1, {"a": 0.0})]
    few = states(rounds, {1: {"a": 5}}, stall_rounds=5)["a"]
    many = states(rounds, {1: {"a": 40}}, stall_rounds=5)["a"]
    assert few.status == many.status == "trying"
    assert few.rate_low == many.rate_low == 0.0  # nothing it did is sure
    assert 0 < many.rate < few.rate  # optimism shrinks with every example that did not help
    assert many.rate == pytest.approx(few.rate / 8)


def test_the_seed_set_makes_its_tags_next_example_worth_less() -> None:
    untried = states([rnd(0, {"a": 0.0, "b": 0.0})], {})
    seeded = with_pending(untried["a"], 12)
    assert (seeded.status, seeded.pending, seeded.trained) == ("trying", 12, 12)
    assert seeded.weight == pytest.approx(untried["b"].weight * math.exp(-PRIOR_RATE * 12))
    assert marginal_gain(seeded, 3) == pytest.approx(
        untried["b"].weight * math.exp(-PRIOR_RATE * 15)
    )


def test_a_tag_that_did_not_move_for_stall_rounds_is_stalled_and_gets_nothing() -> None:
    rounds = [rnd(0, {"a": 0.0}), rnd(1, {"a": 0.0}), rnd(2, {"a": 0.1})]
    s = states(rounds, {1: {"a": 5}, 2: {"a": 5}}, stall_rounds=2)
    assert s["a"].status == "stalled"
    assert s["a"].weight == 0
    assert "different intervention" in s["a"].note
    assert states(rounds[:2], {1: {"a": 5}}, stall_rounds=2)["a"].status == "trying"


def test_no_gain_with_a_high_own_training_loss_is_under_fitted_not_stalled() -> None:
    def history(loss: float, k: int) -> list[dict[str, Any]]:
        return [rnd(0, {"a": 0.0})] + [
            rnd(i, {"a": 0.0}, train={"per_tag_loss": {"a": loss}}) for i in range(1, k + 1)
        ]

    trained = {1: {"a": 5}, 2: {"a": 5}}
    slow = states(history(0.9, 2), trained, stall_rounds=2, fitted_loss=0.3)["a"]
    assert (slow.status, slow.underfit, slow.train_loss) == ("trying", True, 0.9)
    assert slow.weight > 0
    assert "under-fitted" in slow.note
    # Fitted examples and still no gain: that is a stall, and the loss is in the note.
    fitted = states(history(0.1, 2), trained, stall_rounds=2, fitted_loss=0.3)["a"]
    assert (fitted.status, fitted.underfit) == ("stalled", False)
    assert "training loss 0.10" in fitted.note
    # Still under-fitted after 2 × stall_rounds rounds: it stalls anyway.
    stuck = states(history(0.9, 4), trained, stall_rounds=2, fitted_loss=0.3)["a"]
    assert stuck.status == "stalled"
    # Without fitted_loss the training loss is not consulted.
    assert states(history(0.9, 2), trained, stall_rounds=2, fitted_loss=None)["a"].status == (
        "stalled"
    )


def test_the_latest_training_loss_of_each_tag_is_the_one_read() -> None:
    rounds = [
        rnd(0, {"a": 0.0, "b": 0.0}),
        rnd(1, {"a": 0.0, "b": 0.0}, train={"per_tag_loss": {"a": 2.0, "b": 2.0}}),
        rnd(2, {"a": 0.0, "b": 0.0}, train={"per_tag_loss": {"a": 0.05}}),
    ]
    s = states(rounds, {1: {"a": 5, "b": 5}}, stall_rounds=5, fitted_loss=0.3)
    assert (s["a"].train_loss, s["a"].underfit) == (0.05, False)
    assert (s["b"].train_loss, s["b"].underfit) == (2.0, True)  # round 2 did not train on b


def test_a_frozen_tag_stays_stalled_even_if_noise_lifts_it() -> None:
    rounds = [rnd(0, {"a": 0.0}), rnd(1, {"a": 0.1})]
    s = states(rounds, {1: {"a": 5}}, frozen=frozenset({"a"}))
    assert s["a"].status == "stalled"


def test_a_tag_at_its_ceiling_gets_replay_only() -> None:
    rounds = [rnd(0, {"a": 0.0}), rnd(1, {"a": 1.0})]
    s = states(rounds, {1: {"a": 5}})
    assert s["a"].status == "ceiling"
    assert s["a"].weight == 0
    # Above the suite's threshold is not the ceiling: a tag at 0.9 can still add to a mean
    # target, and a fast learner's next examples are worth taking.
    big = [rnd(0, {"a": 0.0}, n=100), rnd(1, {"a": 0.9}, n=100)]
    assert states(big, {1: {"a": 5}})["a"].status == "responsive"
    assert states(big, {1: {"a": 5}})["a"].weight > 0


def test_regression_beyond_the_noise_band_is_flagged_and_noise_is_not() -> None:
    rounds = [rnd(0, {"a": 0.0}), rnd(1, {"a": 0.9}), rnd(2, {"a": 0.3})]
    assert states(rounds, {1: {"a": 5}})["a"].regressed
    noisy = [rnd(0, {"a": 0.0}), rnd(1, {"a": 0.8}), rnd(2, {"a": 0.7})]
    assert not states(noisy, {1: {"a": 5}})["a"].regressed


def test_two_proportion_z() -> None:
    assert two_proportion_z(0.5, 10, 0.5, 10) == 0
    assert two_proportion_z(0.0, 10, 0.6, 10) > 2
    assert two_proportion_z(0.6, 10, 0.0, 10) < -2
    assert two_proportion_z(0.0, 0, 1.0, 10) == 0


def test_budget_splits_by_worth_and_capped_tags_pass_their_share_on() -> None:
    rounds = [rnd(0, {"a": 0.0, "b": 0.5, "c": 0.0})]
    s = states(rounds, {})
    quota = allocate_budget(s, {"a": 100, "b": 100, "c": 2}, 10)
    assert sum(quota.values()) == 10
    assert quota["c"] == 2  # all it has
    assert quota["a"] > quota["b"]  # more headroom
    # Returns diminish: the split follows the curve, so every tag's next example is worth
    # no more than the last one any other tag took.
    last = min(marginal_gain(s[t], quota[t] - 1) for t in ("a", "b"))
    assert all(marginal_gain(s[t], quota[t]) <= last + 1e-12 for t in ("a", "b"))


def test_a_tag_whose_best_case_is_below_the_best_tags_sure_case_gets_nothing() -> None:
    # a rose 0 → 0.8 on 4 examples; b took 8 and did not move; c took 2 and did not move
    rounds = [rnd(0, {"a": 0.0, "b": 0.0, "c": 0.0}), rnd(1, {"a": 0.8, "b": 0.0, "c": 0.0})]
    s = states(rounds, {1: {"a": 4, "b": 8, "c": 2}}, stall_rounds=5)
    assert marginal_gain(s["b"]) < marginal_gain(s["a"], low=True) < marginal_gain(s["c"])
    quota = allocate_budget(s, {"a": 2, "b": 50, "c": 50}, 20)
    assert "b" not in quota  # eliminated: even at best it is worth less than a surely is
    assert quota["a"] == 2 and quota["c"] == 18  # c is too little tried to rule out


def test_budget_is_a_ceiling_when_the_pool_is_small() -> None:
    s = states([rnd(0, {"a": 0.0, "b": 0.0})], {})
    assert allocate_budget(s, {"a": 3, "b": 1}, 32) == {"a": 3, "b": 1}
    assert allocate_budget(s, {"a": 0, "b": 0}, 32) == {}


def plan(**kwargs: Any) -> Any:
    """``plan_round_data`` with the settings these tests share; ``kwargs`` override them."""
    settings: dict[str, Any] = {
        "suites": ["qa"],
        "failed_by_tag": {},
        "budget": 4,
        "replay": 1.0,
        "stall_rounds": 2,
        "explore": 1.0,
        "frozen": frozenset(),
        "seed": 0,
        "similarity": "tfidf",
    }
    return plan_round_data(**{**settings, **kwargs})


def ex(key: str, tag: str, prompt: str | None = None) -> Example:
    return Example.single_turn(key, prompt or f"question {key}?", "answer", tags=(tag,))


def test_plan_round_data_spends_nothing_on_stalled_or_off_target_tags() -> None:
    examples = {f"p{i}": ex(f"p{i}", tag) for i, tag in enumerate("aabbxx")}
    examples.update({"s1": ex("s1", "a"), "s2": ex("s2", "b")})
    rounds = [
        rnd(0, {"a": 0.0, "b": 0.0}),
        rnd(1, {"a": 0.6, "b": 0.0}, data={"by_tag": {"a": 1, "b": 1}}),
        rnd(2, {"a": 0.6, "b": 0.0}, data={"by_tag": {"b": 1}}),
    ]
    data = plan(
        rounds=rounds,
        examples=examples,
        trained=["s1", "s2"],
        available=["p0", "p1", "p2", "p3", "p4", "p5"],
        budget=10,
    )
    assert data.states["b"]["status"] == "stalled"
    assert set(data.new) == {"p0", "p1"}  # only tag a; x is measured by no target
    assert data.replay == ["s1", "s2"]  # stalled b gets no new examples; its old one goes last
    assert data.by_tag == {"a": 2}


def test_replay_puts_regressed_tags_first() -> None:
    examples = {"s1": ex("s1", "a"), "s2": ex("s2", "b"), "p1": ex("p1", "c")}
    rounds = [
        rnd(0, {"a": 0.0, "b": 0.0, "c": 0.0}),
        rnd(1, {"a": 1.0, "b": 0.9, "c": 0.0}, data={"by_tag": {"a": 1, "b": 1}}),
        rnd(2, {"a": 1.0, "b": 0.2, "c": 0.0}, data={"by_tag": {}}),
    ]
    data = plan(
        rounds=rounds,
        examples=examples,
        trained=["s1", "s2"],
        available=["p1"],
        budget=1,
        stall_rounds=5,
    )
    assert data.new == ["p1"]
    assert data.replay == ["s2"]  # b regressed (0.9 → 0.2): replayed before learned a


def test_every_example_of_an_under_fitted_responsive_tag_is_replayed_on_top() -> None:
    examples = {f"a{i}": ex(f"a{i}", "a") for i in range(4)}
    examples.update({f"b{i}": ex(f"b{i}", "b") for i in range(4)})
    examples.update({f"d{i}": ex(f"d{i}", "d") for i in range(4)})
    examples["p1"] = ex("p1", "c")
    loss = {"per_tag_loss": {"a": 0.01, "b": 1.5, "d": 1.5}}
    rounds = [
        rnd(0, {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}),
        rnd(
            1,
            {"a": 1.0, "b": 0.6, "c": 0.0, "d": 0.0},
            data={"by_tag": {"a": 4, "b": 4, "d": 4}},
            train=loss,
        ),
    ]
    data = plan(
        rounds=rounds,
        examples=examples,
        trained=[k for k in examples if k != "p1"],
        available=["p1"],
        budget=1,
        stall_rounds=5,
        fitted_loss=0.3,
    )
    assert data.new == ["p1"]  # c has no evidence yet: always explored
    # b rose (0 → 0.6) but its training loss is 1.5: it is learning and not learned yet, so
    # all four of it come, on top of the one example replay × new asks for, which still goes
    # to the learned a, so it stays learned. d did not move: under-fitted too, but it may be
    # a tag the model cannot learn, so it gets no extra passes.
    assert data.states["b"]["status"] == "responsive"
    assert data.states["b"]["underfit"] and data.states["d"]["underfit"]
    assert sorted(data.replay)[1:] == ["b0", "b1", "b2", "b3"]
    assert sorted(data.replay)[0] in {"a0", "a1", "a2", "a3"}


def test_within_a_tag_the_examples_closest_to_its_failures_come_first() -> None:
    examples = {
        "p1": ex("p1", "a", "What is the capital of Peru?"),
        "p2": ex("p2", "a", "How many legs does a spider have?"),
    }
    data = plan(
        rounds=[rnd(0, {"a": 0.0})],
        examples=examples,
        trained=[],
        available=["p2", "p1"],
        failed_by_tag={"a": ["What is the capital of Chile?"]},
        budget=1,
        replay=0.5,
    )
    assert data.new == ["p1"]


def test_a_dry_tag_asks_the_synthesiser() -> None:
    calls = []

    def synth(tag: str, n: int, style: list[Example]) -> list[Example]:
        calls.append((tag, n, [e.id for e in style]))
        return [ex(f"gen-{tag}-{i}", tag) for i in range(2)]

    examples = {"s1": ex("s1", "a")}
    data = plan(
        rounds=[rnd(0, {"a": 0.0}), rnd(1, {"a": 0.0}, data={"by_tag": {"a": 1}})],
        examples=examples,
        trained=["s1"],
        available=[],
        replay=0.0,
        stall_rounds=3,
        synthesise=synth,
    )
    assert calls == [("a", 4, ["s1"])]
    assert data.new == ["gen-a-0", "gen-a-1"]
    assert [e.id for e in data.generated] == data.new


def test_trained_by_round_reads_the_round_records() -> None:
    rounds = [rnd(0, {}), rnd(1, {}, data={"by_tag": {"a": 3}}), rnd(2, {})]
    assert trained_by_round(rounds) == {1: {"a": 3}}


def test_untagged_pool_examples_join_the_tag_of_the_eval_prompts_they_resemble() -> None:
    examples = {
        "u1": Example.single_turn("u1", "What is the capital city of Peru?", "Lima"),
        "u2": Example.single_turn("u2", "Name a prime number above ten.", "11"),
        "t1": ex("t1", "other"),  # tagged with a tag no eval measures: never inferred
    }
    data = plan(
        rounds=[rnd(0, {"geo": 0.0, "math": 0.0})],
        examples=examples,
        trained=[],
        available=["u1", "u2", "t1"],
        eval_prompts={
            "geo": ["What is the capital city of Chile?"],
            "math": ["What is 7 times 8 times 9?"],
        },
    )
    assert data.new == ["u1"]
    assert data.inferred == {"u1": "geo"}
    assert data.by_tag == {"geo": 1}


def test_a_suite_without_tags_is_one_tag_and_still_uses_the_pool() -> None:
    untagged_round = {
        "round": 0,
        "evals": {"qa": {"per_tag": {}, "metrics": {"accuracy": 0.25, "n": 8}}},
    }
    examples = {f"p{i}": Example.single_turn(f"p{i}", f"q{i}?", "a") for i in range(3)}
    data = plan(rounds=[untagged_round], examples=examples, trained=[], available=list(examples))
    assert data.states[ALL]["status"] == "untried"
    assert data.states[ALL]["accuracy"] == 0.25
    assert sorted(data.new) == ["p0", "p1", "p2"]


def test_tag_train_loss_counts_tags_as_by_tag_does() -> None:
    # Datum i is keys[i]. A tag no target measures is left out; an untagged example counts
    # under the tag inferred for it; a datum no step reached has no loss and counts nowhere.
    examples = {"a1": ex("a1", "a"), "a2": ex("a2", "a"), "x1": ex("x1", "x")}
    examples["u1"] = Example.single_turn("u1", "an untagged question?", "answer")
    examples["b1"] = ex("b1", "b")
    keys = ["a1", "a2", "x1", "u1", "b1"]
    losses = {0: 1.0, 1: 3.0, 2: 9.0, 3: 0.5}
    states = {"a": {}, "b": {}}
    got = tag_train_loss(keys, losses, examples, states, {"u1": "b"})
    assert got == pytest.approx({"a": 2.0, "b": 0.5})
    # A suite without tags: every example is the one tag, ALL.
    assert tag_train_loss(keys, losses, examples, {ALL: {}}, {}) == pytest.approx(
        {ALL: (1.0 + 3.0 + 9.0 + 0.5) / 4}
    )
