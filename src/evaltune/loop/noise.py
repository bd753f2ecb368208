"""Is a change real or noise? Paired comparisons of two rounds on the same eval items.

Every decision that compares rounds (regressed → roll back, improved → keep going) goes
through ``compare_rounds``: for the target suites graded correct/incorrect it pairs the two
rounds' records by item id and runs the exact McNemar test on the discordant pairs
(``evals/significance.py``, as ``evaltune compare`` does). ``verdict`` is ``better`` or
``worse`` only when the p-value is below ``alpha``; otherwise ``same`` (noise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from evaltune.evals import EvalResult
from evaltune.evals.significance import mcnemar_exact

__all__ = ["RoundComparison", "compare_rounds"]


@dataclass(frozen=True)
class RoundComparison:
    against: int  # the round compared with
    delta: float  # accuracy now − then, over the paired items
    wrong_to_right: int
    right_to_wrong: int
    n: int
    p_value: float
    verdict: str  # better | worse | same

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def compare_rounds(
    now: Mapping[str, EvalResult],
    then: Mapping[str, EvalResult],
    suites: Sequence[str],
    against: int,
    alpha: float,
) -> RoundComparison | None:
    """Paired comparison over ``suites`` (None when no item pairs up)."""
    b = c = n = 0
    for suite in suites:
        if suite not in now or suite not in then:
            continue
        before = {r.id: r.correct for r in then[suite].records}
        for record in now[suite].records:
            if record.id in before:
                n += 1
                b += int(record.correct and not before[record.id])
                c += int(before[record.id] and not record.correct)
    if n == 0:
        return None
    p = mcnemar_exact(b, c)
    verdict = "same" if p >= alpha or b == c else ("better" if b > c else "worse")
    return RoundComparison(against, (b - c) / n, b, c, n, p, verdict)
