"""OpenAI graders as evaltune graders: the ``openai`` grader takes a grader's JSON as is.

The six types OpenAI's graders guide defines (``string_check``, ``text_similarity``,
``python``, ``score_model``, ``label_model``, ``multi``) with ``{{item.*}}`` / ``{{sample.*}}``
templates, so evals written for OpenAI's Evals or reinforcement fine-tuning grade evaltune's
rounds unchanged, into the same ``EvalResult`` as every other grader. ``grader`` builds and
adapts them; ``templates``, ``checks`` (with ``similarity``), ``model``, ``python`` and
``multi`` implement the types; ``base`` holds what they share. docs/openai-graders.md maps each
type and option.
"""

from evaltune.evals.openai_graders.grader import (
    NODES,
    OpenAIGrader,
    build_node,
    item_of,
    make_openai_grader,
    sample_of,
)
from evaltune.evals.openai_graders.multi import Formula
from evaltune.evals.openai_graders.similarity import METRICS, similarity
from evaltune.evals.openai_graders.templates import render

__all__ = [
    "METRICS",
    "NODES",
    "Formula",
    "OpenAIGrader",
    "build_node",
    "item_of",
    "make_openai_grader",
    "render",
    "sample_of",
    "similarity",
]
