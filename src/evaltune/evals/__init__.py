"""Evaluation: score a model through the SamplingClient / TrainingClient contract only.

Three layers, one result type:

1. training-centric: ``nll`` (validation NLL through either client) and ``nll_suite`` (NLL as a
   suite, per-sample records);
2. public benchmarks: ``benchmarks`` (GSM8K, MATH, MMLU, IFEval, HumanEval; bundles and
   use-case templates);
3. the application's own: ``graders`` (exact, normalized, numeric, contains, regex, choice),
   ``overlap`` (F1), ``judge`` with ``chat`` (LLM-as-judge on an endpoint or a backend model),
   ``pyfunc`` (a Python function), ``tutoring``, ``safety``, ``tools`` and ``openai_graders``
   (OpenAI grader JSON: string_check, text_similarity, python, score_model, label_model,
   multi); ``registry`` is the catalogue that names them all (``GRADER_NAMES``,
   ``make_grader``).

``generation`` samples a suite of examples in one batch and grades it; ``suites`` holds the
``Suite`` protocol the loop evaluates (``evaluate(sampler) -> EvalResult``) and loads its kinds
from plain arguments; ``lm_eval_suite`` runs an lm-evaluation-harness task as one (the
``lm-eval`` extra); ``endpoint`` runs one against an OpenAI-compatible server
(``evaltune bench``); ``result`` is the ``EvalResult`` (records, metrics with confidence
intervals, JSONL on disk); ``compare`` with ``significance`` compares two results sample by
sample. Nothing here imports a model or torch: local and Tinker backends are one code path.
"""

from evaltune.evals.chat import ChatBackend, EndpointChat, SamplerChat, api_key_from_env
from evaltune.evals.compare import Comparison, MetricChange, compare_results
from evaltune.evals.endpoint import EndpointClient, EndpointReply, evaluate_endpoint
from evaltune.evals.generation import (
    BatchGrader,
    Sampler,
    evaluate_examples,
    grade_responses,
    prompt_text,
    sampling_stop,
)
from evaltune.evals.graders import (
    GRADERS,
    Grader,
    GradeResult,
    extract_choice,
    extract_numbers,
    normalize_text,
)
from evaltune.evals.judge import RUBRICS, JudgeGrader, parse_score
from evaltune.evals.lm_eval_suite import LmEvalSuite, load_lm_eval_suite
from evaltune.evals.nll import NLLResult, sampler_nll, validation_nll
from evaltune.evals.nll_suite import evaluate_nll
from evaltune.evals.openai_graders import OpenAIGrader, make_openai_grader
from evaltune.evals.pyfunc import load_function
from evaltune.evals.registry import GRADER_NAMES, all_graders, make_grader
from evaltune.evals.result import (
    LOWER_IS_BETTER,
    EvalResult,
    SampleRecord,
    compute_suite_hash,
    is_correct,
    metric_direction,
    suite_fingerprint,
    wilson_interval,
)
from evaltune.evals.suites import (
    BundleMember,
    GeneratedSuite,
    NLLSuite,
    Suite,
    expand_bundle,
    leakage_views,
    load_bundle,
    load_nll_suite,
    load_suite,
)

__all__ = [
    "GRADERS",
    "GRADER_NAMES",
    "LOWER_IS_BETTER",
    "RUBRICS",
    "BatchGrader",
    "BundleMember",
    "ChatBackend",
    "Comparison",
    "EndpointChat",
    "EndpointClient",
    "EndpointReply",
    "EvalResult",
    "GeneratedSuite",
    "GradeResult",
    "Grader",
    "JudgeGrader",
    "LmEvalSuite",
    "MetricChange",
    "NLLResult",
    "NLLSuite",
    "OpenAIGrader",
    "SampleRecord",
    "Sampler",
    "SamplerChat",
    "Suite",
    "all_graders",
    "api_key_from_env",
    "compare_results",
    "compute_suite_hash",
    "evaluate_endpoint",
    "evaluate_examples",
    "evaluate_nll",
    "expand_bundle",
    "extract_choice",
    "extract_numbers",
    "grade_responses",
    "is_correct",
    "leakage_views",
    "load_bundle",
    "load_function",
    "load_lm_eval_suite",
    "load_nll_suite",
    "load_suite",
    "make_grader",
    "make_openai_grader",
    "metric_direction",
    "normalize_text",
    "parse_score",
    "prompt_text",
    "sampler_nll",
    "sampling_stop",
    "suite_fingerprint",
    "validation_nll",
    "wilson_interval",
]
