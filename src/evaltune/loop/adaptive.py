"""The ``adaptive`` selection strategy: what the next round trains on.

A round's data is its *new* examples plus *replay* of earlier ones:

1. the bandit (``loop/allocate.py``) turns the evidence into a status and a learning rate per
   tag, funds the tags that can still gain (successive elimination) and splits the budget (a
   ceiling) among them by what their next example is worth;
2. within a tag, the unused pool examples closest to the tag's failed eval prompts come first;
   a tag with budget but an empty pool asks the synthesiser, when one is configured;
3. replay protects what was learned: ``replay × new`` earlier examples (at least enough for
   ``min_examples`` in all), tags that regressed first, then learned (ceiling) and responsive
   ones, stalled ones last (a stalled tag gets no new examples, but what it was taught is not
   dropped: a slow learner keeps its chance, and nothing is forgotten on purpose); every
   example of a responsive tag whose own examples are not fitted yet comes on top;
4. with nothing new to add, the round replays everything, so the caller can decide whether
   more passes over old data are worth it.

Pool examples whose tags no target suite measures are never chosen: they cannot move a target.
An *untagged* pool example joins the tag of the eval prompt it is closest to, when it is close
enough (cosine ≥ ``INFER_SIMILARITY`` with embeddings, ``INFER_SIMILARITY_TFIDF`` with TF-IDF);
when the target suites carry no tags at all, every example belongs to the one tag ``ALL``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from evaltune.data import Example
from evaltune.loop.allocate import ALL, TagState, allocate_budget, tag_states, with_pending
from evaltune.loop.analysis import text_vectors

__all__ = ["RoundData", "plan_round_data", "tag_train_loss", "trained_by_round"]

Synthesise = Callable[[str, int, list[Example]], list[Example]]
_REPLAY_ORDER = {"ceiling": 1, "responsive": 2, "trying": 3, "untried": 3}
INFER_SIMILARITY = 0.6
INFER_SIMILARITY_TFIDF = 0.3


def tags_of(
    key: str, examples: Mapping[str, Example], known: Mapping[str, Any], inferred: Mapping[str, str]
) -> list[str]:
    """The example's tags that ``known`` has; ``ALL`` when that is the only tag; else the tag
    inferred for it by similarity (untagged examples only)."""
    if ALL in known:
        return [ALL]
    ex = examples[key]
    mine = [t for t in dict.fromkeys(ex.tags) if t in known]
    if not mine and not ex.tags and key in inferred:
        return [inferred[key]]
    return mine


def infer_tags(
    untagged: Mapping[str, Example],
    eval_prompts: Mapping[str, Sequence[str]],
    similarity: str,
) -> dict[str, str]:
    """``{key: tag}`` for untagged examples close enough to one of a tag's eval prompts."""
    pairs = [(t, p) for t, ps in eval_prompts.items() for p in ps]
    if not untagged or not pairs:
        return {}
    keys = list(untagged)
    texts = [untagged[k].prompt for k in keys] + [p for _, p in pairs]
    vectors, method = text_vectors(texts, similarity)
    sims = vectors[: len(keys)] @ vectors[len(keys) :].T
    floor = INFER_SIMILARITY if method == "embedding" else INFER_SIMILARITY_TFIDF
    out = {}
    for i, key in enumerate(keys):
        j = int(sims[i].argmax())
        if float(sims[i, j]) >= floor:
            out[key] = pairs[j][0]
    return out


@dataclass
class RoundData:
    new: list[str] = field(default_factory=list)  # example keys trained for the first time
    replay: list[str] = field(default_factory=list)
    by_tag: dict[str, int] = field(default_factory=dict)  # new examples per target tag
    quotas: dict[str, int] = field(default_factory=dict)
    closeness: dict[str, float] = field(default_factory=dict)  # new pool key -> to failures
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    generated: list[Example] = field(default_factory=list)
    synthesis: dict[str, Any] | None = None  # what a synthesiser made, rejected, failed on
    inferred: dict[str, str] = field(default_factory=dict)  # untagged new key -> its tag

    def to_json(self) -> dict[str, Any]:
        return {
            "new": self.new,
            "replay": self.replay,
            "by_tag": self.by_tag,
            "quotas": self.quotas,
            "states": self.states,
            "generated": [e.id for e in self.generated],
            "inferred": self.inferred,
        }


