"""Suites: a plain description of what to evaluate → examples with their grader → a result.

A ``SuiteSpec`` is one of three kinds of suite, from plain arguments (the loop builds them from
the config; ``evaltune bench`` and scripts can build them directly):

- an application file (``file``, graded by ``grader``, default ``normalized``);
- a public benchmark (``benchmark``, optionally with ``file`` in the upstream schema), graded by
  the benchmark's scorer unless ``grader`` overrides it;
- an NLL suite (``kind="nll"``, ``file``): the reference completions' NLL (``nll_suite``).

``expand_bundle`` turns a bundle or use-case template into specs. ``load_suite`` reads the data,
builds the grader and the suite hash (``result.suite_fingerprint``: examples, prompt template,
grader and options, renderer) and records the provenance stamped on every result;
``evaluate_suite`` runs a loaded suite against a SamplingClient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaltune.data import Example, Renderer, load_many
from evaltune.errors import EvalError
from evaltune.evals.benchmarks.catalog import bundle_items, find_local_file, load_benchmark
from evaltune.evals.generation import Sampler, evaluate_examples
from evaltune.evals.graders import Grader
from evaltune.evals.nll_suite import evaluate_nll
from evaltune.evals.registry import make_grader
from evaltune.evals.result import EvalResult, suite_fingerprint

__all__ = [
    "KINDS",
    "LoadedSuite",
    "SuiteSpec",
    "evaluate_suite",
    "expand_bundle",
    "leakage_views",
    "load_suite",
]

KINDS = ("generate", "nll")
DEFAULT_GRADER = "normalized"
DEFAULT_MAX_TOKENS = 64


@dataclass(frozen=True)
class SuiteSpec:
    name: str
    kind: str = "generate"
    file: str | None = None
    benchmark: str | None = None
    grader: str | None = None  # None: the benchmark's scorer, or "normalized"
    grader_options: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = None
    spread: bool = False  # a limit keeps evenly spaced items (bundles), not the first N
    max_tokens: int | None = None  # None: the benchmark's own, or 64


@dataclass(frozen=True)
class LoadedSuite:
    name: str
    kind: str
    examples: list[Example]
    grader: Grader | None  # None for an NLL suite
    suite_hash: str
    max_tokens: int
    provenance: dict[str, Any]


def expand_bundle(name: str, bundle: str, *, data_dir: str | Path | None = None) -> list[SuiteSpec]:
    """One spec per item of bundle or template ``bundle``, named ``<name>-<benchmark>``."""
    specs = []
    for item in bundle_items(bundle):
        local = find_local_file(data_dir, item.benchmark) if data_dir else None
        specs.append(
            SuiteSpec(
                f"{name}-{item.benchmark}",
                benchmark=item.benchmark,
                file=str(local) if local else None,
                limit=item.limit,
                spread=True,
            )
        )
    return specs


_RAW_PROMPTS = ("question", "problem", "code_prompt")  # benchmark metadata: the bare question


def leakage_views(examples: list[Example]) -> list[Example]:
    """``examples`` plus, for benchmark items, their bare question as a prompt: what training
    data must not contain (a templated prompt alone would not match a raw training question)."""
    views = list(examples)
    for ex in examples:
        for key in _RAW_PROMPTS:
            raw = ex.metadata.get(key)
            if isinstance(raw, str) and raw.strip():
                views.append(Example.single_turn(ex.id, raw, "", source=ex.source))
    return views


def _describe(value: Any) -> Any:
    """An option as hashable, readable JSON: objects (a judge backend) by their name."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_describe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in value.items()}
    name = getattr(value, "name", None)
    return f"<{type(value).__name__} {name}>" if name else f"<{type(value).__name__}>"


def load_suite(spec: SuiteSpec, *, renderer: str) -> LoadedSuite:
    """The examples, grader and hash of ``spec``; ``renderer`` is the renderer's name."""
    if spec.kind not in KINDS:
        raise EvalError(
            f"suite {spec.name!r}: kind {spec.kind!r}; choose one of: {', '.join(KINDS)}"
        )
    template, source, benchmark = "", spec.file, None
    if spec.kind == "nll" or spec.benchmark is None:
        if spec.file is None:
            raise EvalError(f"suite {spec.name!r} needs a file (or a benchmark)")
        examples = load_many([spec.file])[: spec.limit]
        grader_name = "nll" if spec.kind == "nll" else spec.grader or DEFAULT_GRADER
        options: dict[str, Any] = dict(spec.grader_options)
        max_tokens = spec.max_tokens or DEFAULT_MAX_TOKENS
    else:
        data = load_benchmark(spec.benchmark, file=spec.file, limit=spec.limit, spread=spec.spread)
        benchmark, examples, source = data.benchmark, data.examples, data.source
        template = benchmark.template
        grader_name = spec.grader or benchmark.grader
        options = {**benchmark.grader_options, **spec.grader_options}
        max_tokens = spec.max_tokens or benchmark.max_tokens
    if not examples:
        raise EvalError(f"suite {spec.name!r}: {source} has no items")
    grader = None if spec.kind == "nll" else make_grader(grader_name, **options)
    shown = _describe(options)
    provenance = {
        "kind": spec.kind,
        "source": source,
        "benchmark": spec.benchmark,
        "grader": grader_name,
        "grader_options": shown,
        "renderer": renderer,
        "template": template,
    }
    digest = suite_fingerprint(
        examples, renderer=renderer, template=template, grader=grader_name, grader_options=shown
    )
    return LoadedSuite(spec.name, spec.kind, examples, grader, digest, max_tokens, provenance)


def evaluate_suite(
    suite: LoadedSuite,
    sampler: Sampler,
    renderer: Renderer,
    *,
    temperature: float = 0.0,
    seed: int | None = None,
    model_path: str | None = None,
    max_seq_len: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Evaluate ``suite`` with ``sampler`` (NLL suites use its ``compute_logprobs``)."""
    if suite.kind == "nll":
        return evaluate_nll(
            sampler,
            suite.examples,
            renderer,
            suite=suite.name,
            max_seq_len=max_seq_len,
            model_path=model_path,
            suite_hash=suite.suite_hash,
            progress=progress,
            provenance=suite.provenance,
        )
    assert suite.grader is not None
    return evaluate_examples(
        sampler,
        suite.examples,
        renderer,
        suite.grader,
        suite=suite.name,
        max_tokens=suite.max_tokens,
        temperature=temperature,
        seed=seed,
        model_path=model_path,
        suite_hash=suite.suite_hash,
        progress=progress,
        provenance=suite.provenance,
    )
