"""Duplicates within a data set, and training examples that overlap an eval set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaltune.data import Dropped, Example, dedupe, load_examples, normalise_text, remove_overlap


def ex(id: str, prompt: str, completion: str, system: str | None = None) -> Example:
    return Example.single_turn(id, prompt, completion, system=system)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  What is   the Capital\nof France? ", "what is the capital of france"),
        ("«Paris!»", "paris"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower
        ("e.g. 3.5", "e.g. 3.5"),  # punctuation inside is kept
        ("?!", ""),
    ],
)
def test_normalise_text(text: str, expected: str) -> None:
    assert normalise_text(text) == expected


def test_exact_and_normalised_duplicates() -> None:
    examples = [
        ex("a", "What is 2+2?", "4"),
        ex("b", "What is 2+2?", "4"),  # exact copy of a
        ex("c", "what is  2+2", "4."),  # same after normalising
        ex("d", "What is 2+2?", "5"),  # a different answer: not a duplicate
        ex("e", "What is 2+2?", "4", system="Be terse."),  # a different system prompt
    ]
    kept, report = dedupe(examples)
    assert [e.id for e in kept] == ["a", "d", "e"]
    assert report.dropped == [
        Dropped("b", "", "exact", "a"),
        Dropped("c", "", "normalised", "a"),
    ]
    assert (report.total, report.kept, report.removed, report.exact, report.normalised) == (
        5,
        3,
        2,
        1,
        1,
    )
    assert report.summary() == "kept 3 of 5 examples; dropped 1 exact and 1 normalised duplicates"


def test_multi_turn_duplicates_compare_every_turn(fixtures: Path) -> None:
    chat = load_examples(fixtures / "shapes.jsonl")[-1]
    shorter = Example(chat.id + "-short", chat.messages[-3:], source="x:1")
    kept, report = dedupe([chat, chat, shorter])
    assert kept == [chat, shorter]
    assert report.exact == 1


def test_overlap_drops_training_copies_of_eval_prompts() -> None:
    train = [
        ex("t1", "What is the capital of France?", "Paris"),
        ex("t2", "  what is the capital of FRANCE ", "It is Paris."),  # same prompt, normalised
        ex("t3", "What is the capital of Spain?", "Madrid"),
        ex("q9", "Something unrelated", "x"),  # shares an id with an eval item
    ]
    evals = [ex("q1", "What is the capital of France?", "Paris"), ex("q9", "Name a colour", "red")]
    kept, report = remove_overlap(train, evals)
    assert [e.id for e in kept] == ["t3"]
    assert report.dropped == [
        Dropped("t1", "", "prompt", "q1"),
        Dropped("t2", "", "prompt", "q1"),
        Dropped("q9", "", "id", "q9"),
    ]
    assert report.summary() == (
        "dropped 3 of 4 training examples that overlap the 2 eval examples (2 by prompt, 1 by id)"
    )
    kept, report = remove_overlap(train, evals, match_ids=False)
    assert [e.id for e in kept] == ["t3", "q9"]


def test_overlap_ignores_system_prompt_and_generated_ids(tmp_path: Path) -> None:
    # Two files called data.jsonl: their generated ids ("data.jsonl:1") coincide but mean nothing.
    (tmp_path / "train").mkdir()
    (tmp_path / "eval").mkdir()
    (tmp_path / "train" / "data.jsonl").write_text(
        json.dumps({"question": "Name a bird.", "answer": "Robin"})
        + "\n"
        + json.dumps({"question": "Name a fish", "answer": "Cod", "system": "Be brief."})
        + "\n"
    )
    (tmp_path / "eval" / "data.jsonl").write_text(
        json.dumps({"question": "Name a tree.", "answer": "Oak"})
        + "\n"
        + json.dumps({"question": "name a FISH?", "answer": "Trout"})
        + "\n"
    )
    train = load_examples(tmp_path / "train" / "data.jsonl")
    evals = load_examples(tmp_path / "eval" / "data.jsonl")
    assert train[0].id == evals[0].id == "data.jsonl:1"
    kept, report = remove_overlap(train, evals)
    assert [e.prompt for e in kept] == ["Name a bird."]
    assert [(d.reason, d.matches) for d in report.dropped] == [("prompt", "data.jsonl:2")]


def test_overlap_leaves_the_eval_set_alone() -> None:
    evals = [ex("q1", "?", "a")]  # a prompt of only punctuation matches nothing
    train = [ex("t1", "!", "b")]
    kept, report = remove_overlap(train, evals)
    assert kept == train
    assert report.dropped == [] and (report.kept, report.removed) == (1, 0)
