"""Graders: score one sampled response against its reference answer.

A grader is any callable ``(response, target, example) -> GradeResult``; ``GRADERS`` maps the
names of the string graders defined here to factories. The whole catalogue (these, F1, the
benchmark scorers, judge, Python function, tutoring, safety, tool calls) and ``make_grader``,
which builds any of them by name with its options, are ``evals.registry``'s. Graders know nothing
of models or sampling, and each explains its score in ``detail`` so a failure can be read
without re-running anything; ``metrics`` carries per-sample numbers a suite aggregates.

Every grader scores an empty (or all-whitespace) response 0 with detail ``"empty response"``.

Text normalisation (``normalize_text``), used by ``normalized``, ``contains``, ``regex`` and
``choice``, is exactly: Unicode NFKC; casefold; every run of whitespace becomes one space; then,
repeated until nothing changes, strip surrounding whitespace, strip the quote, bracket and
emphasis characters ``" ' ` “ ” ‘ ’ « » ( ) [ ] { } *`` from both ends, and strip ``. , ; : ! ?``
from the end only (so ``-3`` and ``.5`` keep their leading character). Articles are kept.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from evaltune.data.example import Example
from evaltune.errors import EvalError

__all__ = [
    "GRADERS",
    "GradeResult",
    "Grader",
    "extract_choice",
    "extract_numbers",
    "normalize_text",
]

EMPTY = "empty response"


@dataclass(frozen=True)
class GradeResult:
    score: float  # in [0, 1]
    detail: str  # why: what was compared, or what could not be found
    metrics: dict[str, float] = field(default_factory=dict)  # per-sample, e.g. refusal_rate 0/1
    correct: bool | None = None  # None: full credit (score 1) is correct; a judge sets a pass mark


class Grader(Protocol):
    def __call__(self, response: str, target: str, example: Example) -> GradeResult: ...


# -- normalisation --------------------------------------------------------------------------
_EDGES = " \"'`“”‘’«»()[]{}*"
_TRAILING = ".,;:!?"
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Canonical form for lenient comparison; the module docstring gives the exact rules."""
    out = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    previous = None
    while out != previous:
        previous = out
        out = out.strip(_EDGES).rstrip(_TRAILING)
    return out


def _is_empty(response: str) -> bool:
    return not response.strip()


# -- exact, normalized, contains ------------------------------------------------------------
@dataclass(frozen=True)
class ExactGrader:
    """String equality after stripping surrounding whitespace; nothing else is forgiven."""

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        if _is_empty(response):
            return GradeResult(0.0, EMPTY)
        ok = response.strip() == target.strip()
        return GradeResult(float(ok), "exact match" if ok else f"expected {target.strip()!r}")


@dataclass(frozen=True)
class NormalizedGrader:
    """Equality of ``normalize_text`` forms: case, spacing, quotes and final stops forgiven."""

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        if _is_empty(response):
            return GradeResult(0.0, EMPTY)
        got, want = normalize_text(response), normalize_text(target)
        ok = got == want
        return GradeResult(float(ok), "normalized match" if ok else f"{got!r} != {want!r}")


@dataclass(frozen=True)
class ContainsGrader:
    """The normalised target appears somewhere in the normalised response."""

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        if _is_empty(response):
            return GradeResult(0.0, EMPTY)
        want = normalize_text(target)
        if not want:
            return GradeResult(0.0, "empty target")
        ok = want in normalize_text(response)
        return GradeResult(float(ok), f"contains {want!r}" if ok else f"{want!r} not found")


# -- numeric --------------------------------------------------------------------------------
# A sign counts only when it does not follow a word character, so "5-3" reads as 5 and 3.
_NUMBER = re.compile(
    r"(?P<sign>(?<![\w.])[-+−])?"
    r"(?:(?P<num>\d+)\s*/\s*(?P<den>\d+)"  # simple fraction 3/4
    r"|(?P<val>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?P<exp>[eE][-+]?\d+)?)"
    r"(?P<pct>\s*%)?"
)


def extract_numbers(text: str) -> list[tuple[float, bool]]:
    """Every number in ``text`` in order, as ``(value, is_percent)``.

    Understands thousands commas (``1,234.5``; a comma not followed by three digits separates
    numbers), signs (``-3``, ``+3``, ``−3``), decimals, exponents, simple fractions (``3/4``;
    ``x/0`` is skipped) and a trailing ``%``. Currency symbols and units around it are ignored.
    """
    found: list[tuple[float, bool]] = []
    for m in _NUMBER.finditer(text):
        if m["den"] is not None:
            if int(m["den"]) == 0:
                continue
            value = int(m["num"]) / int(m["den"])
        else:
            value = float(m["val"].replace(",", "") + (m["exp"] or ""))
        if m["sign"] in ("-", "−"):
            value = -value
        found.append((value, m["pct"] is not None))
    return found


def _readings(number: tuple[float, bool]) -> tuple[float, ...]:
    # "50%" may be meant as 50 or as 0.5; the other side's phrasing decides, so try both.
    value, percent = number
    return (value, value / 100) if percent else (value,)


