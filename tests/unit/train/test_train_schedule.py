"""Learning-rate schedules (exact values) and the ``auto`` learning rate."""

from __future__ import annotations

import math

import pytest

from evaltune.train import SCHEDULES, auto_learning_rate, lr_at


def lrs(schedule: str, total: int, warmup: int = 0, base: float = 1.0) -> list[float]:
    return [lr_at(i, total, base, schedule, warmup) for i in range(total)]


def test_constant() -> None:
    assert lrs("constant", 4, base=3e-4) == [3e-4] * 4


def test_constant_with_warmup() -> None:
    assert lrs("constant", 5, warmup=2) == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0])


def test_warmup_ramps_linearly_from_a_nonzero_start() -> None:
    assert lrs("constant", 6, warmup=4, base=2.0) == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0])


def test_linear_decays_toward_zero() -> None:
    assert lrs("linear", 4) == pytest.approx([1.0, 0.75, 0.5, 0.25])
    assert lr_at(4, 4, 1.0, "linear") == 0.0  # the step after the last: fully decayed


def test_linear_with_warmup() -> None:
    # 2 warmup steps, then decay over the remaining 4 starting from the peak.
    assert lrs("linear", 6, warmup=2) == pytest.approx([0.5, 1.0, 1.0, 0.75, 0.5, 0.25])


def test_cosine() -> None:
    got = lrs("cosine", 4)
    want = [0.5 * (1 + math.cos(math.pi * i / 4)) for i in range(4)]
    assert got == pytest.approx(want)
    assert got[2] == pytest.approx(0.5)  # halfway: half the peak
    assert lr_at(4, 4, 1.0, "cosine") == pytest.approx(0.0)
    assert lr_at(99, 4, 1.0, "cosine") == pytest.approx(0.0)  # clamped past the end


def test_cosine_with_warmup() -> None:
    got = lrs("cosine", 6, warmup=2, base=2.0)
    assert got[:2] == pytest.approx([1.0, 2.0])
    assert got[2:] == pytest.approx([2.0, 1.0 + math.sqrt(0.5) * 1.0, 1.0, 1.0 - math.sqrt(0.5)])


def test_single_step_round() -> None:
    for schedule in SCHEDULES:
        assert lr_at(0, 1, 1e-3, schedule) == pytest.approx(1e-3)


def test_unknown_schedule_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown schedule 'cosin'") as info:
        lr_at(0, 10, 1.0, "cosin")
    for name in ("constant", "linear", "cosine"):
        assert name in str(info.value)


def test_auto_learning_rate_for_gemma_270m() -> None:
    lr = auto_learning_rate("gemma-3-270m", 640)
    assert lr == pytest.approx(1.217e-3, rel=1e-3)
    assert lr == pytest.approx(5e-5 * 10 * (2000 / 640) ** 0.781)


def test_auto_learning_rate_at_the_reference_width() -> None:
    assert auto_learning_rate("meta-llama/Llama-3.2-1B", 2000) == pytest.approx(5e-4)
    assert auto_learning_rate("Qwen/Qwen3-8B", 2000) == pytest.approx(5e-4)


def test_auto_learning_rate_qwen_exponent() -> None:
    lr = auto_learning_rate("Qwen/Qwen3-8B", 4096)
    assert lr == pytest.approx(5e-4 * (2000 / 4096) ** 0.0775)
    assert lr == pytest.approx(4.73e-4, rel=1e-3)
    assert auto_learning_rate("QWEN2.5-0.5b", 896) == pytest.approx(5e-4 * (2000 / 896) ** 0.0775)
    # the same width with the Llama exponent gives a much smaller rate
    assert auto_learning_rate("llama", 4096) == pytest.approx(5e-4 * (2000 / 4096) ** 0.781)
    assert auto_learning_rate("llama", 4096) < lr


def test_auto_learning_rate_falls_with_width() -> None:
    widths = [256, 640, 1152, 2048, 4096]
    values = [auto_learning_rate("gemma", w) for w in widths]
    assert values == sorted(values, reverse=True)
