"""How a round trains when it does not train SFT: ``rl``, ``dpo`` and ``distill``, each a
``MethodRound`` registered by name in ``METHODS``.

A round's method comes from the plan (``training.method``, a per-round ``training.methods``
schedule, or the ``rl_on_plateau`` policy). SFT stays the runner's own path (it also measures
each tag's training loss for the bandit); the others take the round's examples (the bandit's
new and replayed ones, or the training data and the selection so far) and the client, and
return what the round did. Everything goes through the Tinker contract (``train/``), so each
method runs on the local engine, on ``evaltune serve`` and on Tinker alike:

- ``rl``: the examples' prompts, completions sampled in groups, rewards from the grader of the
  reward suite (``rl.suite``, or the first target suite with a verifiable grader) against each
  example's completion; scored feedback in the run's feedback store is trained too (its
  scores are the rewards);
- ``dpo``: the pairs of ``dpo.pairs`` and of the feedback store, against the round's start;
- ``distill``: on-policy from ``distill.teacher``'s logprobs, or off-policy (the teacher writes
  the completions and the round trains them as SFT data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tinker import types

from evaltune.backends.contract import TrainingClient
from evaltune.config import RunConfig
from evaltune.data import Example
from evaltune.data.dedup import remove_overlap
from evaltune.data.preferences import (
    FEEDBACK_FILE,
    Feedback,
    load_feedback,
    load_preferences,
    pairs_from_scores,
)
from evaltune.errors import ConfigError, TrainingError
from evaltune.evals.generation import sampling_stop
from evaltune.evals.suites import Suite, leakage_views
from evaltune.loop.context import RunContext
from evaltune.train import run_distill_round, run_dpo_round, run_rl_round, run_sft_round
from evaltune.train.dpo import DPOPair
from evaltune.train.rl import policy_step
from evaltune.train.schedule import steps_for_data

__all__ = [
    "FEEDBACK_FILE",
    "METHODS",
    "VERIFIABLE_GRADERS",
    "MethodResult",
    "MethodRound",
    "RoundInputs",
    "method_lr",
    "reward_suite",
    "verifiable_suites",
]

# graders whose score a program computes (no model judges): RL may switch to them by itself
VERIFIABLE_GRADERS = frozenset(
    {
        "exact",
        "normalized",
        "numeric",
        "contains",
        "regex",
        "choice",
        "f1",
        "gsm8k",
        "math",
        "humaneval",
        "ifeval",
        "python",
        "tool_call",
    }
)


@dataclass
class RoundInputs:
    cfg: RunConfig
    ctx: RunContext
    client: TrainingClient
    examples: list[Example]  # the round's examples (new and replayed)
    lr: float
    seed: int
    step_offset: int
    run_path: Path
    on_step: Callable[[dict[str, Any]], None] = lambda event: None
    on_total: Callable[[int], None] = lambda steps: None  # the round's step count, once known


@dataclass
class MethodResult:
    summary: dict[str, Any]
    steps: int
    tokens: int
    notes: list[str] = field(default_factory=list)


class MethodRound(Protocol):
    def __call__(self, inputs: RoundInputs) -> MethodResult: ...


def verifiable_suites(ctx: RunContext) -> list[Suite]:
    """Target suites whose grader a program computes, in config order."""
    return [
        suite
        for suite, rule in ctx.suites
        if rule.role == "target"
        and suite.kind == "generate"
        and suite.provenance.get("grader") in VERIFIABLE_GRADERS
    ]


def reward_suite(cfg: RunConfig, ctx: RunContext) -> Suite:
    if cfg.rl.suite is not None:
        return next(s for s, _ in ctx.suites if s.name == cfg.rl.suite)
    found = verifiable_suites(ctx)
    if not found:
        raise ConfigError(
            "an RL round needs rewards: no target suite has a verifiable grader "
            f"({', '.join(sorted(VERIFIABLE_GRADERS))}); name one with rl.suite"
        )
    return found[0]


def method_lr(cfg: RunConfig, method: str, lr: float) -> float:
    """The learning rate a ``method`` round trains at: the plan's × the method's ``lr_factor``
    (``rl``, ``dpo``; the others train at the plan's)."""
    return lr * {"rl": cfg.rl.lr_factor, "dpo": cfg.dpo.lr_factor}.get(method, 1.0)


def _steps(setting: int | str, n: int, per_step: int, cfg: RunConfig, passes: float = 1.0) -> int:
    if setting != "auto":
        return int(setting)
    return steps_for_data(
        n, per_step, 1, passes, cfg.training.min_steps, cfg.loop.max_steps_per_round
    )


def _prompts(inputs: RoundInputs) -> list[list[int]]:
    renderer = inputs.ctx.renderer
    return [renderer.render_prompt(ex.prompt_messages) for ex in inputs.examples]


def _feedback(run_path: Path) -> tuple[list[Any], list[Feedback]]:
    path = run_path / FEEDBACK_FILE
    return load_feedback([path]) if path.is_file() else ([], [])


def rl_round(inputs: RoundInputs) -> MethodResult:
    cfg, ctx, rl = inputs.cfg, inputs.ctx, inputs.cfg.rl
    suite = reward_suite(cfg, ctx)
    examples = list({ex.id: ex for ex in inputs.examples}.values())
    if not examples:
        raise TrainingError("an RL round needs prompts: the round has no examples")
    renderer = ctx.renderer
    prompts = [renderer.render_prompt(ex.prompt_messages) for ex in examples]
    grader = suite.grader  # type: ignore[attr-defined]

    def reward(indices: Sequence[int], completions: Sequence[Sequence[int]]) -> list[float]:
        out = []
        for j, tokens in zip(indices, completions, strict=True):
            ex = examples[j]
            out.append(float(grader(renderer.parse_response(tokens), ex.completion, ex).score))
        return out

    notes = []
    tokens = 0
    scored = _feedback(inputs.run_path)[1]
    kept = _outside_evals(ctx, [f.prompt for f in scored])
    if len(kept) < len(scored):
        notes.append(
            f"dropped {len(scored) - len(kept)} feedback rows whose prompt is an eval item's"
        )
    scored = [f for i, f in enumerate(scored) if i in kept]
    if scored:
        tokens += _train_feedback(inputs, scored)
        notes.append(f"{len(scored)} scored responses from the feedback store trained as rewards")
    steps = _steps(rl.steps_per_round, len(examples), rl.prompts_per_step, cfg)
    inputs.on_total(steps)
    result = run_rl_round(
        inputs.client,
        prompts,
        reward,
        steps=steps,
        prompts_per_step=rl.prompts_per_step,
        group_size=rl.group_size,
        learning_rate=method_lr(cfg, "rl", inputs.lr),
        seed=inputs.seed,
        loss_fn=rl.loss,
        max_tokens=rl.max_tokens or getattr(suite, "max_tokens", 64),
        temperature=rl.temperature,
        stop=sampling_stop(renderer.stop_sequences) or None,
        normalize=rl.normalize_advantages,
        step_offset=inputs.step_offset,
        weight_decay=cfg.training.weight_decay,
        grad_clip_norm=cfg.training.grad_clip_norm,
        on_step=lambda m: inputs.on_step(m.to_event()),
    )
    summary = {**result.summary(), "reward_suite": suite.name}
    return MethodResult(summary, len(result.steps), result.tokens + tokens, notes)


def _train_feedback(inputs: RoundInputs, scored: Sequence[Feedback]) -> int:
    """One policy-gradient step on the feedback's responses: advantage = score − the mean score
    of the prompt's responses (− 0.5 for a prompt with one), at the current weights (the
    logprobs of a ``forward`` pass stand in for a sampler's, so the ratio starts at 1).
    Returns the tokens trained."""
    renderer = inputs.ctx.renderer
    by_prompt: dict[str, list[Feedback]] = {}
    for f in scored:
        by_prompt.setdefault(f.prompt, []).append(f)
    rows: list[tuple[list[int], list[float], float]] = []
    for prompt, group in by_prompt.items():
        mean = sum(f.score for f in group) / len(group) if len(group) > 1 else 0.5
        for f in group:
            if f.score == mean:
                continue
            r = renderer.render_example(Example.single_turn("feedback", prompt, f.response))
            rows.append((list(r.tokens), [float(w != 0) for w in r.weights[1:]], f.score - mean))
    if not rows:
        return 0
    probe = [
        types.Datum(
            model_input=types.ModelInput.from_ints(tokens[:-1]),
            loss_fn_inputs={"target_tokens": tokens[1:], "weights": mask},
        )
        for tokens, mask, _ in rows
    ]
    current = inputs.client.forward(probe, "cross_entropy").result()
    datums = [
        types.Datum(
            model_input=types.ModelInput.from_ints(tokens[:-1]),
            loss_fn_inputs={
                "target_tokens": tokens[1:],
                "logprobs": [float(x) for x in out["logprobs"].to_numpy()],
                "advantages": [adv * m for m in mask],
            },
        )
        for (tokens, mask, adv), out in zip(rows, current.loss_fn_outputs, strict=True)
    ]
    cfg = inputs.cfg
    step = policy_step(
        inputs.client,
        datums,
        "importance_sampling",
        None,
        method_lr(cfg, "rl", inputs.lr),
        cfg.training.weight_decay,
        cfg.training.grad_clip_norm,
    )
    return int(step["tokens"])


def dpo_round(inputs: RoundInputs) -> MethodResult:
    cfg, ctx = inputs.cfg, inputs.ctx
    prefs = load_preferences(list(cfg.dpo.pairs)) if cfg.dpo.pairs else []
    from_feedback, scored = _feedback(inputs.run_path)
    prefs += from_feedback + pairs_from_scores(scored)
    kept = _outside_evals(ctx, [p.prompt for p in prefs])
    notes = []
    if len(kept) < len(prefs):
        notes.append(f"dropped {len(prefs) - len(kept)} pairs whose prompt is an eval item's")
    prefs = [p for i, p in enumerate(prefs) if i in kept]
    if not prefs:
        raise TrainingError(
            "a DPO round needs preference pairs: set dpo.pairs, or add pairs or scored "
            "responses with `evaltune feedback add RUN FILE`"
        )
    renderer = ctx.renderer
    pairs = []
    for p in prefs:
        prompt = renderer.render_prompt(
            Example.single_turn(p.source, p.prompt, "x").prompt_messages
        )
        pairs.append(
            DPOPair(
                prompt,
                _completion(renderer, p.prompt, p.chosen),
                _completion(renderer, p.prompt, p.rejected),
            )
        )
    steps = _steps(
        cfg.dpo.steps_per_round, len(pairs), cfg.training.batch_size, cfg, cfg.training.passes
    )
    inputs.on_total(steps)
    result = run_dpo_round(
        inputs.client,
        pairs,
        steps=steps,
        batch_size=cfg.training.batch_size,
        learning_rate=method_lr(cfg, "dpo", inputs.lr),
        beta=cfg.dpo.beta,
        seed=inputs.seed,
        step_offset=inputs.step_offset,
        weight_decay=cfg.training.weight_decay,
        grad_clip_norm=cfg.training.grad_clip_norm,
        on_step=lambda m: inputs.on_step(m.to_event()),
    )
    summary = {**result.summary(), "pairs": len(pairs)}
    return MethodResult(summary, len(result.steps), result.tokens, notes)


def _outside_evals(ctx: RunContext, prompts: Sequence[str]) -> set[int]:
    """The indices of ``prompts`` that are no eval suite's prompt (the contamination guard the
    training data gets: normalised prompts, see ``data.dedup``)."""
    views = [view for suite, _ in ctx.suites for view in leakage_views(suite.examples)]
    probes = [Example.single_turn(str(i), text, "-") for i, text in enumerate(prompts)]
    kept, _ = remove_overlap(probes, views, match_ids=False)
    return {int(ex.id) for ex in kept}


def _completion(renderer: Any, prompt: str, completion: str) -> list[int]:
    """The tokens a completion adds after its rendered prompt (its end-of-turn included)."""
    rendered = renderer.render_example(Example.single_turn("p", prompt, completion))
    start = next(i for i, w in enumerate(rendered.weights) if w)
    return list(rendered.tokens[start:])


def distill_round(inputs: RoundInputs) -> MethodResult:
    cfg, ctx, d = inputs.cfg, inputs.ctx, inputs.cfg.distill
    assert d.teacher is not None  # the config requires it for method distill
    teacher = _teacher(ctx, d.teacher)
    prompts = _prompts(inputs)
    if not prompts:
        raise TrainingError("a distillation round needs prompts: the round has no examples")
    stop = sampling_stop(ctx.renderer.stop_sequences) or None
    if d.mode == "off_policy":
        return _off_policy(inputs, teacher, prompts, stop)
    steps = _steps(d.steps_per_round, len(prompts), d.prompts_per_step, cfg)
    inputs.on_total(steps)
    result = run_distill_round(
        inputs.client,
        teacher,
        prompts,
        steps=steps,
        prompts_per_step=d.prompts_per_step,
        learning_rate=inputs.lr,
        seed=inputs.seed,
        kl_coef=d.kl_coef,
        max_tokens=d.max_tokens,
        stop=stop,
        step_offset=inputs.step_offset,
        weight_decay=cfg.training.weight_decay,
        grad_clip_norm=cfg.training.grad_clip_norm,
        on_step=lambda m: inputs.on_step(m.to_event()),
    )
    return MethodResult(
        {**result.summary(), "teacher": d.teacher}, len(result.steps), result.tokens
    )


def _teacher(ctx: RunContext, teacher: str) -> Any:
    """A checkpoint (``tinker://…``, or an adapter folder such as a run's best round) on its
    base model; anything else is a model the backend loads."""
    folder = Path(teacher)
    if teacher.startswith("tinker://") or (folder / "adapter_config.json").is_file():
        return ctx.service.create_sampling_client(model_path=teacher).result()
    return ctx.service.create_sampling_client(base_model=teacher).result()


def _off_policy(
    inputs: RoundInputs, teacher: Any, prompts: list[list[int]], stop: Any
) -> MethodResult:
    """The teacher answers every prompt (greedy); the student trains on the answers (SFT)."""
    cfg, ctx, d = inputs.cfg, inputs.ctx, inputs.cfg.distill
    params = types.SamplingParams(max_tokens=d.max_tokens, temperature=0.0, stop=stop)
    pending = [teacher.sample(types.ModelInput.from_ints(p), 1, params) for p in prompts]
    written = [
        Example.single_turn(
            f"teacher:{ex.id}",
            ex.prompt,
            ctx.renderer.parse_response(f.result().sequences[0].tokens),
        )
        for ex, f in zip(inputs.examples, pending, strict=True)
    ]
    written = [e for e in written if e.completion.strip()]
    datums = ctx.render(written)
    if not datums:
        raise TrainingError("the teacher answered no prompt with any text")
    t = cfg.training
    steps = steps_for_data(
        len(datums), t.batch_size, t.grad_accum, t.passes, t.min_steps, cfg.loop.max_steps_per_round
    )
    inputs.on_total(steps)
    result = run_sft_round(
        inputs.client,
        datums,
        steps=steps,
        batch_size=t.batch_size,
        learning_rate=inputs.lr,
        seed=inputs.seed,
        step_offset=inputs.step_offset,
        grad_accum=t.grad_accum,
        weight_decay=t.weight_decay,
        grad_clip_norm=t.grad_clip_norm,
        on_step=lambda m: inputs.on_step(m.to_event()),
    )
    summary = {
        **result.summary(),
        "method": "distill",
        "mode": "off_policy",
        "teacher": d.teacher,
        "written": len(datums),
    }
    return MethodResult(summary, len(result.steps), result.tokens)


METHODS: dict[str, MethodRound] = {"rl": rl_round, "dpo": dpo_round, "distill": distill_round}
