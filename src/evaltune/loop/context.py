"""Builders: from a validated ``RunConfig`` to the plain objects a run works on.

This is the last place a config is seen. It resolves the backend, loads and checks the data
(deduplicated, eval prompts removed from training), renders training and validation datums, and
loads every eval suite (an ``evals.Suite``: ``GeneratedSuite``, ``NLLSuite`` or
``inspect.InspectSuite``) with the rule the loop judges it by; below this, functions take plain
arguments.

It is also where config learns the names it checks (``CONFIG_NAMES``, installed with
``config.register_names`` on import): grader, benchmark, bundle and policy names, each from the
catalogue of the layer that implements them, since config imports no other layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinker import types

from evaltune.backends.contract import ServiceClient
from evaltune.config import NameCatalog, RunConfig, register_names
from evaltune.config.schema import (
    GRADER_SETTINGS,
    BenchmarkSuiteConfig,
    BundleSuiteConfig,
    EvalSuiteConfig,
    FileSuiteConfig,
    InspectSuiteConfig,
    JudgeConfig,
    NLLSuiteConfig,
)
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
    SamplerChat,
    Suite,
    api_key_from_env,
    leakage_views,
    load_bundle,
    load_nll_suite,
    load_suite,
)
from evaltune.evals.benchmarks import BENCHMARKS, BUNDLES, TEMPLATES
from evaltune.inspect import InspectSuite
from evaltune.loop.decide import SuiteRule
from evaltune.loop.policies import POLICIES
from evaltune.loop.select import clean_pool
from evaltune.train import auto_learning_rate

__all__ = [
    "CONFIG_NAMES",
    "RunContext",
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
class RunContext:
    service: ServiceClient  # local or tinker
    tokenizer: Any
    renderer: Renderer
    train: list[types.Datum]
    validation: list[types.Datum]
    suites: list[tuple[Suite, SuiteRule]]  # each suite with the rule the loop judges it by
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
        return [rule for _, rule in self.suites]


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
    s: FileSuiteConfig | BenchmarkSuiteConfig,
    cfg: RunConfig,
    service: ServiceClient | None,
    where: str,
) -> dict[str, Any]:
    """The grader's options as ``make_grader`` takes them: ``grader_options`` with the grader's
    own key (``GRADER_SETTINGS``); a judge's settings with the backend it samples."""
    options: dict[str, Any] = dict(s.grader_options)
    key = GRADER_SETTINGS.get(s.grader or "")
    if key == "judge" and s.judge is not None:
        options["backend"] = judge_backend(s.judge, cfg, service, where)
        options.update(rubric=s.judge.rubric, min_score=s.judge.min_score)
        options.update(max_score=s.judge.max_score, pass_score=s.judge.pass_score)
    elif key is not None:
        options[key] = getattr(s, key)
    return options


def _rule(name: str, s: EvalSuiteConfig) -> SuiteRule:
    hib = s.higher_is_better if s.higher_is_better is not None else True
    return SuiteRule(name, s.metric, s.role, s.threshold, s.tolerance, hib)


def _load(
    s: EvalSuiteConfig,
    cfg: RunConfig,
    renderer: Renderer,
    service: ServiceClient | None,
    where: str,
) -> list[Suite]:
    """The suites one config entry stands for (a bundle: one per benchmark)."""
    seed = cfg.training.seed
    if isinstance(s, NLLSuiteConfig):
        return [
            load_nll_suite(
                s.name, s.file, renderer=renderer, limit=s.limit, max_seq_len=cfg.data.max_seq_len
            )
        ]
    if isinstance(s, InspectSuiteConfig):  # the task is loaded when it runs (Inspect then)
        return [
            InspectSuite(
                s.name,
                s.inspect,
                renderer,
                cfg.base_model,
                task_args=dict(s.task_args),
                limit=s.limit,
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                seed=seed,
            )
        ]
    if isinstance(s, BundleSuiteConfig):
        return list(
            load_bundle(
                s.name,
                s.bundle,
                renderer=renderer,
                data_dir=s.data_dir,
                limit=s.limit,
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                seed=seed,
            )
        )
    return [
        load_suite(
            s.name,
            renderer=renderer,
            file=s.file,
            benchmark=s.benchmark if isinstance(s, BenchmarkSuiteConfig) else None,
            grader=s.grader,
            grader_options=_grader_options(s, cfg, service, where),
            limit=s.limit,
            max_tokens=s.max_tokens,
            temperature=s.temperature,
            seed=seed,
        )
    ]


def build_suites(
    cfg: RunConfig, renderer: Renderer, service: ServiceClient | None = None
) -> list[tuple[Suite, SuiteRule]]:
    """Every eval suite of ``cfg`` loaded, with its rule (bundles expanded into one suite per
    benchmark, each with the bundle's rule). ``service`` is needed only for a judge that runs on
    the backend."""
    suites: list[tuple[Suite, SuiteRule]] = []
    for i, s in enumerate(cfg.evals):
        where = f"evals[{i}] ({s.name})"
        try:
            loaded = _load(s, cfg, renderer, service, where)
        except EvalError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        suites += [(suite, _rule(suite.name, s)) for suite in loaded]
    names = [suite.name for suite, _ in suites]
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
    all_eval = [view for suite, _ in suites for view in leakage_views(suite.examples)]

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
