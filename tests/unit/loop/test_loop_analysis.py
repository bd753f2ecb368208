"""Failure analysis of a round (analysis.py): the error type of a failed sample, and
``analyse_round`` on hand-built ``EvalResult``s: error counts, failure clusters (TF-IDF),
per-tag accuracy with its changes, and the weakest tags. No model."""

from __future__ import annotations

from typing import Any

import pytest

from evaltune.evals import EvalResult, SampleRecord
from evaltune.loop.analysis import ERROR_TYPES, analyse_round, classify_error
from evaltune.loop.decide import SuiteRule

QA = SuiteRule("qa", "accuracy", "target", threshold=0.9)
SAFE = SuiteRule("safe", "accuracy", "guard")


# -- classify_error -------------------------------------------------------------------------
@pytest.mark.parametrize("response", ["", "   ", "\n\t "])
def test_empty(response: str) -> None:
    assert classify_error(response, "Rome", "stop") == "empty"
    assert classify_error(response, "Rome", "length") == "empty"  # first match wins


@pytest.mark.parametrize(
    "response",
    [
        "I'm sorry, but I can't help with that.",
        "I cannot answer this question.",
        "I can't say.",
        "As an AI, I have no opinion on capitals.",
        "i won't do that",
        "I am unable to answer.",
        "Unfortunately I must decline.",
    ],
)
def test_refusal(response: str) -> None:
    assert classify_error(response, "Rome", "stop") == "refusal"
    assert classify_error(response, "Rome", "length") == "refusal"  # before truncated


def test_refusal_with_a_typographic_apostrophe() -> None:
    assert classify_error("I’m sorry, but I can’t help with that.", "Rome", "stop") == "refusal"


def test_words_that_only_look_like_a_refusal() -> None:
    assert classify_error("Gemini can't decide.", "Rome", "stop") == "wrong_answer"
    assert classify_error("The cannon fired.", "Rome", "stop") == "wrong_answer"


def test_truncated_when_sampling_hit_max_tokens() -> None:
    assert classify_error("The capital of Italy is", "Rome", "length") == "truncated"
    # truncated wins over wrong_format: the answer may have been cut mid-way
    assert classify_error("Rome is the capital and", "Rome", "length") == "truncated"
    assert classify_error("The capital of Italy is", "Rome", "stop") == "wrong_answer"


@pytest.mark.parametrize(
    ("response", "target"),
    [
        ("The capital of Italy is Rome.", "Rome"),
        ("rome, of course", "Rome"),
        ("Answer: 42 apples", "42"),
        ("It is Rome", "  ROME! "),
    ],
)
def test_wrong_format_when_the_target_is_inside_a_longer_answer(response: str, target: str) -> None:
    assert classify_error(response, target, "stop") == "wrong_format"
    assert classify_error(response, target, None) == "wrong_format"


@pytest.mark.parametrize(
    ("response", "target"),
    [("Paris", "Rome"), ("The capital is Milan.", "Rome"), ("41", "42"), ("anything", "")],
)
def test_wrong_answer(response: str, target: str) -> None:
    assert classify_error(response, target, "stop") == "wrong_answer"


def test_a_target_inside_another_word_is_a_wrong_answer() -> None:
    assert classify_error("14", "4", "stop") == "wrong_answer"
    assert classify_error("Romeo", "Rome", "stop") == "wrong_answer"


# -- analyse_round ----------------------------------------------------------------------------
def rec(
    i: int,
    prompt: str,
    response: str,
    target: str,
    *tags: str,
    stop: str = "stop",
) -> SampleRecord:
    correct = response == target
    return SampleRecord(
        id=f"q{i}",
        prompt=prompt,
        response=response,
        target=target,
        score=float(correct),
        correct=correct,
        tags=tags,
        stop_reason=stop,
    )


def round_of(k: int, results: dict[str, EvalResult]) -> dict[str, Any]:
    """A round record as the runner writes it: each suite's summary under ``evals``."""
    return {"round": k, "evals": {name: r.summary() for name, r in results.items()}}


def this_round() -> EvalResult:
    records = [
        rec(1, "What is the capital of France?", "Paris", "Paris", "geo"),
        rec(2, "What is the capital of Spain?", "The capital is Madrid.", "Madrid", "geo"),
        rec(3, "What is the capital of Peru?", "", "Lima", "geo"),
        rec(4, "What is the capital of Chile?", "Valparaiso", "Santiago", "geo", "hard"),
        rec(
            5,
            "How many legs does a spider have?",
            "Eight legs, and also",
            "8",
            "bio",
            stop="length",
        ),
        rec(6, "How many legs does a crab have?", "I'm sorry, I cannot count.", "10", "bio"),
        rec(7, "Who wrote Hamlet?", "Shakespeare", "Shakespeare", "lit"),
        rec(8, "Who wrote Faust?", "Schiller", "Goethe", "lit"),
    ]
    return EvalResult.from_records("qa", records)


def baseline() -> EvalResult:
    records = [
        rec(1, "What is the capital of France?", "", "Paris", "geo"),
        rec(5, "How many legs does a spider have?", "8", "8", "bio"),
        rec(7, "Who wrote Hamlet?", "", "Shakespeare", "lit"),
        rec(8, "Who wrote Faust?", "", "Goethe", "lit"),
    ]
    return EvalResult.from_records("qa", records)


