"""Builders: from a validated ``RunConfig`` to the plain objects a run works on.

This is the last place a config is seen. It resolves the backend, loads and checks the data
(deduplicated, eval prompts removed from training), renders training and validation datums, and
loads every eval suite with its grader; below this, functions take plain arguments.

It is also where config learns the names it checks (``CONFIG_NAMES``, installed with
``config.register_names`` on import): grader, benchmark, bundle and policy names, each from the
catalogue of the layer that implements them, since config imports no other layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tinker import types

from evaltune.backends.contract import SamplingClient, ServiceClient
from evaltune.config import EvalSuiteConfig, NameCatalog, RunConfig, register_names
from evaltune.config.schema import JudgeConfig
from evaltune.data import (
    Example,
    Renderer,
    dedupe,
    get_renderer,
    load_many,
    remove_overlap,
    to_datum,
    token_stats,
)
from evaltune.data.dedup import normalise_text
from evaltune.errors import ConfigError, EvalError
from evaltune.evals import (
    GRADER_NAMES,
    EndpointChat,
    EvalResult,
    Grader,
    LoadedSuite,
    SamplerChat,
    SuiteSpec,
    api_key_from_env,
    evaluate_suite,
    expand_bundle,
    leakage_views,
    load_suite,
)
from evaltune.evals.benchmarks import BENCHMARKS, BUNDLES, TEMPLATES
from evaltune.loop.decide import SuiteRule
from evaltune.loop.policies import POLICIES
from evaltune.loop.select import clean_pool
from evaltune.train import auto_learning_rate

__all__ = [
    "CONFIG_NAMES",
    "RunContext",
    "Suite",
    "build_context",
    "build_suites",
    "judge_backend",
    "make_service",
]

CONFIG_NAMES = NameCatalog(
    graders=GRADER_NAMES,
    benchmarks=tuple(BENCHMARKS),
    bundles=(*BUNDLES, *TEMPLATES),
    policies=tuple(POLICIES),
)
"""Every name a config may use, read from the owners' catalogues; ``load_config`` checks
against it (registered below) and lists it in its errors."""
register_names(CONFIG_NAMES)


@dataclass
class Suite:
    name: str
    examples: list[Example]  # empty for an Inspect task (its dataset is the task's own)
    grader: Grader | None  # None for an NLL suite or an Inspect task
    rule: SuiteRule
    max_tokens: int | None  # None: an Inspect task's own setting
    temperature: float
    suite_hash: str
    kind: str = "generate"  # "generate" | "nll" | "inspect"
    provenance: dict[str, Any] = field(default_factory=dict)
    task: str | None = None  # kind "inspect": the Inspect task, its arguments and item limit
    task_args: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    base_model: str = ""  # the name the base model is evaluated under (Inspect logs)

    def evaluate(
        self,
        sampler: SamplingClient,
        renderer: Renderer,
        *,
        seed: int | None = None,
        model_path: str | None = None,
        max_seq_len: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        log_dir: Path | None = None,
    ) -> EvalResult:
        """Sample and grade (or, for an NLL suite, score the completions of) every example;
        for an Inspect task, run it on ``sampler`` (its log goes to ``log_dir``)."""
        if self.kind == "inspect":
            from evaltune.inspect import evaluate_task

            assert self.task is not None
            return evaluate_task(
                self.task,
                sampler,
                renderer,
                suite=self.name,
                model_name=model_path or self.base_model,
                model_path=model_path,
                task_args=self.task_args,
                limit=self.limit,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                seed=seed,
                log_dir=log_dir,
            )
        assert self.max_tokens is not None
        loaded = LoadedSuite(
            self.name,
            self.kind,
            self.examples,
            self.grader,
            self.suite_hash,
            self.max_tokens,
            self.provenance,
        )
        return evaluate_suite(
            loaded,
            sampler,
            renderer,
            temperature=self.temperature,
            seed=seed,
            model_path=model_path,
            max_seq_len=max_seq_len,
            progress=progress,
        )


@dataclass
class RunContext:
    service: ServiceClient  # local or tinker
    tokenizer: Any
    renderer: Renderer
    train: list[types.Datum]
    validation: list[types.Datum]
    suites: list[Suite]
    learning_rate: float
    pool: list[Example] = field(default_factory=list)  # eval items already removed
    max_seq_len: int = 512
    completion_tokens: int = 0  # in data.train, for the LoRA capacity check
    facts: dict[str, Any] = field(default_factory=dict)  # model sizes, when the backend knows
    notes: list[str] = field(default_factory=list)  # what data checks found, for the report
    stats: dict[str, Any] = field(default_factory=dict)
    train_examples: list[Example] = field(default_factory=list)  # data.train, as checked

    def render(self, examples: list[Example]) -> list[types.Datum]:
        """Training datums for ``examples`` (those with no completion token left are skipped)."""
        rendered = (self.renderer.render_example(e, self.max_seq_len) for e in examples)
        return [to_datum(r) for r in rendered if any(r.weights[1:])]

    @property
    def rules(self) -> list[SuiteRule]:
        return [s.rule for s in self.suites]


def make_service(
    cfg: RunConfig, checkpoint_dir: Path, progress: Callable[[str], None] | None
) -> ServiceClient:
    if cfg.backend == "local":
        from evaltune.backends.local import ServiceClient

        return ServiceClient(checkpoint_dir=checkpoint_dir, progress=progress)
    if cfg.backend == "tinker":
        from evaltune.backends.tinker import make_service_client

        return make_service_client(cfg.tinker.base_url, cfg.tinker.api_key_env)
    raise ConfigError(
        f"backend {cfg.backend!r} is not available yet in this version; use backend: local"
    )


def _learning_rate(cfg: RunConfig, facts: dict[str, Any]) -> float:
    lr = cfg.training.learning_rate
    if lr != "auto":
        return float(lr)
    hidden = facts.get("hidden_size")
    if not hidden:
        raise ConfigError(
            "training.learning_rate: 'auto' needs the model's hidden size, which this backend "
            "does not report; set a number such as 1e-4"
        )
    return auto_learning_rate(cfg.base_model, int(hidden))


def judge_backend(
    judge: JudgeConfig, cfg: RunConfig, service: ServiceClient | None, where: str
) -> Any:
    """An endpoint client, or a sampler on the run's backend, for a judge grader."""
    if judge.base_url:
        key = api_key_from_env(judge.api_key_env, f"{where}.judge.api_key_env")
        return EndpointChat(judge.base_url, judge.model, key, max_tokens=judge.max_tokens)
    if service is None:
        raise ConfigError(f"{where}.judge: a judge without base_url needs the run's backend")
    if judge.model.startswith("tinker://") or Path(judge.model, "adapter_config.json").is_file():
        sampler = service.create_sampling_client(model_path=judge.model).result()
    else:
        sampler = service.create_sampling_client(base_model=judge.model).result()
    renderer = get_renderer(cfg.data.renderer, sampler.get_tokenizer())
    label = f"{judge.model} (backend)"
    return SamplerChat(sampler, renderer, label=label, max_tokens=judge.max_tokens)


