"""Decisions between rounds (decide.py) and the per-round analysis and report (summary.py), on
hand-built round records: no model, no files."""

from __future__ import annotations

from typing import Any

import pytest

from evaltune.loop.analysis import analyse_round
from evaltune.loop.decide import (
    Decision,
    SuiteRule,
    choose_best,
    decide_next,
    guards_hold,
    target_score,
    targets_met,
)
from evaltune.loop.summary import render_report

QA = SuiteRule("qa", "accuracy", "target", threshold=0.8)
MATH = SuiteRule("math", "accuracy", "target", threshold=0.5)
SAFE = SuiteRule("safe", "accuracy", "guard", tolerance=0.1)


def rnd(k: int, val_nll: float | None = None, **metrics: float | None) -> dict[str, Any]:
    """A round record: ``qa=0.9`` puts accuracy 0.9 under suite ``qa`` (None: not measured)."""
    evals = {
        suite: {"metrics": {} if value is None else {"accuracy": value}}
        for suite, value in metrics.items()
    }
    return {"round": k, "evals": evals, "val_nll": val_nll}


# -- targets_met ----------------------------------------------------------------------------
def test_targets_met_needs_every_target() -> None:
    rules = [QA, MATH]
    assert targets_met(rnd(1, qa=0.8, math=0.5), rules)  # exactly at the thresholds
    assert not targets_met(rnd(1, qa=0.9, math=0.49), rules)
    assert not targets_met(rnd(1, qa=0.79, math=0.9), rules)


def test_targets_met_ignores_guards() -> None:
    # The guard is far below anything; targets_met only looks at targets.
    assert targets_met(rnd(1, qa=0.9, safe=0.0), [QA, SAFE])


def test_targets_met_missing_metric_is_not_met() -> None:
    assert not targets_met(rnd(1, math=0.9), [QA, MATH])  # qa suite absent
    assert not targets_met(rnd(1, qa=None, math=0.9), [QA, MATH])  # qa present, no metric
    other_metric = SuiteRule("qa", "f1", "target", threshold=0.1)
    assert not targets_met(rnd(1, qa=1.0), [other_metric])


def test_targets_met_without_targets_or_threshold() -> None:
    assert not targets_met(rnd(1, safe=1.0), [SAFE])  # guards only: nothing to meet
    no_threshold = SuiteRule("qa", "accuracy", "target", threshold=None)
    assert not targets_met(rnd(1, qa=1.0), [no_threshold])


# -- guards_hold ----------------------------------------------------------------------------
def test_guards_hold_within_tolerance() -> None:
    base = rnd(0, safe=0.8)
    assert guards_hold(rnd(1, safe=0.8), base, [SAFE])
    assert guards_hold(rnd(1, safe=0.7), base, [SAFE])  # exactly tolerance below
    assert not guards_hold(rnd(1, safe=0.69), base, [SAFE])


def test_guards_hold_zero_tolerance() -> None:
    strict = SuiteRule("safe", "accuracy", "guard", tolerance=0.0)
    base = rnd(0, safe=0.5)
    assert guards_hold(rnd(1, safe=0.5), base, [strict])
    assert not guards_hold(rnd(1, safe=0.49), base, [strict])


def test_guards_hold_ignores_targets_and_missing_values() -> None:
    base = rnd(0, qa=0.9, safe=0.8)
    assert guards_hold(rnd(1, qa=0.0, safe=0.8), base, [QA, SAFE])  # a target may fall
    assert guards_hold(rnd(1, qa=0.9), base, [QA, SAFE])  # guard not measured now
    assert guards_hold(rnd(1, safe=0.0), rnd(0, qa=0.9), [QA, SAFE])  # nor in the baseline
    assert guards_hold(rnd(1, safe=0.0), None, [SAFE])  # no baseline: nothing to compare


def test_target_score_is_the_mean_of_measured_targets() -> None:
    assert target_score(rnd(1, qa=0.6, math=0.2, safe=0.0), [QA, MATH, SAFE]) == pytest.approx(0.4)
    assert target_score(rnd(1, qa=0.6), [QA, MATH]) == pytest.approx(0.6)
    assert target_score(rnd(1, safe=1.0), [QA, SAFE]) == 0.0


# -- decide_next ----------------------------------------------------------------------------
def decide(rounds: list[dict[str, Any]], rules=(QA,), **kw: Any) -> Decision:
    opts: dict[str, Any] = {"max_rounds": 5, "lr": 1e-3, "lr_decay": 1.0} | kw
    return decide_next(rounds, list(rules), **opts)


def test_target_met_stops_a_trained_round() -> None:
    d = decide([rnd(0, qa=0.1), rnd(1, qa=0.9)])
    assert (d.stop, d.reason, d.next_lr) == (True, "target_met", None)
    assert "round 1" in d.note