def previous() -> EvalResult:
    records = [
        rec(1, "What is the capital of France?", "Paris", "Paris", "geo"),
        rec(2, "What is the capital of Spain?", "", "Madrid", "geo"),
        rec(5, "How many legs does a spider have?", "8", "8", "bio"),
        rec(6, "How many legs does a crab have?", "10", "10", "bio"),
    ]
    return EvalResult.from_records("qa", records)


def analysis(**kw: Any) -> dict[str, Any]:
    rounds = [
        round_of(0, {"qa": baseline()}),
        round_of(1, {"qa": previous()}),
        round_of(2, {"qa": this_round()}),
    ]
    return analyse_round(rounds, [QA], {"qa": this_round()}, similarity="tfidf", **kw)


def test_error_type_counts_and_failures() -> None:
    suite = analysis()["suites"]["qa"]
    assert suite["failures"] == 6
    assert suite["error_types"] == {
        "wrong_answer": 2,  # Valparaiso, Schiller
        "wrong_format": 1,  # "The capital is Madrid."
        "truncated": 1,
        "empty": 1,
        "refusal": 1,
    }
    assert list(suite["error_types"]) == list(ERROR_TYPES)  # zeros included, fixed order


def test_clusters_group_similar_failed_prompts_with_their_tags() -> None:
    suite = analysis()["suites"]["qa"]
    assert suite["similarity"] == "tfidf"
    clusters = suite["clusters"]
    assert [c["size"] for c in clusters] == [3, 2, 1]  # largest first
    geo, bio, lit = clusters
    assert geo["tags"] == {"geo": 3, "hard": 1}
    assert geo["examples"] == [
        "What is the capital of Spain?",
        "What is the capital of Peru?",
        "What is the capital of Chile?",
    ]
    assert bio["tags"] == {"bio": 2}
    assert set(bio["examples"]) == {
        "How many legs does a spider have?",
        "How many legs does a crab have?",
    }
    assert lit == {"size": 1, "tags": {"lit": 1}, "examples": ["Who wrote Faust?"]}
    # a correct answer is never a failure
    shown = {p for c in clusters for p in c["examples"]}
    assert "What is the capital of France?" not in shown and "Who wrote Hamlet?" not in shown


def test_at_most_five_clusters_of_three_examples() -> None:
    prompts = [
        "Who wrote Hamlet?",
        "What is the boiling point of water?",
        "Name a prime number.",
        "Which planet is red?",
        "How do bees make honey?",
        "When did the Roman empire fall?",
        "Translate cat into French.",
    ]
    records = [rec(i, p, "no", "yes", "t") for i, p in enumerate(prompts)]
    records += [
        rec(10 + i, f"What is the capital of {c}?", "x", "y", "geo")
        for i, c in enumerate(["France", "Spain", "Peru", "Chile", "Kenya"])
    ]
    result = EvalResult.from_records("qa", records)
    clusters = analyse_round([round_of(1, {"qa": result})], [QA], {"qa": result}, "tfidf")[
        "suites"
    ]["qa"]["clusters"]
    assert len(clusters) == 5
    assert clusters[0]["size"] == 5 and len(clusters[0]["examples"]) == 3
    assert clusters[0]["tags"] == {"geo": 5}


def test_per_tag_accuracy_and_changes() -> None:
    tags = analysis()["suites"]["qa"]["tags"]
    assert set(tags) == {"bio", "geo", "hard", "lit"}
    # geo: 1/4 now, 1/2 before, 0/1 at baseline
    assert tags["geo"] == {"accuracy": 0.25, "vs_previous": -0.25, "vs_baseline": 0.25}
    # bio: 0/2 now, 2/2 before, 1/1 at baseline
    assert tags["bio"] == {"accuracy": 0.0, "vs_previous": -1.0, "vs_baseline": -1.0}
    # lit: 1/2 now, not measured before, 0/2 at baseline
    assert tags["lit"] == {"accuracy": 0.5, "vs_previous": None, "vs_baseline": 0.5}
    assert tags["hard"] == {"accuracy": 0.0, "vs_previous": None, "vs_baseline": None}


def test_weakest_tags_lowest_accuracy_first() -> None:
    out = analysis()
    assert out["round"] == 2
    assert out["suites"]["qa"]["weakest_tags"] == ["bio", "hard", "geo"]  # ties by name


def test_a_suite_without_failures() -> None:
    records = [rec(1, "Who wrote Hamlet?", "Shakespeare", "Shakespeare", "lit")]
    result = EvalResult.from_records("qa", records)
    suite = analyse_round([round_of(1, {"qa": result})], [QA], {"qa": result}, "tfidf")["suites"][
        "qa"
    ]
    assert suite["failures"] == 0
    assert suite["error_types"] == dict.fromkeys(ERROR_TYPES, 0)
    assert "clusters" not in suite and "similarity" not in suite


def test_error_analysis_only_for_suites_with_results() -> None:
    safe = EvalResult.from_records("safe", [rec(1, "Say hi.", "", "hi", "tone")])
    rounds = [round_of(1, {"qa": this_round(), "safe": safe})]
    out = analyse_round(rounds, [QA, SAFE], {"safe": safe}, "tfidf")
    assert "failures" not in out["suites"]["qa"]  # no records given for it
    assert out["suites"]["qa"]["weakest_tags"] == ["bio", "hard", "geo"]  # tags still analysed
    assert out["suites"]["safe"]["failures"] == 1
    assert out["suites"]["safe"]["error_types"]["empty"] == 1
    assert out["suites"]["safe"]["clusters"] == [
        {"size": 1, "tags": {"tone": 1}, "examples": ["Say hi."]}
    ]