def _grader_options(
    s: EvalSuiteConfig, cfg: RunConfig, service: ServiceClient | None, where: str
) -> dict:
    options: dict[str, Any] = dict(s.grader_options)
    if s.pattern:
        options["pattern"] = s.pattern
    if s.function:
        options["function"] = s.function
    if s.judge is not None:
        options["backend"] = judge_backend(s.judge, cfg, service, where)
        options.update(rubric=s.judge.rubric, min_score=s.judge.min_score)
        options.update(max_score=s.judge.max_score, pass_score=s.judge.pass_score)
    return options


def _rule(name: str, s: EvalSuiteConfig) -> SuiteRule:
    hib = s.higher_is_better if s.higher_is_better is not None else True
    return SuiteRule(name, s.metric or "accuracy", s.role, s.threshold, s.tolerance, hib)


def _inspect_suite(s: EvalSuiteConfig, cfg: RunConfig) -> Suite:
    """An ``inspect: TASK`` suite; the task is loaded when it runs (Inspect is imported then)."""
    assert s.inspect is not None
    provenance = {"kind": "inspect", "task": s.inspect, "task_args": dict(s.task_args)}
    return Suite(
        s.name,
        [],
        None,
        _rule(s.name, s),
        s.max_tokens,
        s.temperature,
        "",  # the log's own hash (samples asked, scorers) is stamped on each result
        "inspect",
        provenance,
        task=s.inspect,
        task_args=dict(s.task_args),
        limit=s.limit,
        base_model=cfg.base_model,
    )


