"""Failure analysis of a round: where the model fails, how, and on what kinds of prompt.

Per suite: per-tag accuracy with its change against the previous round and the baseline, the
weakest tags, an error type for every failed sample, and clusters of failed prompts grouped by
similarity (all-MiniLM-L6-v2 embeddings, or TF-IDF when the embedding model is not installed).

Error types, first match wins:

- ``empty``: nothing but whitespace came back;
- ``refusal``: the answer declines ("I can't", "I'm sorry", "as an AI", …);
- ``truncated``: sampling hit ``max_tokens`` before the answer ended;
- ``wrong_format``: the reference answer is in the response, but the grader wanted it alone or
  in another form ("The capital of Italy is Rome." for "Rome");
- ``wrong_answer``: anything else.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evaltune.data.dedup import normalise_text
from evaltune.evals import EvalResult
from evaltune.loop.decide import SuiteRule
from evaltune.loop.state import baseline_of

__all__ = ["ERROR_TYPES", "analyse_round", "classify_error", "tag_accuracy", "text_vectors"]

ERROR_TYPES = ("wrong_answer", "wrong_format", "truncated", "empty", "refusal")
_REFUSAL = re.compile(
    r"\b(i\s*(can(no|')t|cannot|won't|am not able|'m not able|am unable)|i'm sorry|i am sorry|"
    r"as an ai|i must decline|not appropriate for me)\b",
    re.IGNORECASE,
)
CLUSTER_SIMILARITY = 0.55
Round = dict[str, Any]


def classify_error(response: str, target: str, stop_reason: str | None) -> str:
    if not response.strip():
        return "empty"
    if _REFUSAL.search(response.replace("\u2019", "'")):  # typographic apostrophes too
        return "refusal"
    if stop_reason == "length":
        return "truncated"
    norm_target = normalise_text(target)
    # As a whole word: "Rome" inside "Romeo", or "4" inside "14", is a wrong answer.
    whole = rf"(?<!\w){re.escape(norm_target)}(?!\w)"
    if norm_target and re.search(whole, normalise_text(response)):
        return "wrong_format"
    return "wrong_answer"


def text_vectors(texts: Sequence[str], method: str = "auto") -> tuple[np.ndarray, str]:
    """Unit-length vectors for ``texts`` and the method used (``embedding`` or ``tfidf``)."""
    from evaltune.engine import embeddings

    if method in ("auto", "embedding") and (method == "embedding" or embeddings.available()):
        return embeddings.embed_texts(texts), "embedding"
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not texts:
        return np.zeros((0, 1), dtype=np.float32), "tfidf"
    matrix = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)
    dense = matrix.toarray().astype(np.float32)
    norms = np.linalg.norm(dense, axis=1, keepdims=True)
    return dense / np.maximum(norms, 1e-9), "tfidf"


def _clusters(prompts: list[str], tags: list[list[str]], vectors: np.ndarray) -> list[dict]:
    """Greedy single-pass clustering: a prompt joins the first cluster whose centroid it is
    close to (cosine ≥ CLUSTER_SIMILARITY), else starts one. Largest clusters first."""
    centroids: list[np.ndarray] = []
    members: list[list[int]] = []
    for i, vec in enumerate(vectors):
        sims = [float(vec @ c / max(np.linalg.norm(c), 1e-9)) for c in centroids]
        best = int(np.argmax(sims)) if sims else -1
        if best >= 0 and sims[best] >= CLUSTER_SIMILARITY:
            members[best].append(i)
            centroids[best] = centroids[best] + vec
        else:
            centroids.append(vec.copy())
            members.append([i])
    out = []
    for group in sorted(members, key=len, reverse=True):
        tag_counts = Counter(t for i in group for t in tags[i])
        out.append(
            {
                "size": len(group),
                "tags": dict(tag_counts.most_common()),
                "examples": [prompts[i] for i in group[:3]],
            }
        )
    return out


def tag_accuracy(round_: Round | None, suite: str) -> dict[str, float]:
    """A round record's per-tag accuracy for ``suite`` ({} when absent)."""
    if not round_:
        return {}
    per_tag = round_.get("evals", {}).get(suite, {}).get("per_tag", {})
    return {tag: float(v["accuracy"]) for tag, v in per_tag.items()}


def analyse_round(
    rounds: Sequence[Round],
    rules: Sequence[SuiteRule],
    results: Mapping[str, EvalResult] | None = None,
    similarity: str = "auto",
) -> dict[str, Any]:
    """The analysis of ``rounds[-1]``; ``results`` (this round's EvalResults by suite) add
    error types and failure clusters."""
    last = rounds[-1]
    prev = rounds[-2] if len(rounds) > 1 else None
    base = baseline_of(rounds)
    out: dict[str, Any] = {"round": last["round"], "suites": {}}
    for rule in rules:
        now = tag_accuracy(last, rule.name)
        before, baseline = tag_accuracy(prev, rule.name), tag_accuracy(base, rule.name)
        suite: dict[str, Any] = {
            "tags": {
                tag: {
                    "accuracy": acc,
                    "vs_previous": None if tag not in before else round(acc - before[tag], 4),
                    "vs_baseline": None if tag not in baseline else round(acc - baseline[tag], 4),
                }
                for tag, acc in sorted(now.items())
            },
            "weakest_tags": sorted(now, key=lambda t: (now[t], t))[:3],
        }
        result = (results or {}).get(rule.name)
        if result is not None:
            failed = [r for r in result.records if not r.correct]
            suite["failures"] = len(failed)
            kinds = Counter(classify_error(r.response, r.target, r.stop_reason) for r in failed)
            suite["error_types"] = {k: kinds.get(k, 0) for k in ERROR_TYPES}
            if failed:
                vectors, method = text_vectors([r.prompt for r in failed], similarity)
                suite["clusters"] = _clusters(
                    [r.prompt for r in failed], [list(r.tags) for r in failed], vectors
                )[:5]
                suite["similarity"] = method
        out["suites"][rule.name] = suite
    return out
