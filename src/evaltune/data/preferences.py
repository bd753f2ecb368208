"""Preference pairs and feedback: the data of DPO rounds and of feedback-driven rounds.

Two record shapes, in any data file type (``.jsonl``, ``.json``, ``.csv``, ``.parquet``):

- a **pair**: ``{"prompt": …, "chosen": …, "rejected": …}``: the chosen completion is better;
- **scored feedback**: ``{"prompt": …, "response": …, "score": 0.8}``: how good one response
  was (a person's rating, a grader's score), any finite number, higher is better.

A feedback file may hold both. Scored responses become *rewards* (an RL round trains on them
with ``score − mean score of the prompt's responses`` as the advantage) or *pairs* (for each
prompt, its best-scored response against its worst, when they differ). Every problem is
reported at once, with the file, line and field.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaltune.data.load import read_records
from evaltune.errors import DataError

__all__ = [
    "FEEDBACK_FILE",
    "Feedback",
    "Preference",
    "load_feedback",
    "load_preferences",
    "pairs_from_scores",
    "preference_to_record",
]


FEEDBACK_FILE = "feedback.jsonl"  # a run's feedback store, in its folder


@dataclass(frozen=True)
class Preference:
    prompt: str
    chosen: str
    rejected: str
    source: str = ""


@dataclass(frozen=True)
class Feedback:
    prompt: str
    response: str
    score: float
    source: str = ""


def _text(record: dict[str, Any], key: str, where: str, problems: list[str]) -> str | None:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        found = "nothing" if value is None else repr(value)[:60]
        problems.append(f"{where}: field '{key}': expected a non-empty string; found {found}")
        return None
    return value


def _parse(
    records: Iterable[tuple[str, dict[str, Any]]], problems: list[str]
) -> tuple[list[Preference], list[Feedback]]:
    pairs, scored = [], []
    for where, record in records:
        if "chosen" in record or "rejected" in record:
            prompt, chosen, rejected = (
                _text(record, k, where, problems) for k in ("prompt", "chosen", "rejected")
            )
            if prompt and chosen and rejected:
                if chosen == rejected:
                    problems.append(f"{where}: 'chosen' and 'rejected' are the same text")
                else:
                    pairs.append(Preference(prompt, chosen, rejected, where))
        elif "response" in record or "score" in record:
            prompt, response = (_text(record, k, where, problems) for k in ("prompt", "response"))
            score = record.get("score")
            ok = isinstance(score, int | float) and not isinstance(score, bool)
            if not ok or not math.isfinite(float(score)):
                problems.append(
                    f"{where}: field 'score': expected a finite number; found {score!r}"[:200]
                )
            elif prompt and response:
                scored.append(Feedback(prompt, response, float(score), where))
        else:
            problems.append(
                f"{where}: expected a pair (prompt, chosen, rejected) or scored feedback "
                f"(prompt, response, score); found fields {sorted(record)[:8]}"
            )
    return pairs, scored


def _load(paths: Sequence[str | Path]) -> tuple[list[Preference], list[Feedback]]:
    problems: list[str] = []
    records = []
    for path in paths:
        try:
            records += read_records(path)
        except DataError as exc:
            problems.append(str(exc))
    pairs, scored = _parse(records, problems)
    if problems:
        shown = problems[:20]
        more = f"\n… and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise DataError("\n".join(shown) + more)
    return pairs, scored


def load_preferences(paths: Sequence[str | Path]) -> list[Preference]:
    """Every pair of the files; scored feedback in them is turned into pairs too."""
    pairs, scored = _load(paths)
    return pairs + pairs_from_scores(scored)


def load_feedback(paths: Sequence[str | Path]) -> tuple[list[Preference], list[Feedback]]:
    """The pairs and the scored responses of feedback files, as they are."""
    return _load(paths)


def pairs_from_scores(scored: Sequence[Feedback]) -> list[Preference]:
    """Per prompt: its best-scored response against its worst, when their scores differ."""
    by_prompt: dict[str, list[Feedback]] = {}
    for f in scored:
        by_prompt.setdefault(f.prompt, []).append(f)
    out = []
    for prompt, rows in by_prompt.items():
        best = max(rows, key=lambda f: f.score)
        worst = min(rows, key=lambda f: f.score)
        if best.score > worst.score and best.response != worst.response:
            out.append(Preference(prompt, best.response, worst.response, best.source))
    return out


def preference_to_record(p: Preference | Feedback) -> dict[str, Any]:
    if isinstance(p, Preference):
        return {"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}
    return {"prompt": p.prompt, "response": p.response, "score": p.score}
