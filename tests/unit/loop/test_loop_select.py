"""Choosing pool examples (select.py): the contamination guard, tag weakness, targeted selection
(by weak tag and by similarity to failed prompts) and random selection. TF-IDF similarity except
in the one test of the embedding model (all-MiniLM-L6-v2, installed offline)."""

from __future__ import annotations

import pytest

from evaltune.data import Example
from evaltune.loop.select import (
    Selection,
    clean_pool,
    select_random,
    select_targeted,
    tag_weakness,
)


def ex(id: str, prompt: str, *tags: str, answer: str = "x") -> Example:
    return Example.single_turn(id, prompt, answer, tags=tags)


def ids(selection: Selection | list[Example]) -> list[str]:
    chosen = selection.chosen if isinstance(selection, Selection) else selection
    return [e.id for e in chosen]


# -- clean_pool -----------------------------------------------------------------------------
EVALS = [
    ex("e1", "What is the capital of France?", "geo"),
    ex("e2", "What is 12 plus 12?", "math"),
]


def test_clean_pool_drops_an_eval_id_with_another_prompt() -> None:
    pool = [ex("p1", "Name a red fruit."), ex("e2", "A different question entirely.")]
    kept, dropped = clean_pool(pool, EVALS)
    assert ids(kept) == ["p1"]
    assert dropped == ["e2"]


@pytest.mark.parametrize(
    "prompt",
    [
        "What is the capital of France?",  # verbatim
        "what is the CAPITAL of france?",  # case
        "  What   is the capital\tof\nFrance?  ",  # whitespace
        "What is the capital of France",  # punctuation at the end
        "¿What is the capital of France?!",  # at both ends
    ],
    ids=["same", "case", "whitespace", "no-question-mark", "edge-punctuation"],
)
def test_clean_pool_drops_a_normalised_eval_prompt_under_any_id(prompt: str) -> None:
    pool = [ex("p1", "Name a red fruit."), ex("pool-77", prompt, "geo"), ex("p3", "Hi!")]
    kept, dropped = clean_pool(pool, EVALS)
    assert ids(kept) == ["p1", "p3"]
    assert dropped == ["pool-77"]


def test_clean_pool_keeps_near_misses_and_order() -> None:
    pool = [
        ex("a", "What is the capital of Spain?"),
        ex("b", "What is 12 plus 12 plus 1?"),  # contains an eval prompt, is not one
        ex("c", "What is 21 plus 21?"),
        ex("d", "Name a red fruit."),
    ]
    kept, dropped = clean_pool(pool, EVALS)
    assert ids(kept) == ["a", "b", "c", "d"]
    assert dropped == []


def test_clean_pool_reports_every_dropped_id_in_pool_order() -> None:
    pool = [
        ex("x9", "WHAT IS 12 PLUS 12"),
        ex("k", "Name a red fruit."),
        ex("e1", "Unrelated."),
        ex("x3", "what is the capital of france?"),
    ]
    kept, dropped = clean_pool(pool, EVALS)
    assert ids(kept) == ["k"]
    assert dropped == ["x9", "e1", "x3"]


def test_clean_pool_without_evals_or_pool() -> None:
    pool = [ex("a", "What is 12 plus 12?")]
    assert clean_pool(pool, []) == (pool, [])
    assert clean_pool([], EVALS) == ([], [])


# -- tag_weakness ---------------------------------------------------------------------------
def test_tag_weakness_is_one_minus_accuracy_averaged_over_suites() -> None:
    weakness = tag_weakness({"qa": {"geo": 0.25, "math": 1.0}, "extra": {"geo": 0.75, "art": 0.0}})
    assert weakness == pytest.approx({"geo": 0.5, "math": 0.0, "art": 1.0})


def test_tag_weakness_of_nothing() -> None:
    assert tag_weakness({}) == {}
    assert tag_weakness({"qa": {}}) == {}