def test_target_met_at_baseline_does_not_stop() -> None:
    # Round 0 is the untrained model: meeting the target there still trains round 1.
    d = decide([rnd(0, qa=1.0)])
    assert (d.stop, d.reason) == (False, "continue")
    assert "round 1" in d.note


def test_target_met_needs_guards_to_hold() -> None:
    rounds = [rnd(0, qa=0.1, safe=0.9), rnd(1, qa=0.9, safe=0.5)]
    d = decide(rounds, rules=(QA, SAFE))
    assert (d.stop, d.reason) == (False, "continue")
    held = [rnd(0, qa=0.1, safe=0.9), rnd(1, qa=0.9, safe=0.85)]
    assert decide(held, rules=(QA, SAFE)).reason == "target_met"


def test_stop_on_target_false_keeps_training() -> None:
    d = decide([rnd(0, qa=0.1), rnd(1, qa=1.0)], stop_on_target=False)
    assert (d.stop, d.reason) == (False, "continue")


def test_max_rounds() -> None:
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.1), rnd(2, qa=0.2)]
    d = decide(rounds, max_rounds=2)
    assert (d.stop, d.reason, d.next_lr) == (True, "max_rounds", None)
    assert "max_rounds=2" in d.note
    assert decide(rounds, max_rounds=3).reason == "continue"


def test_target_met_wins_over_max_rounds() -> None:
    d = decide([rnd(0, qa=0.0), rnd(1, qa=0.9)], max_rounds=1)
    assert d.reason == "target_met"


def test_max_rounds_when_guard_breaks_in_the_last_round() -> None:
    rounds = [rnd(0, qa=0.1, safe=0.9), rnd(1, qa=0.9, safe=0.1)]
    assert decide(rounds, rules=(QA, SAFE), max_rounds=1).reason == "max_rounds"


def test_plateau_without_enough_gain() -> None:
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.3), rnd(2, qa=0.32)]
    d = decide(rounds, plateau_rounds=1, min_improvement=0.05)
    assert (d.stop, d.reason) == (True, "plateau")
    assert "0.05" in d.note and "1 rounds" in d.note
    # a gain of min_improvement or more is progress
    assert decide(rounds, plateau_rounds=1, min_improvement=0.02).reason == "continue"


def test_plateau_compares_the_recent_window_with_the_best_before() -> None:
    # best before the last two rounds is 0.5; the last two reach 0.45 and 0.49: a plateau,
    # even though the very last round improved on the one before it.
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.5), rnd(2, qa=0.45), rnd(3, qa=0.49)]
    assert decide(rounds, plateau_rounds=2).reason == "plateau"
    # a drop below the earlier best is a plateau with plateau_rounds=1 too
    assert decide(rounds[:3], plateau_rounds=1).reason == "plateau"


def test_a_change_of_method_starts_a_new_plateau_window() -> None:
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.5), rnd(2, qa=0.4), rnd(3, qa=0.45)]
    assert decide(rounds, plateau_rounds=2).reason == "plateau"
    rounds[3]["method"] = "rl"  # round 3 is the first RL round: RL has had one round
    assert decide(rounds, plateau_rounds=2).reason == "continue"
    rounds.append({**rnd(4, qa=0.45), "method": "rl"})  # two RL rounds, no gain: plateau
    assert decide(rounds, plateau_rounds=2).reason == "plateau"


def test_plateau_needs_more_trained_rounds_than_the_window() -> None:
    rounds = [rnd(0, qa=0.5), rnd(1, qa=0.0)]  # one trained round, worse than the baseline
    assert decide(rounds, plateau_rounds=1, min_improvement=0.5).reason == "continue"


def test_plateau_off_by_default() -> None:
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.3), rnd(2, qa=0.1)]
    assert decide(rounds).reason == "continue"


def test_equal_scores_with_zero_min_improvement_are_not_a_plateau() -> None:
    # As documented: min_improvement is the smallest gain that counts, and 0 counts.
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.2), rnd(2, qa=0.2)]
    assert decide(rounds, plateau_rounds=1, min_improvement=0.0).reason == "continue"


def test_lr_decay_arithmetic_and_note() -> None:
    d = decide([rnd(0, qa=0.0), rnd(1, qa=0.1)], lr=2e-3, lr_decay=0.5)
    assert (d.stop, d.reason) == (False, "continue")
    assert d.next_lr == pytest.approx(1e-3)
    assert d.note == "train round 2 with lr 0.002 → 0.001 (decay 0.5)"


def test_lr_decay_compounds_over_rounds() -> None:
    lr = 1e-2
    for k in range(1, 4):
        lr = decide([rnd(0, qa=0.0), rnd(k, qa=0.0)], lr=lr, lr_decay=0.7).next_lr
    assert lr == pytest.approx(1e-2 * 0.7**3)


