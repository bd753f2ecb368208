"""Suites: what is evaluated each round, behind one protocol, ``Suite``.

A suite is loaded once (its data read, its grader built, its hash taken) and then evaluated on
any number of models: ``suite.evaluate(sampler)`` returns an ``EvalResult``. The loop holds each
suite with its rule and knows nothing else about it. Two kinds live here, built from plain
arguments (the loop builds them from the config; ``evaltune bench`` and scripts directly):

- ``GeneratedSuite``: sample an answer per item and grade it. ``load_suite`` reads an
  application file (graded by ``grader``, default ``normalized``) or a public benchmark (with
  ``file`` in the upstream schema or from its default source; graded by the benchmark's scorer
  unless ``grader`` overrides it); ``load_bundle`` one per benchmark of a bundle or template;
- ``NLLSuite`` (``load_nll_suite``): the NLL of each item's reference completion.

An Inspect task is a third kind, ``evaltune.inspect.InspectSuite``, in the layer that may import
Inspect. The suite hash (``result.suite_fingerprint``: examples, prompt template, grader and
options, renderer) and the provenance are stamped on every result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from evaltune.backends.contract import SamplingClient
from evaltune.data import Example, Renderer, load_many
from evaltune.errors import EvalError
from evaltune.evals.benchmarks.catalog import bundle_items, find_local_file, load_benchmark
from evaltune.evals.generation import evaluate_examples
from evaltune.evals.graders import Grader
from evaltune.evals.nll_suite import evaluate_nll
from evaltune.evals.registry import make_grader
from evaltune.evals.result import EvalResult, suite_fingerprint

__all__ = [
    "BundleMember",
    "GeneratedSuite",
    "NLLSuite",
    "Suite",
    "expand_bundle",
    "leakage_views",
    "load_bundle",
    "load_nll_suite",
    "load_suite",
]

DEFAULT_GRADER = "normalized"
DEFAULT_MAX_TOKENS = 64

Progress = Callable[[int, int], None]


class Suite(Protocol):
    """A loaded suite: ``evaluate`` scores one model (``model_path`` names it in the result;
    ``progress(done, total)`` follows the items; ``log_dir`` holds what a suite logs on the side,
    an Inspect task's log). ``examples`` are its items (empty for an Inspect task), which
    training data must not contain; ``kind`` is ``generate``, ``nll`` or ``inspect``."""

    name: str
    kind: str
    examples: list[Example]

    def evaluate(
        self,
        sampler: SamplingClient,
        *,
        model_path: str | None = None,
        progress: Progress | None = None,
        log_dir: Path | None = None,
    ) -> EvalResult: ...


def _sampling_renderer(renderer: Renderer | str, suite: str) -> Renderer:
    if isinstance(renderer, str):
        raise EvalError(
            f"suite {suite!r} was loaded with renderer name {renderer!r} only (for an endpoint); "
            "load it with a Renderer to evaluate it on a SamplingClient"
        )
    return renderer


def _renderer_name(renderer: Renderer | str) -> str:
    return renderer if isinstance(renderer, str) else renderer.name


@dataclass(frozen=True)
class GeneratedSuite:
    """Sample one answer per item and grade it. ``renderer`` is the one prompts are rendered
    with, or only its name where another party renders them (an endpoint: ``evaltune bench``)."""

    name: str
    examples: list[Example]
    grader: Grader
    renderer: Renderer | str
    max_tokens: int
    suite_hash: str
    provenance: dict[str, Any]
    temperature: float = 0.0
    seed: int | None = None
    kind: str = field(default="generate", init=False)

    def evaluate(
        self,
        sampler: SamplingClient,
        *,
        model_path: str | None = None,
        progress: Progress | None = None,
        log_dir: Path | None = None,
    ) -> EvalResult:
        return evaluate_examples(
            sampler,
            self.examples,
            _sampling_renderer(self.renderer, self.name),
            self.grader,
            suite=self.name,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            seed=self.seed,
            model_path=model_path,
            suite_hash=self.suite_hash,
            progress=progress,
            provenance=self.provenance,
        )


@dataclass(frozen=True)
class NLLSuite:
    """The NLL of every item's completion (``nll_suite``); metric ``nll``, lower is better."""

    name: str
    examples: list[Example]
    renderer: Renderer | str
    suite_hash: str
    provenance: dict[str, Any]
    max_seq_len: int | None = None
    kind: str = field(default="nll", init=False)

    def evaluate(
        self,
        sampler: SamplingClient,
        *,
        model_path: str | None = None,
        progress: Progress | None = None,
        log_dir: Path | None = None,
    ) -> EvalResult:
        return evaluate_nll(
            sampler,
            self.examples,
            _sampling_renderer(self.renderer, self.name),
            suite=self.name,
            max_seq_len=self.max_seq_len,
            model_path=model_path,
            suite_hash=self.suite_hash,
            progress=progress,
            provenance=self.provenance,
        )


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


def _provenance(kind: str, source: str, benchmark: str | None, grader: str, options: Any,
                renderer: str, template: str) -> dict[str, Any]:  # fmt: skip
    return {
        "kind": kind,
        "source": source,
        "benchmark": benchmark,
        "grader": grader,
        "grader_options": options,
        "renderer": renderer,
        "template": template,
    }


def load_suite(
    name: str,
    *,
    renderer: Renderer | str,
    file: str | None = None,
    benchmark: str | None = None,
    grader: str | None = None,
    grader_options: Mapping[str, Any] | None = None,
    limit: int | None = None,
    spread: bool = False,
    max_tokens: int | None = None,
    temperature: float = 0.0,
    seed: int | None = None,
) -> GeneratedSuite:
    """An application file (``file``) or a public benchmark (``benchmark``, its data from
    ``file`` when given), with its grader. ``spread``: a ``limit`` keeps evenly spaced items
    (bundles), not the first N. ``max_tokens`` None: the benchmark's own, or 64."""
    template, source = "", file
    if benchmark is None:
        if file is None:
            raise EvalError(f"suite {name!r} needs a file (or a benchmark)")
        examples = load_many([file])[:limit]
        grader_name = grader or DEFAULT_GRADER
        options: dict[str, Any] = dict(grader_options or {})
        max_tokens = max_tokens or DEFAULT_MAX_TOKENS
    else:
        data = load_benchmark(benchmark, file=file, limit=limit, spread=spread)
        examples, source, template = data.examples, data.source, data.benchmark.template
        grader_name = grader or data.benchmark.grader
        options = {**data.benchmark.grader_options, **(grader_options or {})}
        max_tokens = max_tokens or data.benchmark.max_tokens
    if not examples:
        raise EvalError(f"suite {name!r}: {source} has no items")
    shown = _describe(options)
    rname = _renderer_name(renderer)
    digest = suite_fingerprint(
        examples, renderer=rname, template=template, grader=grader_name, grader_options=shown
    )
    provenance = _provenance(
        "generate", str(source), benchmark, grader_name, shown, rname, template
    )
    return GeneratedSuite(
        name,
        examples,
        make_grader(grader_name, **options),
        renderer,
        max_tokens,
        digest,
        provenance,
        temperature=temperature,
        seed=seed,
    )


def load_nll_suite(
    name: str,
    file: str,
    *,
    renderer: Renderer | str,
    limit: int | None = None,
    max_seq_len: int | None = None,
) -> NLLSuite:
    """The NLL suite of ``file``'s completions (longer items are cut to ``max_seq_len``)."""
    examples = load_many([file])[:limit]
    if not examples:
        raise EvalError(f"suite {name!r}: {file} has no items")
    rname = _renderer_name(renderer)
    digest = suite_fingerprint(
        examples, renderer=rname, template="", grader="nll", grader_options={}
    )
    provenance = _provenance("nll", file, None, "nll", {}, rname, "")
    return NLLSuite(name, examples, renderer, digest, provenance, max_seq_len)


class BundleMember(NamedTuple):
    """One suite of a bundle: its name (``<bundle suite>-<benchmark>``), the benchmark, its
    file in ``data_dir`` (None: the benchmark's default source) and its item limit."""

    name: str
    benchmark: str
    file: str | None
    limit: int | None


def expand_bundle(
    name: str, bundle: str, *, data_dir: str | Path | None = None
) -> list[BundleMember]:
    """The members of bundle or template ``bundle`` for a suite called ``name``."""
    members = []
    for item in bundle_items(bundle):
        local = find_local_file(data_dir, item.benchmark) if data_dir else None
        members.append(
            BundleMember(
                f"{name}-{item.benchmark}",
                item.benchmark,
                str(local) if local else None,
                item.limit,
            )
        )
    return members


def load_bundle(
    name: str,
    bundle: str,
    *,
    renderer: Renderer | str,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    max_tokens: int | None = None,
    temperature: float = 0.0,
    seed: int | None = None,
) -> list[GeneratedSuite]:
    """One suite per member of ``bundle``, each scored by its benchmark's own grader; ``limit``
    and ``max_tokens`` replace the bundle's own (a limit keeps evenly spaced items)."""
    return [
        load_suite(
            m.name,
            renderer=renderer,
            file=m.file,
            benchmark=m.benchmark,
            limit=limit or m.limit,
            spread=True,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
        )
        for m in expand_bundle(name, bundle, data_dir=data_dir)
    ]


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