def trained_by_round(rounds: Sequence[dict[str, Any]]) -> dict[int, dict[str, int]]:
    """``{round: {tag: new examples}}`` from the round records' ``data`` entries."""
    return {
        int(r["round"]): dict(r["data"].get("by_tag", {}))
        for r in rounds
        if r.get("data") and r["round"] > 0
    }


def _by_tag(
    keys: Sequence[str],
    examples: Mapping[str, Example],
    tags: Mapping[str, Any],
    inferred: Mapping[str, str],
) -> dict[str, list[str]]:
    """``{tag: keys}``: each key under the tags ``tags_of`` gives it, in ``keys``' order."""
    out: dict[str, list[str]] = {}
    for key in keys:
        for tag in tags_of(key, examples, tags, inferred):
            out.setdefault(tag, []).append(key)
    return out


def tag_train_loss(
    keys: Sequence[str],
    losses: Mapping[int, float],
    examples: Mapping[str, Example],
    tags: Mapping[str, Any],
    inferred: Mapping[str, str],
) -> dict[str, float]:
    """``{tag: mean training loss}`` of a round's examples (``losses``: datum index → its last
    loss; ``keys[i]`` is datum ``i``): how well each target tag's own examples are fitted,
    with the tags counted as ``by_tag`` counts them (``tags``: the round's tag states)."""
    loss_of = {keys[i]: loss for i, loss in losses.items()}
    groups = _by_tag(list(loss_of), examples, tags, inferred)
    return {t: sum(loss_of[k] for k in ks) / len(ks) for t, ks in sorted(groups.items())}


def _count_tags(
    keys: Sequence[str],
    examples: Mapping[str, Example],
    tags: Mapping[str, Any],
    inferred: Mapping[str, str],
) -> dict[str, int]:
    return {t: len(ks) for t, ks in _by_tag(keys, examples, tags, inferred).items()}


def _rank_in_tag(
    candidates: list[tuple[str, Example]], failed: Sequence[str], similarity: str
) -> list[tuple[str, float]]:
    """The candidates' keys, closest to the tag's failed prompts first, with that closeness
    (the highest cosine similarity to any of them; 0 when nothing failed)."""
    if not failed or not candidates:
        return [(key, 0.0) for key, _ in candidates]
    vectors, _ = text_vectors([e.prompt for _, e in candidates] + list(failed), similarity)
    pool, fails = vectors[: len(candidates)], vectors[len(candidates) :]
    closeness = [float(c) for c in (pool @ fails.T).max(axis=1)]
    order = sorted(range(len(candidates)), key=lambda i: (-closeness[i], i))
    return [(candidates[i][0], closeness[i]) for i in order]


def _replay(
    trained: Sequence[str],
    examples: Mapping[str, Example],
    states: Mapping[str, TagState],
    n: int | None,
    seed: int,
    inferred: Mapping[str, str],
) -> list[str]:
    """``n`` earlier examples (all when ``n`` is None), by priority, plus every example of an
    under-fitted responsive tag on top: it is learning and its examples need more passes, but
    they must not crowd out the replay that keeps learned tags learned. (An under-fitted tag
    that has not moved gets no extra passes: it may be one the model cannot learn.)"""

    def priority(tags: list[TagState]) -> int:
        if not tags:
            return 4  # a tag no target measures (seed data): lowest priority, kept
        if any(s.regressed for s in tags):
            return 0
        ranks = [_REPLAY_ORDER[s.status] for s in tags if s.status in _REPLAY_ORDER]
        return min(ranks) if ranks else 5  # every tag of it stalled: last, but not dropped

    rng = random.Random(seed)
    keyed = []
    for k in dict.fromkeys(trained):
        tags = [states[t] for t in tags_of(k, examples, states, inferred)]
        more = any(s.underfit and s.status == "responsive" for s in tags)
        keyed.append((priority(tags), rng.random(), k, more))
    keyed.sort()
    if n is None:
        return [k for _, _, k, _ in keyed]
    rest = [k for _, _, k, underfit in keyed if not underfit][:n]
    return [k for _, _, k, underfit in keyed if underfit] + rest


