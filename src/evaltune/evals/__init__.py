"""Evaluation: score a model through the SamplingClient / TrainingClient contract only.

``graders`` score one response against its reference; ``app`` samples a suite of examples in one
batch and grades it into an ``EvalResult`` (``result``: records, metrics with confidence
intervals, JSONL on disk); ``nll`` measures validation NLL through either client. Nothing here
imports a model or torch: local and Tinker backends are one code path.
"""

from evaltune.evals.app import Sampler, evaluate_examples, prompt_text, sampling_stop
from evaltune.evals.graders import (
    GRADERS,
    Grader,
    GradeResult,
    extract_choice,
    extract_numbers,
    make_grader,
    normalize_text,
)
from evaltune.evals.nll import NLLResult, sampler_nll, validation_nll
from evaltune.evals.result import (
    EvalResult,
    SampleRecord,
    compute_suite_hash,
    is_correct,
    wilson_interval,
)

__all__ = [
    "GRADERS",
    "EvalResult",
    "GradeResult",
    "Grader",
    "NLLResult",
    "SampleRecord",
    "Sampler",
    "compute_suite_hash",
    "evaluate_examples",
    "extract_choice",
    "extract_numbers",
    "is_correct",
    "make_grader",
    "normalize_text",
    "prompt_text",
    "sampler_nll",
    "sampling_stop",
    "validation_nll",
    "wilson_interval",
]