def test_no_decay_keeps_lr_and_a_short_note() -> None:
    d = decide([rnd(0, qa=0.0)], lr=3e-4, lr_decay=1.0)
    assert d.next_lr == 3e-4
    assert d.note == "train round 1"


# -- choose_best ----------------------------------------------------------------------------
def test_choose_best_prefers_met_targets_over_a_higher_score() -> None:
    # round 1 meets both targets (mean 0.65); round 2 scores higher (0.7) but misses math.
    rounds = [rnd(0, qa=0.0, math=0.0), rnd(1, qa=0.8, math=0.5), rnd(2, qa=1.0, math=0.4)]
    assert choose_best(rounds, [QA, MATH])["round"] == 1


def test_choose_best_a_broken_guard_loses() -> None:
    rounds = [rnd(0, qa=0.0, safe=0.9), rnd(1, qa=0.7, safe=0.1), rnd(2, qa=0.5, safe=0.9)]
    assert choose_best(rounds, [QA, SAFE])["round"] == 2


def test_choose_best_higher_score_when_neither_meets_targets() -> None:
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.6, val_nll=0.1), rnd(2, qa=0.7, val_nll=9.0)]
    assert choose_best(rounds, [QA])["round"] == 2


def test_choose_best_val_nll_breaks_a_tie() -> None:
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.6, val_nll=2.0), rnd(2, qa=0.6, val_nll=1.5)]
    assert choose_best(rounds, [QA])["round"] == 2
    # a measured loss beats an unmeasured one
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.6), rnd(2, qa=0.6, val_nll=5.0)]
    assert choose_best(rounds, [QA])["round"] == 2


def test_choose_best_earlier_round_on_a_full_tie() -> None:
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.6, val_nll=1.0), rnd(2, qa=0.6, val_nll=1.0)]
    assert choose_best(rounds, [QA])["round"] == 1
    rounds = [rnd(0, qa=0.0), rnd(1, qa=0.6), rnd(2, qa=0.6)]
    assert choose_best(rounds, [QA])["round"] == 1


def test_choose_best_skips_baseline_and_unevaluated_rounds() -> None:
    assert choose_best([rnd(0, qa=1.0)], [QA]) is None
    trained_only = {"round": 2, "evals": {}, "val_nll": None}
    rounds = [rnd(0, qa=1.0), rnd(1, qa=0.1), trained_only]
    assert choose_best(rounds, [QA])["round"] == 1


# -- analyse_round --------------------------------------------------------------------------
def tagged(k: int, suite: str, **per_tag: float) -> dict[str, Any]:
    accs = list(per_tag.values())
    return {
        "round": k,
        "evals": {
            suite: {
                "metrics": {"accuracy": sum(accs) / len(accs)},
                "per_tag": {tag: {"accuracy": a, "n": 4} for tag, a in per_tag.items()},
            }
        },
    }


def test_analyse_round_deltas_vs_previous_and_baseline() -> None:
    rounds = [
        tagged(0, "qa", geo=0.25, math=0.5, art=0.0),
        tagged(1, "qa", geo=0.5, math=0.25, art=0.0),
        tagged(2, "qa", geo=0.75, math=0.5, new=1.0),
    ]
    out = analyse_round(rounds, [QA])
    assert out["round"] == 2
    tags = out["suites"]["qa"]["tags"]
    assert set(tags) == {"geo", "math", "new"}  # tags of the last round only
    assert tags["geo"] == {"accuracy": 0.75, "vs_previous": 0.25, "vs_baseline": 0.5}
    assert tags["math"] == {"accuracy": 0.5, "vs_previous": 0.25, "vs_baseline": 0.0}
    assert tags["new"] == {"accuracy": 1.0, "vs_previous": None, "vs_baseline": None}


def test_analyse_round_weakest_tags_lowest_first() -> None:
    rounds = [
        tagged(0, "qa", a=0.0),
        tagged(1, "qa", e=0.9, d=0.1, c=0.5, b=0.1, a=1.0),
    ]
    out = analyse_round(rounds, [QA])
    assert out["suites"]["qa"]["weakest_tags"] == ["b", "d", "c"]  # ties by name; at most 3


def test_analyse_round_of_the_baseline_alone() -> None:
    out = analyse_round([tagged(0, "qa", geo=0.5)], [QA])
    assert out["round"] == 0
    assert out["suites"]["qa"]["tags"]["geo"]["accuracy"] == 0.5
    assert out["suites"]["qa"]["tags"]["geo"]["vs_previous"] is None


def test_analyse_round_without_baseline_and_with_a_missing_suite() -> None:
    rounds = [tagged(1, "qa", geo=0.5), tagged(2, "qa", geo=0.75)]
    out = analyse_round(rounds, [QA, MATH])
    assert out["suites"]["qa"]["tags"]["geo"] == {
        "accuracy": 0.75,
        "vs_previous": 0.25,
        "vs_baseline": None,
    }
    assert out["suites"]["math"] == {"tags": {}, "weakest_tags": []}