def plan_round_data(
    *,
    rounds: Sequence[dict[str, Any]],
    suites: Sequence[str],
    examples: Mapping[str, Example],
    trained: Sequence[str],
    available: Sequence[str],
    failed_by_tag: Mapping[str, Sequence[str]],
    budget: int,
    replay: float,
    stall_rounds: int,
    explore: float,
    frozen: frozenset[str],
    seed: int,
    fitted_loss: float | None = None,
    similarity: str = "auto",
    synthesise: Synthesise | None = None,
    first: Sequence[str] = (),
    min_examples: int = 0,
    eval_prompts: Mapping[str, Sequence[str]] | None = None,
) -> RoundData:
    """The next round's data. ``examples`` maps keys to every example known (seed, pool,
    generated); ``trained`` are the keys trained so far; ``available`` the unused pool keys;
    ``first`` examples always in the round (the seed set, for round 1); a round with few new
    examples is topped up with replay to ``min_examples``; ``eval_prompts`` (tag → the target
    suites' prompts) let untagged pool examples join the tag they are closest to."""
    states = tag_states(
        rounds,
        suites,
        trained_by_round(rounds),
        stall_rounds=stall_rounds,
        explore=explore,
        frozen=frozen,
        fitted_loss=fitted_loss,
    )
    untagged = {k: examples[k] for k in [*available, *trained] if not examples[k].tags}
    inferred = infer_tags(untagged, eval_prompts or {}, similarity) if ALL not in states else {}
    # The seed set counts as examples for its tags before round 1 trains on it.
    seeded = _count_tags(first, examples, states, inferred)
    states = {
        t: with_pending(s, seeded[t]) if t in seeded and s.status == "untried" else s
        for t, s in states.items()
    }
    by_tag: dict[str, list[tuple[str, Example]]] = {t: [] for t in states}
    for key in available:
        ex = examples[key]
        tags = tags_of(key, examples, states, inferred)
        if tags:
            by_tag[tags[0]].append((key, ex))
    generated: list[Example] = []
    if synthesise is not None:
        for tag, state in states.items():
            if state.weight > 0 and not by_tag[tag]:
                style = [
                    examples[k] for k in trained if tag in tags_of(k, examples, states, inferred)
                ]
                made = synthesise(tag, budget, style)
                generated += made
                by_tag[tag] += [(e.id, e) for e in made]
    quotas = allocate_budget(states, {t: len(v) for t, v in by_tag.items()}, budget)
    new, closeness = list(first), {}
    for tag, q in sorted(quotas.items()):
        ranked = _rank_in_tag(by_tag[tag], failed_by_tag.get(tag, ()), similarity)[:q]
        new += [key for key, _ in ranked]
        closeness.update(ranked)
    new = list(dict.fromkeys(new))
    n_replay = max(round(replay * len(new)), min_examples - len(new)) if new else None
    replayed = [
        k for k in _replay(trained, examples, states, n_replay, seed, inferred) if k not in new
    ]
    known = {**examples, **{e.id: e for e in generated}}
    return RoundData(
        new=new,
        replay=replayed,
        by_tag=_count_tags(new, known, states, inferred),
        inferred={k: t for k, t in inferred.items() if k in new},
        quotas=quotas,
        closeness=closeness,
        states={t: s.to_dict() for t, s in states.items()},
        generated=generated,
    )
