"""Builders: from a validated ``RunConfig`` to the plain objects a run works on.

This is the last place a config is seen. It resolves the backend, loads and checks the data
(deduplicated, eval prompts removed from training), renders training and validation datums, and
loads every eval suite with its grader; below this, functions take plain arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinker import types

from evaltune.config import RunConfig
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
from evaltune.errors import ConfigError
from evaltune.evals import Grader, compute_suite_hash, make_grader
from evaltune.loop.decide import SuiteRule
from evaltune.loop.select import clean_pool
from evaltune.train import auto_learning_rate

__all__ = ["RunContext", "Suite", "build_context", "make_service"]


@dataclass
class Suite:
    name: str
    examples: list[Example]
    grader: Grader
    rule: SuiteRule
    max_tokens: int
    temperature: float
    suite_hash: str


@dataclass
class RunContext:
    service: Any  # a ServiceClient (local or tinker)
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

    def render(self, examples: list[Example]) -> list[types.Datum]:
        """Training datums for ``examples`` (those with no completion token left are skipped)."""
        rendered = (self.renderer.render_example(e, self.max_seq_len) for e in examples)
        return [to_datum(r) for r in rendered if any(r.weights[1:])]

    @property
    def rules(self) -> list[SuiteRule]:
        return [s.rule for s in self.suites]


def make_service(cfg: RunConfig, checkpoint_dir: Path, progress: Callable[[str], None] | None):
    if cfg.backend == "local":
        from evaltune.backends.local import ServiceClient

        return ServiceClient(checkpoint_dir=checkpoint_dir, progress=progress)
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


def build_context(
    cfg: RunConfig, checkpoint_dir: Path, progress: Callable[[str], None] | None = None
) -> RunContext:
    service = make_service(cfg, checkpoint_dir, progress)
    tokenizer = service.create_sampling_client(base_model=cfg.base_model).result().get_tokenizer()
    renderer = get_renderer(cfg.data.renderer, tokenizer)
    notes: list[str] = []

    suites: list[Suite] = []
    all_eval: list[Example] = []
    for s in cfg.evals:
        examples = load_many([s.file])
        if s.limit:
            examples = examples[: s.limit]
        options = {"pattern": s.pattern} if s.pattern else {}
        rule = SuiteRule(s.name, s.metric, s.role, s.threshold, s.tolerance)
        digest = compute_suite_hash(s.file, s.grader, renderer.name, options)
        suites.append(
            Suite(
                s.name,
                examples,
                make_grader(s.grader, **options),
                rule,
                s.max_tokens,
                s.temperature,
                digest,
            )
        )
        all_eval.extend(examples)

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
    facts = service.model_facts(cfg.base_model) if hasattr(service, "model_facts") else {}
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
    ctx.train = ctx.render(train)
    if not ctx.train:
        raise ConfigError(
            "no training example has completion tokens left after rendering; check data.train "
            "and data.max_seq_len"
        )
    ctx.validation = ctx.render(validation)
    return ctx
