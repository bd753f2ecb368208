"""Token-overlap F1, as SQuAD scores extractive answers: partial credit for a partly right answer.

Both sides are normalised the SQuAD way (lower case, punctuation removed, the articles
``a an the`` removed, whitespace collapsed) and split on spaces; precision and recall count
the shared tokens as a multiset. The score is F1 in [0, 1]; a sample is *correct* only at 1.0
(every token matched), so a suite's ``accuracy`` is SQuAD's exact match and ``mean_score`` its F1.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from dataclasses import dataclass

from evaltune.data.example import Example
from evaltune.evals.graders import EMPTY, GradeResult

__all__ = ["F1Grader", "squad_tokens", "token_f1"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | {"“", "”", "‘", "’", "«", "»", "—", "–"}


def squad_tokens(text: str) -> list[str]:
    """SQuAD's ``normalize_answer`` followed by a split on whitespace."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    return _ARTICLES.sub(" ", text).split()


def token_f1(response: str, target: str) -> float:
    got, want = squad_tokens(response), squad_tokens(target)
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class F1Grader:
    """SQuAD token F1 between the response and the target (partial credit)."""

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        if not response.strip():
            return GradeResult(0.0, EMPTY)
        f1 = token_f1(response, target)
        return GradeResult(f1, f"token F1 {f1:.3f} against {' '.join(squad_tokens(target))!r}")