def build_suites(
    cfg: RunConfig, renderer: Renderer, service: ServiceClient | None = None
) -> list[Suite]:
    """Every eval suite of ``cfg`` loaded (bundles expanded into one suite per benchmark).
    ``service`` is needed only for a judge that runs on the backend."""
    suites: list[Suite] = []
    for i, s in enumerate(cfg.evals):
        where = f"evals[{i}] ({s.name})"
        if s.inspect:
            suites.append(_inspect_suite(s, cfg))
            continue
        if s.bundle:
            specs = expand_bundle(s.name, s.bundle, data_dir=s.data_dir)
            if s.limit:
                specs = [replace(spec, limit=s.limit) for spec in specs]
            if s.max_tokens:
                specs = [replace(spec, max_tokens=s.max_tokens) for spec in specs]
        else:
            options = _grader_options(s, cfg, service, where)
            specs = [
                SuiteSpec(
                    s.name,
                    kind=s.kind,
                    file=s.file,
                    benchmark=s.benchmark,
                    grader=s.grader,
                    grader_options=options,
                    limit=s.limit,
                    max_tokens=s.max_tokens,
                )
            ]
        for spec in specs:
            try:
                loaded = load_suite(spec, renderer=renderer.name)
            except EvalError as exc:
                raise ConfigError(f"{where}: {exc}") from None
            rule = _rule(spec.name, s)
            suites.append(
                Suite(
                    spec.name,
                    loaded.examples,
                    loaded.grader,
                    rule,
                    loaded.max_tokens,
                    s.temperature,
                    loaded.suite_hash,
                    loaded.kind,
                    loaded.provenance,
                )
            )
    names = [suite.name for suite in suites]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError(f"suite names {clash} appear twice (a bundle adds <name>-<benchmark>)")
    return suites


def build_context(
    cfg: RunConfig, checkpoint_dir: Path, progress: Callable[[str], None] | None = None
) -> RunContext:
    service = make_service(cfg, checkpoint_dir, progress)
    tokenizer = service.create_sampling_client(base_model=cfg.base_model).result().get_tokenizer()
    renderer = get_renderer(cfg.data.renderer, tokenizer)
    notes: list[str] = []

    suites = build_suites(cfg, renderer, service)
    all_eval = [view for suite in suites for view in leakage_views(suite.examples)]

    train, report = dedupe(load_many(cfg.data.train))
    if report.removed:
        notes.append(f"removed {report.removed} duplicate training examples")
    # By normalised prompt only: ids are often "1", "2", … in both files and would match wrongly.
    train, overlap = remove_overlap(train, all_eval, match_ids=False)
    if overlap.removed:
        notes.append(
            f"dropped {overlap.removed} training examples whose prompt is also in an eval suite"
        )
    validation = load_many(cfg.data.validation) if cfg.data.validation else []
    pool: list[Example] = []
    if cfg.data.pool:
        pool, _ = dedupe(load_many(cfg.data.pool))
        pool, contaminated = clean_pool(pool, all_eval)
        if contaminated:
            notes.append(
                f"removed {len(contaminated)} pool examples that are eval items "
                f"(same id or prompt): {', '.join(contaminated[:5])}"
            )
        train_prompts = {normalise_text(e.prompt) for e in train}
        pool = [e for e in pool if normalise_text(e.prompt) not in train_prompts]
    max_len = cfg.data.max_seq_len
    stats = token_stats(train, renderer, max_len)
    if stats.truncated:
        notes.append(f"{stats.truncated} training examples truncated to {max_len} tokens")
    facts = service.model_facts(cfg.base_model)
    ctx = RunContext(
        service=service,
        tokenizer=tokenizer,
        renderer=renderer,
        train=[],
        validation=[],
        suites=suites,
        learning_rate=_learning_rate(cfg, facts),
        pool=pool,
        max_seq_len=max_len,
        completion_tokens=int(stats.completion_tokens),
        facts=facts,
        notes=notes,
        stats={
            "train_examples": len(train),
            "validation_examples": len(validation),
            "pool_examples": len(pool),
            "tokens": stats.summary(),
        },
    )
    ctx.train_examples = train
    ctx.train = ctx.render(train)
    if not ctx.train:
        raise ConfigError(
            "no training example has completion tokens left after rendering; check data.train "
            "and data.max_seq_len"
        )
    ctx.validation = ctx.render(validation)
    return ctx