# -- render_report --------------------------------------------------------------------------
def summary_of(rounds: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    base = {
        "run_id": "20260101-000000-unit",
        "base_model": "tiny",
        "backend": "local",
        "stop_reason": "max_rounds",
        "rounds_trained": sum(1 for r in rounds if r["round"] > 0),
        "suites": [QA.__dict__, SAFE.__dict__],
        "rounds": rounds,
        "best": None,
        "notes": [],
    }
    return base | kw


def report_rounds() -> list[dict[str, Any]]:
    r0 = tagged(0, "qa", geo=0.25, math=0.5)
    r0["evals"]["qa"]["metrics"] |= {"accuracy_ci_low": 0.1, "accuracy_ci_high": 0.6}
    r0["evals"]["safe"] = {"metrics": {"accuracy": 0.9}}
    r1 = tagged(1, "qa", geo=0.75, math=1.0)
    r1["evals"]["safe"] = {"metrics": {"accuracy": 0.85}}
    r1 |= {
        "lr": 0.01,
        "train": {"steps": 3, "final_loss": 1.23456},
        "val_nll": 2.5,
        "decision": {"reason": "target_met", "note": "round 1 met every target"},
        "vs_best": {
            "against": 0,
            "delta": 0.5,
            "wrong_to_right": 2,
            "right_to_wrong": 0,
            "n": 4,
            "p_value": 0.5,
            "verdict": "same",
        },
    }
    r0["decision"] = None
    return [r0, r1]


def test_render_report_round_table() -> None:
    text = render_report(summary_of(report_rounds(), stop_reason="target_met"))
    lines = text.splitlines()
    assert lines[0] == "# evaltune run 20260101-000000-unit"
    assert "stop reason: **target_met** after 1 training round(s)" in text
    header = (
        "| round | method | lr | steps | train loss | qa accuracy (≥ 0.8) | safe accuracy "
        "| val NLL | vs best so far (paired) | decision |"
    )
    assert header in lines
    assert lines[lines.index(header) + 1] == "|---|---|---|---|---|---|---|---|---|---|"
    assert "| baseline | – | – | – | – | 0.375 [0.10, 0.60] | 0.900 | – | – | – |" in lines
    assert (
        "| 1 | sft | 0.01 | 3 | 1.235 | 0.875 | 0.850 | 2.500 | +0.50 vs round 0 (+2/−0, "
        "p=0.5): noise | target_met |"
    ) in lines
    assert "- round 1: target_met — round 1 met every target" in lines


def test_render_report_per_tag_table() -> None:
    text = render_report(summary_of(report_rounds()))
    lines = text.splitlines()
    assert "## Per-tag accuracy: qa" in lines
    assert "| tag | baseline | round 1 |" in lines
    assert "| geo | 0.250 | 0.750 |" in lines
    assert "| math | 0.500 | 1.000 |" in lines
    assert "## Per-tag accuracy: safe" not in lines  # no tags measured for it


def test_render_report_best_checkpoint_and_notes() -> None:
    best = {"round": 1, "checkpoint": {"sampler": "tinker://x/sampler", "state": "tinker://x/s"}}
    text = render_report(summary_of(report_rounds(), best=best, notes=["removed 2 duplicates"]))
    assert (
        "- best checkpoint: round 1 — `tinker://x/sampler` (resumable state: `tinker://x/s`)"
        in text
    )
    assert "- data: removed 2 duplicates" in text


def test_render_report_tag_missing_in_a_round() -> None:
    rounds = [tagged(0, "qa", geo=0.5), tagged(1, "qa", geo=0.5, art=1.0)]
    text = render_report(summary_of(rounds, suites=[QA.__dict__]))
    assert "| art | – | 1.000 |" in text.splitlines()


def test_render_report_shows_small_learning_rates() -> None:
    rounds = [tagged(0, "qa", geo=0.5), tagged(1, "qa", geo=0.5), tagged(2, "qa", geo=0.5)]
    rounds[1]["lr"], rounds[2]["lr"] = 0.01, 0.005
    text = render_report(summary_of(rounds, suites=[QA.__dict__]))
    lr_cells = [line.split(" | ")[2] for line in text.splitlines() if line.startswith("| 1 |")]
    lr_cells += [line.split(" | ")[2] for line in text.splitlines() if line.startswith("| 2 |")]
    assert len(lr_cells) == 2
    assert lr_cells[0] != lr_cells[1]  # 0.01 and 0.005 must not print alike
    rounds[1]["lr"] = 1.2e-3  # Gemma 3 270M's auto learning rate
    text = render_report(summary_of(rounds, suites=[QA.__dict__]))
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert row.split(" | ")[2] not in ("0.00", "0")