# -- select_targeted --------------------------------------------------------------------------
FAILED = ["What is the capital of France?", "What is the capital of Italy?"]
WEAKNESS = {"geo": 0.8, "math": 0.1, "art": 1.0}
POOL = [
    ex("math-1", "What is 7 plus 8?", "math"),
    ex("geo-1", "What is the capital of Spain?", "geo"),
    ex("art-1", "Who painted the Mona Lisa?", "art"),
    ex("misc-1", "Name a red fruit.", "misc"),
    ex("geo-2", "Which river flows through Paris?", "geo"),
    ex("math-2", "What is 9 plus 4?", "math"),
    ex("art-2", "Who sculpted David?", "art"),
    ex("geo-3", "What is the capital of Portugal?", "geo"),
]


def targeted(
    pool: list[Example] = POOL,
    failed: list[str] = FAILED,
    weakness: dict[str, float] = WEAKNESS,
    budget: int = 3,
    **kw: object,
) -> Selection:
    return select_targeted(pool, failed, weakness, budget, similarity="tfidf", **kw)


def test_targeted_prefers_weak_tags_similar_to_the_failures() -> None:
    sel = targeted()
    assert sel.strategy == "targeted" and sel.method == "tfidf"
    # geo is weak and its capital questions resemble the failures; art is weaker but unlike them
    assert ids(sel) == ["geo-1", "geo-3", "art-1"]  # Spain and Portugal tie: pool order
    assert list(sel.scores) == ids(sel)
    scores = [sel.scores[i] for i in ids(sel)]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_targeted_respects_the_budget() -> None:
    for budget in (1, 2, 5):
        assert len(targeted(budget=budget).chosen) == budget
    assert ids(targeted(budget=1)) == ids(targeted(budget=5))[:1]
    assert sorted(ids(targeted(budget=100))) == sorted(ids(POOL))  # the whole pool at most
    assert targeted(budget=0).chosen == []


def test_targeted_is_deterministic() -> None:
    first = targeted(budget=5)
    again = targeted(budget=5)
    assert ids(first) == ids(again)
    assert first.scores == again.scores


def test_tag_weight_one_ranks_by_weakness_alone() -> None:
    sel = targeted(budget=8, tag_weight=1.0)
    # art (1.0) > geo (0.8) > math (0.1) > misc (unmeasured: 0); pool order within a tag
    assert ids(sel) == ["art-1", "art-2", "geo-1", "geo-2", "geo-3", "math-1", "math-2", "misc-1"]
    assert sel.scores["art-1"] == pytest.approx(1.0)
    assert sel.scores["geo-3"] == pytest.approx(0.8)
    assert sel.scores["misc-1"] == 0.0


def test_tag_weight_zero_ranks_by_similarity_alone() -> None:
    sel = targeted(budget=2, tag_weight=0.0)
    assert set(ids(sel)) == {"geo-1", "geo-3"}  # the capital questions, whatever their tag
    weak_only = targeted(budget=2, tag_weight=1.0)
    assert set(ids(weak_only)) == {"art-1", "art-2"}


def test_score_is_the_documented_mix() -> None:
    # A pool prompt identical to a failed one has similarity 1: score = w × weakness + (1 - w).
    pool = [ex("copy", FAILED[0], "geo"), ex("other", "Name a red fruit.", "misc")]
    for weight in (0.0, 0.3, 0.5, 1.0):
        sel = targeted(pool, budget=1, tag_weight=weight)
        assert ids(sel) == ["copy"]
        assert sel.scores["copy"] == pytest.approx(weight * 0.8 + (1 - weight) * 1.0, abs=1e-5)


def test_the_weakest_of_an_items_tags_counts() -> None:
    pool = [ex("both", "Name a red fruit.", "math", "art"), ex("geo", "Name a blue fruit.", "geo")]
    sel = targeted(pool, failed=[], budget=2, tag_weight=1.0)
    assert ids(sel) == ["both", "geo"]
    assert sel.scores == pytest.approx({"both": 1.0, "geo": 0.8})


