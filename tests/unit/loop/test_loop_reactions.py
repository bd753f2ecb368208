"""Noise bands, rollback, the learning-rate probe's choice and synthesis, on hand-built data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from evaltune.data import Example
from evaltune.errors import ConfigError, DataError, TrainingError
from evaltune.evals import EvalResult
from evaltune.evals.result import SampleRecord
from evaltune.loop.decide import SuiteRule
from evaltune.loop.noise import compare_rounds
from evaltune.loop.policies import Plan, next_plan
from evaltune.loop.probe import choose_probe_lr, split_for_probe
from evaltune.loop.synthesis import Synthesiser, parse_teacher_reply, teacher_prompt

RULES = [SuiteRule("qa", "accuracy", "target", 0.9)]
LOOP = {
    "guard_backoff": 0.5,
    "rollback": True,
    "lr_decay": 1.0,
    "max_rank": 64,
    "steps_growth": 1.5,
    "max_steps_per_round": 100,
}


def result(correct: list[bool]) -> EvalResult:
    records = [
        SampleRecord(f"q{i}", f"q{i}?", "x", "y", float(c), c) for i, c in enumerate(correct)
    ]
    return EvalResult.from_records("qa", records)


def test_a_paired_drop_beyond_noise_is_worse() -> None:
    then = result([True] * 16 + [False] * 4)
    now = result([False] * 10 + [True] * 6 + [False] * 4)
    cmp = compare_rounds({"qa": now}, {"qa": then}, ["qa"], against=2, alpha=0.2)
    assert cmp is not None
    assert (cmp.verdict, cmp.right_to_wrong, cmp.wrong_to_right, cmp.against) == ("worse", 10, 0, 2)
    assert cmp.delta == pytest.approx(-0.5)


def test_a_one_item_swing_is_noise() -> None:
    then = result([True] * 10 + [False] * 10)
    now = result([False] + [True] * 9 + [False] * 10)
    cmp = compare_rounds({"qa": now}, {"qa": then}, ["qa"], against=1, alpha=0.2)
    assert cmp is not None and cmp.verdict == "same"
    assert compare_rounds({"qa": now}, {}, ["qa"], 1, 0.2) is None


def rnd(k: int, acc: float, **extra: Any) -> dict[str, Any]:
    return {
        "round": k,
        "lr": 1e-3,
        "rank": 8,
        "checkpoint": {"state": f"tinker://run/weights/round-{k}"},
        "evals": {"qa": {"metrics": {"accuracy": acc}}},
        **extra,
    }


def plan_after(rounds: list[dict[str, Any]], **loop: Any) -> tuple[Plan, list[str]]:
    return next_plan(
        Plan(1e-3, 8, 8),
        rounds,
        RULES,
        policies=(),
        loop={**LOOP, **loop},
        base_lr=1e-3,
        lora_params=None,
        completion_tokens=0,
    )


def test_a_significant_target_regression_restarts_from_the_best_round() -> None:
    worse = {"verdict": "worse", "against": 1, "delta": -0.4, "p_value": 0.01}
    rounds = [rnd(0, 0.0), rnd(1, 0.7), rnd(2, 0.3, vs_best=worse)]
    plan, notes = plan_after(rounds)
    assert plan.restart_from == "tinker://run/weights/round-1"
    assert plan.lr == pytest.approx(5e-4)
    assert "restart from round 1" in notes[0]


def test_noise_or_rollback_off_does_not_restart() -> None:
    same = {"verdict": "same", "against": 1, "delta": -0.1, "p_value": 0.6}
    assert plan_after([rnd(0, 0.0), rnd(1, 0.7), rnd(2, 0.6, vs_best=same)])[0].restart_from is None
    worse = {"verdict": "worse", "against": 1, "delta": -0.4, "p_value": 0.01}
    rounds = [rnd(0, 0.0), rnd(1, 0.7), rnd(2, 0.3, vs_best=worse)]
    assert plan_after(rounds, rollback=False)[0].restart_from is None


def test_the_probe_keeps_the_lowest_validation_nll_and_ties_go_low() -> None:
    cands = [
        {"lr": 1e-3, "val_nll": 0.9},
        {"lr": 5e-4, "val_nll": 0.5},
        {"lr": 2.5e-4, "val_nll": 0.7},
    ]
    assert choose_probe_lr(cands, 1e-3) == 5e-4
    tie = [{"lr": 1e-3, "val_nll": 0.5}, {"lr": 5e-4, "val_nll": 0.5}]
    assert choose_probe_lr(tie, 1e-3) == 5e-4
    nan = [{"lr": 1e-3, "val_nll": float("nan")}]
    assert choose_probe_lr(nan, 7e-4) == 7e-4


def test_a_probe_candidate_that_diverges_scores_nan_and_is_not_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import evaltune.loop.probe as probe
    from evaltune.train import SFTRoundResult

    def train(client: Any, datums: Any, *, learning_rate: float, **kw: Any) -> SFTRoundResult:
        if learning_rate > 1:
            raise TrainingError("training diverged at step 2 of 3")
        return SFTRoundResult()

    nll = type("NLL", (), {"mean_nll": 0.8})()
    monkeypatch.setattr(probe, "run_sft_round", train)
    monkeypatch.setattr(probe, "validation_nll", lambda client, held_out: nll)
    result = probe.probe_learning_rate(
        object, list(range(10)), 1e-2, factors=[1.0, 1e32], steps=3, batch_size=4, seed=0
    )
    assert result is not None and result.chosen == pytest.approx(1e-2)
    diverged = result.candidates[1]
    assert diverged["lr"] == pytest.approx(1e30) and diverged["val_nll"] != diverged["val_nll"]


def test_the_probe_split_holds_out_a_fifth_seeded() -> None:
    train, held = split_for_probe(list(range(10)), seed=3)  # type: ignore[arg-type]
    assert len(held) == 2 and len(train) == 8 and set(train) | set(held) == set(range(10))
    assert split_for_probe(list(range(10)), seed=3) == (train, held)  # type: ignore[arg-type]


def style() -> list[Example]:
    return [Example.single_turn("s1", "What is the opposite of hot?", "cold", tags=("opp",))]


@pytest.fixture()
def generator_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "gen_mod.py").write_text(
        "def make(tag, n, examples):\n"
        "    words = [('big', 'small'), ('up', 'down'), ('hot', 'cold'), ('wet', 'dry')]\n"
        "    out = [{'question': f'What is the opposite of {a}?', 'answer': b} "
        "for a, b in words]\n"
        "    return out[:n] + [{'question': 'What is the opposite of early?', 'answer': 'late'}]\n"
        "def broken(tag, n, examples):\n"
        "    return [{'question': 'no answer here'}]\n"
        "def raises(tag, n, examples):\n"
        "    raise RuntimeError('teacher offline')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "gen_mod"
    sys.modules.pop("gen_mod", None)


def test_generated_examples_pass_dedup_and_the_contamination_guard(generator_module: str) -> None:
    synth = Synthesiser(
        generator=f"{generator_module}:make",
        known_prompts=["What is the opposite of hot?"],
        eval_prompts=["What is the opposite of up?"],
        per_tag=10,
    )
    made = synth("opp", 5, style())
    prompts = [e.prompt for e in made]
    assert "What is the opposite of hot?" not in prompts  # already training data
    assert "What is the opposite of up?" not in prompts  # an eval item
    assert prompts == [
        "What is the opposite of big?",
        "What is the opposite of wet?",
        "What is the opposite of early?",
    ]
    assert all(e.tags == ("opp",) and e.metadata["generated"] for e in made)
    assert synth.rejected["eval_item"] == 1 and synth.rejected["duplicate"] == 1
    assert len({e.id for e in made}) == 3


def test_a_generator_returning_bad_records_is_a_clear_error(generator_module: str) -> None:
    with pytest.raises(DataError, match="broken"):
        Synthesiser(generator=f"{generator_module}:broken")("opp", 2, style())
    with pytest.raises(DataError, match="teacher offline"):
        Synthesiser(generator=f"{generator_module}:raises")("opp", 2, style())
    with pytest.raises(ConfigError, match=r"synthesis\.generator"):
        Synthesiser(generator=f"{generator_module}:missing")


class FakeChat:
    """A teacher that answers the way a chat model does: mostly JSON lines, one slip."""

    name = "teacher"

    def __init__(self) -> None:
        self.asked: list[str] = []

    def complete_many(self, conversations: Any) -> list[str]:
        self.asked.append(conversations[0][0].content)
        return [
            'Sure! Here you go:\n{"question": "What is the opposite of tall?", "answer": "short"}\n'
            '{"question": "What is the opposite of fast?" "answer": "slow"}\n'
            '{"question": "What is the opposite of open?", "answer": "closed"},'
        ]


def test_a_teacher_model_reply_is_parsed_and_its_slips_counted() -> None:
    chat = FakeChat()
    made = Synthesiser(chat=chat)("opp", 3, style())
    assert [e.completion for e in made] == ["short", "closed"]
    assert "What is the opposite of hot?" in chat.asked[0]  # shown training examples only
    records, skipped = parse_teacher_reply('{"question": "a?", "answer": "b"}\n{"question": 1}')
    assert records == [{"question": "a?", "answer": "b"}] and skipped == 1
    assert "3 new" in teacher_prompt("opp", 3, style())
