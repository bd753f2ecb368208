"""Duplicate removal within a data set, and eval/train overlap removal across two.

Owns what "the same text" means (``normalise_text``: casefold, collapse whitespace, strip
punctuation at the ends) and the reports that say what was dropped and why.

- ``dedupe`` keeps the first of several examples with the same conversation, compared exactly and
  then normalised. The conversation is every turn (system included) with its role, so two records
  that differ only in the system prompt are not duplicates.
- ``remove_overlap`` protects an evaluation from contamination: a *training* example is dropped
  when its prompt (every non-system turn before the answer, normalised) or its id matches an eval
  example. The eval set is never changed, so its scores stay comparable across runs. Ids made up
  by the loader from file name and position (see ``load.default_id``) never match: they say
  nothing about content.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from evaltune.data.example import Example
from evaltune.data.load import default_id

__all__ = ["DedupReport", "Dropped", "OverlapReport", "dedupe", "normalise_text", "remove_overlap"]

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Dropped:
    """One example left out, and the example it was matched against."""

    id: str
    source: str
    reason: str  # dedupe: "exact" | "normalised"; overlap: "prompt" | "id"
    matches: str  # the id of the kept example (dedupe) or of the eval example (overlap)


@dataclass(frozen=True)
class DedupReport:
    total: int
    dropped: list[Dropped] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return len(self.dropped)

    @property
    def kept(self) -> int:
        return self.total - len(self.dropped)

    @property
    def exact(self) -> int:
        return sum(d.reason == "exact" for d in self.dropped)

    @property
    def normalised(self) -> int:
        return sum(d.reason == "normalised" for d in self.dropped)

    def summary(self) -> str:
        return (
            f"kept {self.kept} of {self.total} examples; dropped {self.exact} exact and "
            f"{self.normalised} normalised duplicates"
        )


@dataclass(frozen=True)
class OverlapReport:
    total: int  # training examples checked
    eval_examples: int
    dropped: list[Dropped] = field(default_factory=list)

    @property
    def removed(self) -> int:
        return len(self.dropped)

    @property
    def kept(self) -> int:
        return self.total - len(self.dropped)

    def summary(self) -> str:
        by_prompt = sum(d.reason == "prompt" for d in self.dropped)
        by_id = sum(d.reason == "id" for d in self.dropped)
        return (
            f"dropped {len(self.dropped)} of {self.total} training examples that overlap the "
            f"{self.eval_examples} eval examples ({by_prompt} by prompt, {by_id} by id)"
        )


def normalise_text(text: str) -> str:
    """Casefolded, whitespace collapsed, punctuation stripped at both ends: ``" Paris! "`` → ``paris``."""
    text = _SPACE.sub(" ", text.casefold()).strip()
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def dedupe(examples: Sequence[Example]) -> tuple[list[Example], DedupReport]:
    """The examples without duplicates (first occurrence kept, order preserved), and a report."""
    exact: dict[tuple[tuple[str, str], ...], str] = {}
    loose: dict[tuple[tuple[str, str], ...], str] = {}
    kept: list[Example] = []
    dropped: list[Dropped] = []
    for ex in examples:
        key = tuple((m.role, m.content) for m in ex.messages)
        loose_key = tuple((m.role, normalise_text(m.content)) for m in ex.messages)
        if key in exact:
            dropped.append(Dropped(ex.id, ex.source, "exact", exact[key]))
        elif loose_key in loose:
            dropped.append(Dropped(ex.id, ex.source, "normalised", loose[loose_key]))
        else:
            exact[key] = loose[loose_key] = ex.id
            kept.append(ex)
    return kept, DedupReport(total=len(examples), dropped=dropped)


def remove_overlap(
    train: Sequence[Example], evals: Iterable[Example], *, match_ids: bool = True
) -> tuple[list[Example], OverlapReport]:
    """Training examples that share no prompt (and, with ``match_ids``, no id) with the evals."""
    by_prompt: dict[str, str] = {}
    by_id: set[str] = set()
    count = 0
    for ex in evals:
        count += 1
        if key := _prompt_key(ex):  # a prompt of only punctuation matches nothing
            by_prompt.setdefault(key, ex.id)
        if match_ids and _own_id(ex):
            by_id.add(ex.id)
    kept: list[Example] = []
    dropped: list[Dropped] = []
    for ex in train:
        key = _prompt_key(ex)
        matched = by_prompt.get(key) if key else None
        if matched is not None:
            dropped.append(Dropped(ex.id, ex.source, "prompt", matched))
        elif ex.id in by_id and _own_id(ex):
            dropped.append(Dropped(ex.id, ex.source, "id", ex.id))
        else:
            kept.append(ex)
    return kept, OverlapReport(total=len(train), eval_examples=count, dropped=dropped)


def _prompt_key(ex: Example) -> str:
    return "\n".join(normalise_text(m.content) for m in ex.prompt_messages if m.role != "system")


def _own_id(ex: Example) -> bool:
    """Whether the id came from the record, not from the loader's file-and-position fallback."""
    return not ex.source or ex.id != default_id(ex.source)


def _is_edge(char: str) -> bool:
    """Punctuation (Unicode category P*) or whitespace, which normalisation strips at the ends."""
    return char.isspace() or unicodedata.category(char).startswith("P")
