"""The benchmark catalogue by name, loading one, and the named bundles and use-case templates.

``load_benchmark(name, file=...)`` reads the rows from, in order: ``file`` (a local file in the
upstream schema), the data a package ships (HumanEval, the application sets), or the Hugging
Face hub (needs ``datasets`` and network). ``limit`` keeps the first N items, so a limited
suite asks the same questions every time; with ``spread=True`` it keeps N items evenly spaced
through the data instead (bundles use this, so 100 MMLU items cover every subject rather than
the first one in the file).

A *bundle* (by size: ``quick``, ``standard``, ``comprehensive``) and a *template* (by use case:
``chat``, ``code``, ``math``, ``tools``, ``safety``, ``tutoring``) name a list of
``BundleItem``s: benchmarks with an item limit. A config suite ``bundle: NAME`` expands into one
suite per item, named ``<suite>-<benchmark>``, each with the suite's role, threshold and
tolerance; its data comes from ``data_dir/<benchmark>.jsonl`` (or ``.json``, ``.jsonl.gz``,
``.parquet``) when that exists, else as above.

``BENCHMARKS`` and ``BUNDLES`` with ``TEMPLATES`` are the one lists of those names: a config
is checked against them (``loop.context`` hands them to ``config.names``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaltune.errors import EvalError
from evaltune.evals.benchmarks import appsets, competition_math, gsm8k, humaneval, ifeval, mmlu
from evaltune.evals.benchmarks.base import (
    Benchmark,
    BenchmarkData,
    read_hub,
    read_rows,
    to_examples,
)

__all__ = [
    "BENCHMARKS",
    "BUNDLES",
    "TEMPLATES",
    "BundleItem",
    "bundle_items",
    "find_local_file",
    "get_benchmark",
    "load_benchmark",
]

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        gsm8k.BENCHMARK,
        competition_math.BENCHMARK,
        mmlu.BENCHMARK,
        ifeval.BENCHMARK,
        humaneval.BENCHMARK,
        appsets.SAFETY,
        appsets.TUTORING,
        appsets.TOOLS,
    )
}


@dataclass(frozen=True)
class BundleItem:
    benchmark: str
    limit: int | None = None


BUNDLES: dict[str, tuple[BundleItem, ...]] = {
    "quick": (
        BundleItem("gsm8k", 50),
        BundleItem("mmlu", 100),
        BundleItem("ifeval", 50),
        BundleItem("humaneval", 20),
    ),
    "standard": (
        BundleItem("gsm8k", 250),
        BundleItem("math", 200),
        BundleItem("mmlu", 500),
        BundleItem("ifeval", 200),
        BundleItem("humaneval"),
    ),
    "comprehensive": (
        BundleItem("gsm8k"),
        BundleItem("math"),
        BundleItem("mmlu"),
        BundleItem("ifeval"),
        BundleItem("humaneval"),
        BundleItem("safety"),
    ),
}
TEMPLATES: dict[str, tuple[BundleItem, ...]] = {
    "chat": (BundleItem("ifeval", 200), BundleItem("mmlu", 200), BundleItem("safety")),
    "code": (BundleItem("humaneval"), BundleItem("mmlu", 100)),
    "math": (BundleItem("gsm8k", 250), BundleItem("math", 200)),
    "tools": (BundleItem("tools"), BundleItem("ifeval", 100)),
    "safety": (BundleItem("safety"),),
    "tutoring": (BundleItem("tutoring"), BundleItem("safety")),
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise EvalError(
            f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}"
        ) from None


def bundle_items(name: str) -> tuple[BundleItem, ...]:
    """The items of a bundle or template."""
    found = BUNDLES.get(name) or TEMPLATES.get(name)
    if found is None:
        raise EvalError(
            f"unknown bundle {name!r}; choose a bundle ({', '.join(BUNDLES)}) or a template "
            f"({', '.join(TEMPLATES)})"
        )
    return found


def find_local_file(data_dir: str | Path, benchmark: str) -> Path | None:
    """``data_dir/<benchmark>.<jsonl|json|jsonl.gz|parquet>``, the first that exists."""
    for suffix in (".jsonl", ".json", ".jsonl.gz", ".parquet"):
        path = Path(data_dir) / f"{benchmark}{suffix}"
        if path.is_file():
            return path
    return None


def load_benchmark(
    name: str, *, file: str | Path | None = None, limit: int | None = None, spread: bool = False
) -> BenchmarkData:
    """The examples of benchmark ``name`` (see the module docstring for where they come from)."""
    benchmark = get_benchmark(name)
    if file is not None:
        rows, source = read_rows(file), str(file)
    elif benchmark.packaged is not None:
        path = benchmark.packaged()
        rows, source = read_rows(path), f"package:{path.name}"
    elif benchmark.hub is not None:
        rows, source = read_hub(benchmark.hub), str(benchmark.hub)
    else:  # pragma: no cover - every benchmark has a default source
        raise EvalError(f"benchmark {name!r} needs `file:`")
    indexed = [(i, where, row) for i, (where, row) in enumerate(rows)]
    if limit is not None and limit < len(indexed):
        if spread:
            indexed = [indexed[i * len(indexed) // limit] for i in range(limit)]
        else:
            indexed = indexed[:limit]
    examples = to_examples(benchmark, indexed)
    if not examples:
        raise EvalError(f"benchmark {name!r}: {source} has no items")
    return BenchmarkData(benchmark, examples, source)