def test_targeted_without_failures_ranks_by_tag_and_pool_order() -> None:
    sel = targeted(failed=[], budget=4)
    assert ids(sel) == ["art-1", "art-2", "geo-1", "geo-2"]
    assert sel.scores["art-1"] == pytest.approx(0.5)  # half weight, no similarity
    assert sel.method == ""  # nothing was compared
    # no weakness either: every score 0, the pool order decides
    flat = targeted(failed=[], weakness={}, budget=3)
    assert ids(flat) == ["math-1", "geo-1", "art-1"]
    assert set(flat.scores.values()) == {0.0}


def test_targeted_on_an_empty_pool() -> None:
    sel = targeted(pool=[])
    assert (sel.strategy, sel.chosen, sel.scores) == ("targeted", [], {})
    assert sel.describe() == []


def test_describe_lists_what_the_report_shows() -> None:
    sel = targeted(budget=1)
    (item,) = sel.describe()
    assert item == {
        "id": "geo-1",
        "tags": ["geo"],
        "prompt": "What is the capital of Spain?",
        "score": round(sel.scores["geo-1"], 4),
    }


def test_embedding_similarity_matches_meaning_not_words() -> None:
    """A paraphrase that shares no word with the failures: TF-IDF sees nothing in it (and
    prefers an unrelated prompt that shares "the"); the sentence embedding sees a capital."""
    pool = [
        ex("painter", "Who painted the Mona Lisa?", "art"),
        ex("berlin", "Which city hosts Germany's parliament?", "geo"),
        ex("spider", "How many legs does a spider have?", "bio"),
    ]
    by_words = select_targeted(pool, FAILED, {}, 1, tag_weight=0.0, similarity="tfidf")
    by_meaning = select_targeted(pool, FAILED, {}, 1, tag_weight=0.0, similarity="embedding")
    assert ids(by_words) == ["painter"]
    assert by_meaning.method == "embedding"
    assert ids(by_meaning) == ["berlin"]
    again = select_targeted(pool, FAILED, {}, 3, tag_weight=0.0, similarity="embedding")
    assert ids(again)[0] == "berlin" and ids(again)[-1] == "spider"
    assert again.scores["berlin"] == pytest.approx(by_meaning.scores["berlin"], abs=1e-6)


# -- select_random ----------------------------------------------------------------------------
BIG_POOL = [ex(f"p{i}", f"Question number {i}?", "t") for i in range(30)]


def test_random_is_seed_deterministic() -> None:
    assert ids(select_random(BIG_POOL, 5, seed=1)) == ids(select_random(BIG_POOL, 5, seed=1))
    draws = {tuple(ids(select_random(BIG_POOL, 5, seed=s))) for s in range(5)}
    assert len(draws) > 1  # the seed matters


def test_random_is_the_budget_in_size_without_repeats() -> None:
    sel = select_random(BIG_POOL, 7, seed=0)
    assert sel.strategy == "random"
    assert len(ids(sel)) == 7 == len(set(ids(sel)))
    assert set(ids(sel)) <= set(ids(BIG_POOL))
    assert sel.method == "" and sel.scores == {}


def test_random_takes_the_whole_pool_when_the_budget_is_larger() -> None:
    small = BIG_POOL[:4]
    assert sorted(ids(select_random(small, 10, seed=3))) == sorted(ids(small))
    assert select_random([], 5, seed=0).chosen == []
    assert select_random(BIG_POOL, 0, seed=0).chosen == []


def test_random_does_not_follow_the_targeted_ranking() -> None:
    # Over seeds, random draws reach items that targeted selection ranks last.
    last = ids(targeted(budget=len(POOL)))[-3:]
    seen = {i for s in range(20) for i in ids(select_random(POOL, 3, seed=s))}
    assert seen & set(last)