@dataclass(frozen=True)
class NumericGrader:
    """The LAST number in the response equals the last number in the target, within tolerance.

    A percentage on either side also matches its fraction (``50%`` = ``0.5`` = ``50``).
    """

    rel_tol: float = 1e-6
    abs_tol: float = 1e-9

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        if _is_empty(response):
            return GradeResult(0.0, EMPTY)
        wanted = extract_numbers(target)
        if not wanted:
            return GradeResult(0.0, f"no number in target {target!r}")
        got = extract_numbers(response)
        if not got:
            return GradeResult(0.0, "no number in response")
        ok = any(
            math.isclose(a, b, rel_tol=self.rel_tol, abs_tol=self.abs_tol)
            for a in _readings(got[-1])
            for b in _readings(wanted[-1])
        )
        return GradeResult(float(ok), f"{got[-1][0]:g} vs {wanted[-1][0]:g}")


# -- regex ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegexGrader:
    """``re.search(pattern, response)``; with a named group ``answer``, that group must equal
    the target after ``normalize_text``; without one, any match passes and the target is unused.
    """

    pattern: re.Pattern[str]

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        if _is_empty(response):
            return GradeResult(0.0, EMPTY)
        m = self.pattern.search(response)
        if m is None:
            return GradeResult(0.0, f"no match for /{self.pattern.pattern}/")
        if "answer" not in self.pattern.groupindex:
            return GradeResult(1.0, f"matched {m.group(0)!r}")
        got, want = normalize_text(m["answer"] or ""), normalize_text(target)
        ok = got == want
        return GradeResult(float(ok), f"answer {got!r}" + ("" if ok else f" != {want!r}"))


def _regex(pattern: str, ignore_case: bool = False) -> RegexGrader:
    try:
        return RegexGrader(re.compile(pattern, re.IGNORECASE if ignore_case else 0))
    except re.error as exc:
        raise EvalError(f"grader 'regex': invalid pattern {pattern!r}: {exc}") from None


# -- choice ---------------------------------------------------------------------------------
LETTERS = "ABCDEFGHIJ"
# Tried in order; the first that matches wins. Lowercase letters only where the shape makes a
# letter unambiguous (alone, bracketed, or after "answer"), never as a bare word ("a dog").
_CHOICE_PATTERNS = [
    re.compile(r"^\W*([A-Ja-j])\W*$"),  # B  (B)  B)  b.  [B]
    re.compile(
        r"(?i:answer)\s*(?:is\s*)?:?\s*(?:(?i:option|choice)\s*)?"
        r"(?:\(([A-Ja-j])\)|([A-J])\b|([a-j])(?=[.)]?\s*$))"
    ),
    re.compile(r"^\s*\(?([A-Ja-j])[).:]\s"),  # B) Paris   (B) Paris   B. Paris
    re.compile(r"\(([A-Ja-j])\)"),  # ... so (B) it is
]
_STANDALONE = re.compile(r"\b([A-J])\b")


def _choice_texts(example: Example) -> dict[str, str]:
    """``metadata["choices"]`` as letter → normalised text: a list (A, B, ... in order) or a
    mapping from letter to text."""
    choices = example.metadata.get("choices")
    if isinstance(choices, Mapping):
        return {str(k).strip().upper(): normalize_text(str(v)) for k, v in choices.items()}
    if isinstance(choices, Sequence) and not isinstance(choices, str):
        return {LETTERS[i]: normalize_text(str(v)) for i, v in enumerate(choices[: len(LETTERS)])}
    return {}


def extract_choice(text: str, choices: Mapping[str, str] | None = None) -> str | None:
    """The choice letter a response picks, or ``None``: a letter pattern, else the text of one
    of ``choices`` (letter → normalised text), else the only standalone capital A–J in it."""
    for pattern in _CHOICE_PATTERNS:
        m = pattern.search(text)
        if m:
            return str(m.group(m.lastindex or 1)).upper()
    if choices:
        norm = normalize_text(text)
        for letter, choice in choices.items():
            if choice and norm == choice:
                return letter
    standalone = set(_STANDALONE.findall(text))
    return standalone.pop() if len(standalone) == 1 else None


@dataclass(frozen=True)
class ChoiceGrader:
    """Multiple choice: the letter (A–J) the response picks equals the target's letter. The
    target may be a letter in any accepted shape or, with ``metadata["choices"]``, a choice text.
    """

    def __call__(self, response: str, target: str, example: Example) -> GradeResult:
        if _is_empty(response):
            return GradeResult(0.0, EMPTY)
        choices = _choice_texts(example)
        want = extract_choice(target, choices)
        if want is None:
            return GradeResult(0.0, f"target {target!r} is not a choice letter")
        got = extract_choice(response, choices)
        if got is None:
            return GradeResult(0.0, f"no choice found; expected {want}")
        return GradeResult(float(got == want), f"chose {got}, expected {want}")


# -- registry -------------------------------------------------------------------------------
GRADERS: dict[str, Callable[..., Grader]] = {
    "exact": ExactGrader,
    "normalized": NormalizedGrader,
    "numeric": NumericGrader,
    "contains": ContainsGrader,
    "regex": _regex,
    "choice": ChoiceGrader,
}
