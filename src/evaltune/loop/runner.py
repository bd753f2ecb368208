"""The evaluation-driven loop as a persisted state machine.

``baseline → probe → (train+save → evaluate+analyse → decide+plan) × rounds → finish``, the
probe only for ``learning_rate: auto`` (``loop/probe.py``). ``state.json`` is rewritten
atomically after every phase; ``resume`` reads it and continues after the last completed phase.
A round's training is committed together with its checkpoint (``save_state`` with the
optimizer), so a resumed run never repeats a committed optimizer step: an interrupted round
restarts from the previous round's checkpoint, on the same seeded batches.

The decide phase also plans the next round (policies: ``loop/policies.py``) and its data: the
pool examples it adds (``loop/select.py``, targeted or random), or with the ``adaptive``
strategy its new and replayed examples (``loop/adaptive.py``; ``loop/synthesis.py`` when a
tag's pool runs dry). Both are written into the state before the round starts, so a resumed
run trains exactly what the interrupted one would have.

A run that stops on one of our errors (bad data found while building it, a diverged round) is
marked ``failed`` with the reason, its last completed phase intact; ``resume`` runs it again,
optionally with ``training.*`` overrides (a lower learning rate) that apply from the next
round on.

Over 500 lines because every phase lives on one class (``_Loop``), which holds the state they
share, so the order of a run reads in one place; the adaptive data planning (``_round_data``,
``_plan_adaptive``, ``_synthesise``) is the first candidate to move out.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from evaltune import faults
from evaltune.backends.contract import SamplingClient, TrainingClient, service_failure
from evaltune.bridge.checkpoints import CheckpointStore
from evaltune.config import RunConfig, dump_config, load_config
from evaltune.data import Example
from evaltune.data.records import parse_record
from evaltune.errors import BackendError, ConfigError, EvaltuneError, TrainingError
from evaltune.evals import EvalResult, Suite, validation_nll
from evaltune.loop.adaptive import plan_round_data, tag_train_loss
from evaltune.loop.allocate import ALL
from evaltune.loop.analysis import analyse_round
from evaltune.loop.context import RunContext, build_context
from evaltune.loop.decide import choose_best, decide_next, guards_hold, targets_met
from evaltune.loop.methods import METHODS, RoundInputs, method_lr, verifiable_suites
from evaltune.loop.noise import compare_rounds
from evaltune.loop.policies import Plan, capacity_advice, lora_parameter_count, next_plan
from evaltune.loop.probe import probe_learning_rate
from evaltune.loop.publish import Publisher
from evaltune.loop.reporter import NullReporter, Reporter
from evaltune.loop.select import select_random, select_targeted, tag_weakness
from evaltune.loop.state import Phase, RunState, baseline_of, new_round
from evaltune.loop.summary import write_summary
from evaltune.loop.synthesis import Synthesiser, example_to_record
from evaltune.tracking import RunDir
from evaltune.tracking.run_dir import json_text
from evaltune.train import StepMetrics, run_sft_round, steps_for_data

__all__ = ["resume_run", "run_loop", "start_run"]

STATE = "state.json"


def start_run(cfg: RunConfig, reporter: Reporter | None = None) -> RunDir:
    """Create the run folder with its config snapshot and an initial state."""
    workspace = Path(cfg.output.workspace) if cfg.output.workspace else Path.cwd()
    run = RunDir.create(
        workspace,
        cfg.output.run_name or Path(cfg.data.train[0]).stem,
        lambda run_id: {
            "config.yaml": dump_config(cfg),
            STATE: json_text(RunState(run_id).to_json()),
        },
    )
    run.event("run_started", run_id=run.run_id, base_model=cfg.base_model)
    (reporter or NullReporter()).message(f"run folder: {run.path.resolve()}")
    return run


def run_loop(cfg: RunConfig, reporter: Reporter | None = None) -> RunDir:
    run = start_run(cfg, reporter)
    _execute(run, cfg, reporter or NullReporter())
    return run


def resume_run(
    path: Path, reporter: Reporter | None = None, overrides: Sequence[str] = ()
) -> RunDir:
    """Continue after the last completed phase; ``overrides`` (``training.*`` only) change the
    run's config from the next round on and are written into its ``config.yaml``."""
    run = RunDir.open(path)
    bad = [o for o in overrides if not o.strip().startswith("training.")]
    if bad:
        raise ConfigError(
            f"resume takes overrides of training.* only; found {', '.join(map(repr, bad))}: "
            "anything else changes what the run's earlier rounds mean, so start a new run"
        )
    cfg = load_config(run.path / "config.yaml", overrides)
    state = RunState.from_json(run.read_json(STATE))
    rep = reporter or NullReporter()
    if state.status == "finished":
        rep.message(f"run already finished ({state.stop_reason}); nothing to resume")
        return run
    if state.status == "failed":
        rep.message(f"the last attempt failed: {state.error}")
    state.status, state.error = "running", None
    try:
        if overrides:
            _apply_overrides(run, cfg, state)
        run.write_json(STATE, state.to_json())
    except OSError as exc:
        raise _write_refused(run, exc, ", untouched") from exc
    rep.message(f"resuming {run.path}" + (f" with {' '.join(overrides)}" if overrides else ""))
    run.event("run_resumed", overrides=list(overrides))
    _execute(run, cfg, rep)
    return run


def _apply_overrides(run: RunDir, cfg: RunConfig, state: RunState) -> None:
    """Write the overridden config and carry a new learning rate or step count into the
    pending plan (the next round's): the policies go on from there."""
    run.write_text("config.yaml", dump_config(cfg))
    t = cfg.training
    if state.plan is not None and t.learning_rate != "auto":
        state.plan["lr"] = t.learning_rate
    if state.plan is not None and t.steps_per_round != "auto":
        state.plan["steps"] = t.steps_per_round


class _Loop:
    def __init__(
        self, run: RunDir, cfg: RunConfig, ctx: RunContext, rep: Reporter, publisher: Publisher
    ) -> None:
        self.run, self.cfg, self.ctx, self.rep = run, cfg, ctx, rep
        self.publisher = publisher  # registry and sinks (loop/publish.py)
        publisher.rules = ctx.rules
        self.state = RunState.from_json(run.read_json(STATE))
        self.training_client: TrainingClient | None = None
        self.client_rank: int | None = None
        self.pool = {e.id: e for e in ctx.pool}
        # adaptive: every example by key: the seed set, the pool, what was generated
        self.examples: dict[str, Example] = {f"seed:{e.id}": e for e in ctx.train_examples}
        for record in self.state.generated:  # generated examples join the pool
            self.pool[record["id"]] = parse_record(
                record, source="state.json (generated)", default_id=record["id"]
            )
        self.examples.update(self.pool)
        sel = cfg.loop.selection
        self.adaptive = sel.strategy == "adaptive" or (
            sel.strategy == "auto" and bool(ctx.pool or sel.synthesis)
        )
        self.base_lr = (self.state.probe or {}).get("chosen", ctx.learning_rate)
        self.synthesiser: Synthesiser | None = None

    def save(self) -> None:
        self.run.write_json(STATE, self.state.to_json())
        retried = faults.drain()
        if retried:
            self.rep.message(f"backend: {faults.describe(retried)}")
            self.run.event("retries", counts=retried)

    @property
    def rounds(self) -> list[dict[str, Any]]:
        return self.state.rounds

    # -- evaluate ---------------------------------------------------------------------------
    def evaluate(
        self, k: int, sampler: SamplingClient, model_path: str | None
    ) -> dict[str, EvalResult]:
        results: dict[str, EvalResult] = {}
        for suite, rule in self.ctx.suites:
            result = self._eval_suite(k, suite, sampler, model_path)
            results[suite.name] = result
            m = result.metrics
            goal = f" · threshold {rule.threshold}" if rule.threshold is not None else ""
            self.rep.message(
                f"round {k} · {suite.name}: {rule.metric} "
                f"{m.get(rule.metric, 0):.3f} (n={int(m.get('n', 0))}){goal}"
            )
        return results

    def _eval_suite(
        self, k: int, suite: Suite, sampler: SamplingClient, model_path: str | None
    ) -> EvalResult:
        task = f"eval-{k}-{suite.name}"
        self.rep.start(task, f"round {k} · eval {suite.name}", len(suite.examples))
        result = suite.evaluate(
            sampler,
            model_path=model_path,
            progress=lambda done, total: self.rep.advance(task, done),
            log_dir=self.run.round_dir(k) / "eval" / "inspect",  # Inspect tasks' logs
        )
        self.rep.finish(task)
        result.write_jsonl(self.run.round_dir(k) / "eval" / f"{suite.name}.jsonl")
        self.run.event("eval", round=k, suite=suite.name, **result.to_metrics(f"eval/{suite.name}"))
        return result

    def _results(self, k: int) -> dict[str, EvalResult]:
        folder = self.run.path / "rounds" / str(k) / "eval"
        return {
            s.name: EvalResult.read_jsonl(folder / f"{s.name}.jsonl") for s, _ in self.ctx.suites
        }

    def _analyse(self, k: int, results: dict[str, EvalResult]) -> None:
        similarity = self.cfg.loop.selection.similarity
        analysis = analyse_round(self.rounds, self.ctx.rules, results, similarity)
        self.run.write_json(f"rounds/{k}/analysis.json", analysis)

    def baseline(self) -> None:
        self.rep.message(f"round 0 · evaluating the base model {self.cfg.base_model}")
        sampler = self.ctx.service.create_sampling_client(base_model=self.cfg.base_model).result()
        results = self.evaluate(0, sampler, None)
        record = new_round(
            0, Phase.EVALUATED, evals={name: r.summary() for name, r in results.items()}
        )
        record["targets_met"] = targets_met(record, self.ctx.rules)
        self.rounds.append(record)
        self._analyse(0, results)
        self.save()

    # -- train ------------------------------------------------------------------------------
    def _training_client(self, plan: Plan) -> TrainingClient:
        svc, lora = self.ctx.service, self.cfg.lora
        if plan.fresh_adapter or plan.restart_from or self.client_rank != plan.rank:
            self.training_client = None
        if self.training_client is None:
            start = plan.restart_from or (
                None if plan.fresh_adapter else self.state.last_state_path
            )
            if start:
                self.training_client = svc.create_training_client_from_state_with_optimizer(
                    start
                ).result()
            else:
                self.training_client = svc.create_lora_training_client(
                    self.cfg.base_model,
                    rank=plan.rank,
                    seed=self.cfg.training.seed,
                    train_mlp=lora.train_mlp,
                    train_attn=lora.train_attn,
                    train_unembed=lora.train_unembed,
                ).result()
            self.client_rank = plan.rank
        return self.training_client

    def _plan(self) -> Plan:
        if self.state.plan is None:
            t = self.cfg.training
            steps = 0 if t.steps_per_round == "auto" else t.steps_per_round  # 0: follow the data
            method = t.methods[0] if t.methods else t.method
            self.state.plan = asdict(
                Plan(self.ctx.learning_rate, steps, self.cfg.lora.rank, method=method)
            )
        return Plan(**self.state.plan)

    def _steps(self, plan: Plan, n: int, replay: int = 0) -> int:
        """A fixed ``steps_per_round`` (or what a policy made of it), or steps that follow the
        round's data: ``passes`` over its ``n`` new examples and one over its ``replay``
        earlier ones, within [min_steps, max]."""
        t = self.cfg.training
        if t.steps_per_round != "auto":
            return plan.steps
        return steps_for_data(
            n,
            t.batch_size,
            t.grad_accum,
            t.passes,
            t.min_steps,
            self.cfg.loop.max_steps_per_round,
            replay=replay,
        )

    def train(self, k: int) -> dict[str, Any]:
        t, plan = self.cfg.training, self._plan()
        if plan.method != "sft":
            return self._train_method(k, plan)
        data = self.state.round_data if self.adaptive else None
        if data is not None:
            keys = data["new"] + data["replay"]
            datums = self.ctx.render([self.examples[key] for key in keys])
            added = [key for key in data["new"] if not key.startswith("seed:")]
            # passes over what is new, one over the replay; a round with nothing new
            # (consolidation) takes its passes over the replay
            n_new, n_replay = len(data["new"]), len(data["replay"])
            steps = self._steps(plan, n_new, n_replay) if n_new else self._steps(plan, n_replay)
        else:
            added_ex = [self.pool[i] for i in self.state.selected_ids if i in self.pool]
            datums = self.ctx.train + self.ctx.render(added_ex)
            added = [e.id for e in added_ex]
            steps = self._steps(plan, len(datums))
        plan = Plan(plan.lr, steps, plan.rank, plan.restart_from, plan.fresh_adapter)
        seed = t.seed * 1000 + k
        self.rep.message(
            f"round {k} · training {steps} steps on {len(datums)} examples at lr {plan.lr:.3g}"
            f" (rank {plan.rank})"
        )
        self.run.write_json(
            f"rounds/{k}/plan.json",
            {
                "round": k,
                **asdict(plan),
                "batch_size": t.batch_size,
                "grad_accum": t.grad_accum,
                "seed": seed,
                "train_examples": len(datums),
                "pool_examples": len(added),
                **(
                    {"new_examples": len(data["new"]), "replay_examples": len(data["replay"])}
                    if data is not None
                    else {}
                ),
            },
        )
        tc = self._training_client(plan)
        task = f"train-{k}"
        self.rep.start(task, f"round {k} · train", plan.steps)

        def on_step(m: StepMetrics) -> None:
            self.run.event("step", round=k, **m.to_event())
            self.rep.advance(
                task,
                m.step - self.state.global_step,
                f"loss {m.loss:.3f} · {m.tokens_per_s:.0f} tok/s",
            )

        result = run_sft_round(
            tc,
            datums,
            steps=plan.steps,
            batch_size=t.batch_size,
            learning_rate=plan.lr,
            seed=seed,
            step_offset=self.state.global_step,
            grad_accum=t.grad_accum,
            schedule=t.schedule,
            warmup_steps=t.warmup_steps,
            weight_decay=t.weight_decay,
            grad_clip_norm=t.grad_clip_norm,
            on_step=on_step,
        )
        self.rep.finish(task)
        state_path = tc.save_state(f"round-{k}", overwrite=True).result().path
        sampler_path = tc.save_weights_for_sampler(f"round-{k}").result().path
        self.run.write_json(
            f"rounds/{k}/train.json",
            {**result.summary(), "steps": [asdict(s) for s in result.steps]},
        )
        self.state.global_step += plan.steps
        self.state.tokens += result.tokens
        self.state.last_state_path = state_path
        checkpoint = {"state": state_path, "sampler": sampler_path}
        folder = CheckpointStore(self.run.checkpoints).local_folder(sampler_path)
        if folder is not None:  # the PEFT adapter folder on this machine, for the report
            checkpoint["sampler_folder"] = str(folder)
        record = new_round(
            k,
            Phase.TRAINED,
            lr=plan.lr,
            steps=plan.steps,
            rank=plan.rank,
            train=result.summary(),
            checkpoint=checkpoint,
        )
        if data is not None:
            record["data"] = {
                "new": len(data["new"]),
                "replay": len(data["replay"]),
                "by_tag": data["by_tag"],
                "quotas": data["quotas"],
            }
            if result.example_loss:  # how well each tag's own examples are fitted
                record["train"]["per_tag_loss"] = {
                    t: round(v, 4)
                    for t, v in tag_train_loss(
                        keys,
                        result.example_loss,
                        self.examples,
                        data["states"],
                        data.get("inferred", {}),
                    ).items()
                }
            self.state.trained += [key for key in data["new"] if key not in self.state.trained]
            self.state.round_data = None
        return record

    def _round_examples(self) -> list[Example]:
        """The examples a round trains on: the bandit's new and replayed ones, or the training
        data and the pool selection so far."""
        data = self.state.round_data if self.adaptive else None
        if data is not None:
            return [self.examples[key] for key in dict.fromkeys(data["new"] + data["replay"])]
        added = [self.pool[i] for i in self.state.selected_ids if i in self.pool]
        return [*self.ctx.train_examples, *added]

    def _train_method(self, k: int, plan: Plan) -> dict[str, Any]:
        """A round of ``rl``, ``dpo`` or ``distill`` (``loop/methods.py``)."""
        examples = self._round_examples()
        lr = method_lr(self.cfg, plan.method, plan.lr)
        self.rep.message(
            f"round {k} · training with {plan.method} on {len(examples)} examples at lr "
            f"{lr:.3g} (rank {plan.rank})"
        )
        tc = self._training_client(plan)
        task = f"train-{k}"
        done = 0

        def on_total(total: int) -> None:  # the bar starts once the method knows its steps
            self.rep.start(task, f"round {k} · {plan.method}", total)

        steps: list[dict[str, Any]] = []

        def on_step(event: dict[str, Any]) -> None:
            nonlocal done
            done += 1
            self.run.event("step", round=k, **event)
            shown = {key.split("/")[-1]: v for key, v in event.items()}
            steps.append(shown)
            info = ", ".join(
                f"{name} {shown[name]:.3g}"
                for name in ("reward", "loss", "margin", "reverse_kl")
                if isinstance(shown.get(name), float)
            )
            self.rep.advance(task, done, info)

        seed = self.cfg.training.seed * 1000 + k
        result = METHODS[plan.method](
            RoundInputs(
                cfg=self.cfg,
                ctx=self.ctx,
                client=tc,
                examples=examples,
                lr=plan.lr,
                seed=seed,
                step_offset=self.state.global_step,
                run_path=self.run.path,
                on_step=on_step,
                on_total=on_total,
            )
        )
        self.rep.finish(task)
        for note in result.notes:
            self.rep.message(f"round {k} · {note}")
        plan = Plan(
            plan.lr, result.steps, plan.rank, plan.restart_from, plan.fresh_adapter, plan.method
        )
        self.run.write_json(
            f"rounds/{k}/plan.json",
            {"round": k, **asdict(plan), "seed": seed, "train_examples": len(examples)},
        )
        state_path = tc.save_state(f"round-{k}", overwrite=True).result().path
        sampler_path = tc.save_weights_for_sampler(f"round-{k}").result().path
        self.run.write_json(f"rounds/{k}/train.json", {**result.summary, "steps": steps})
        self.state.global_step += result.steps
        self.state.tokens += result.tokens
        self.state.last_state_path = state_path
        checkpoint = {"state": state_path, "sampler": sampler_path}
        folder = CheckpointStore(self.run.checkpoints).local_folder(sampler_path)
        if folder is not None:
            checkpoint["sampler_folder"] = str(folder)
        data = self.state.round_data if self.adaptive else None
        record = new_round(
            k,
            Phase.TRAINED,
            lr=plan.lr,
            steps=result.steps,
            rank=plan.rank,
            train=result.summary,
            checkpoint=checkpoint,
            method=plan.method,
        )
        if data is not None:
            record["data"] = {
                "new": len(data["new"]),
                "replay": len(data["replay"]),
                "by_tag": data["by_tag"],
                "quotas": data["quotas"],
            }
            self.state.trained += [key for key in data["new"] if key not in self.state.trained]
            self.state.round_data = None
        return record

    def evaluate_round(self, record: dict[str, Any]) -> None:
        k = record["round"]
        sampler_path = record["checkpoint"]["sampler"]
        sampler = self.ctx.service.create_sampling_client(model_path=sampler_path).result()
        results = self.evaluate(k, sampler, sampler_path)
        record["evals"] = {name: r.summary() for name, r in results.items()}
        if self.ctx.validation:
            if self.training_client is None:  # resumed after training: reload what was saved
                self.training_client = self.ctx.service.create_training_client_from_state(
                    record["checkpoint"]["state"]
                ).result()
                self.client_rank = record.get("rank")
            nll = validation_nll(self.training_client, self.ctx.validation)
            record["val_nll"] = nll.mean_nll
            self.run.event("val_nll", round=k, value=nll.mean_nll)
        baseline = baseline_of(self.rounds)
        record["targets_met"] = targets_met(record, self.ctx.rules)
        record["guards_hold"] = guards_hold(record, baseline, self.ctx.rules)
        record["vs_best"] = self._vs_best(record, results)
        record["phase"] = Phase.EVALUATED
        self._analyse(k, results)

    def _vs_best(self, record: dict[str, Any], results: dict[str, EvalResult]) -> Any:
        """This round against the best earlier one (the baseline before any), paired by item."""
        earlier = [r for r in self.rounds if r["round"] < record["round"] and r.get("evals")]
        best = choose_best(earlier, self.ctx.rules) or baseline_of(earlier)
        if best is None:
            return None
        targets = [s.name for s in self._target_suites()]
        cmp = compare_rounds(
            results,
            self._results(best["round"]),
            targets,
            best["round"],
            self.cfg.loop.significance,
        )
        return cmp.to_json() if cmp else None

    # -- decide -----------------------------------------------------------------------------
    def decide(self, record: dict[str, Any]) -> None:
        loop = self.cfg.loop
        b = loop.budget
        d = decide_next(
            self.rounds,
            self.ctx.rules,
            max_rounds=loop.max_rounds,
            lr=record["lr"],
            lr_decay=loop.lr_decay,
            stop_on_target=loop.stop_on_target,
            plateau_rounds=loop.plateau_rounds,
            min_improvement=loop.min_improvement,
            # Budgets are hard limits: a round is not started if, judged by the last one,
            # it would go past any of them.
            spent={
                "steps": self.state.global_step + record["steps"],
                "tokens": self.state.tokens + (record["train"] or {}).get("tokens", 0),
                "seconds": time.time()
                - self.state.started_at
                + ((record["train"] or {}).get("seconds") or 0.0),
            },
            limits={"steps": b.max_steps, "tokens": b.max_tokens, "seconds": b.max_seconds},
        )
        record["decision"] = asdict(d)
        if d.stop:
            self.state.stop_reason = d.reason
            self.rep.message(f"round {record['round']} · decision: {d.reason} — {d.note}")
        else:
            self._plan_next(record)
        record["phase"] = Phase.DECIDED
        self.run.event("decision", round=record["round"], **record["decision"])

    def _plan_next(self, record: dict[str, Any]) -> None:
        loop, lora = self.cfg.loop, self.cfg.lora
        params = lora_parameter_count(
            self.ctx.facts, self._plan().rank, lora.train_attn, lora.train_mlp, lora.train_unembed
        )
        plan, notes = next_plan(
            self._plan(),
            self.rounds,
            self.ctx.rules,
            policies=loop.policies,
            loop=loop.model_dump(),
            base_lr=self.base_lr,
            lora_params=params,
            completion_tokens=self.ctx.completion_tokens,
            verifiable=[suite.name for suite in verifiable_suites(self.ctx)],
        )
        schedule = self.cfg.training.methods
        if record["round"] < len(schedule) and schedule[record["round"]] != plan.method:
            plan = replace(plan, method=schedule[record["round"]])
            notes.append(f"schedule: round {record['round'] + 1} trains with {plan.method}")
        self.state.plan = asdict(plan)
        if self.adaptive:
            self._plan_adaptive(record, plan, notes)
            return
        selection = self._select(record["round"])
        if selection:
            self.state.selected_ids += [s["id"] for s in selection["added"]]
            notes.append(
                f"selection ({selection['strategy']}): +{len(selection['added'])} pool "
                f"examples, weak tags {', '.join(selection['weak_tags']) or '–'}"
            )
        record["decision"]["note"] = "; ".join(notes) or f"train round {record['round'] + 1}"
        record["next_plan"] = asdict(plan)
        record["selection"] = selection
        self.rep.message(
            f"round {record['round']} · decision: continue — {record['decision']['note']}"
        )

    def _select(self, k: int) -> dict[str, Any] | None:
        sel = self.cfg.loop.selection
        used = set(self.state.selected_ids)
        available = [e for e in self.ctx.pool if e.id not in used]
        if sel.strategy == "none" or not available:
            return None
        targets = [s for s, rule in self.ctx.suites if rule.role == "target"]
        results = self._results(k)
        per_tag = {
            s.name: {t: v["accuracy"] for t, v in results[s.name].per_tag.items()} for s in targets
        }
        weakness = tag_weakness(per_tag)
        if sel.strategy == "random":
            chosen = select_random(available, sel.budget, seed=self.cfg.training.seed * 1000 + k)
        else:
            failed = [r.prompt for s in targets for r in results[s.name].records if not r.correct]
            chosen = select_targeted(
                available,
                failed,
                weakness,
                sel.budget,
                tag_weight=sel.tag_weight,
                similarity=sel.similarity,
            )
        weak = sorted(weakness, key=lambda t: -weakness[t])[:3]
        return {
            "strategy": chosen.strategy,
            "method": chosen.method,
            "weak_tags": weak,
            "weakness": {t: round(v, 4) for t, v in weakness.items()},
            "added": chosen.describe(),
        }

    # -- learning-rate probe ----------------------------------------------------------------
    def probe(self) -> None:
        t, lora = self.cfg.training, self.cfg.lora
        if t.learning_rate != "auto" or not t.lr_probe or self.state.probe is not None:
            return
        task = "probe"
        factors = sorted(set(t.probe_factors))
        self.rep.start(task, "learning-rate probe", len(factors))

        def make_client() -> TrainingClient:
            return self.ctx.service.create_lora_training_client(
                self.cfg.base_model,
                rank=self._plan().rank,
                seed=t.seed,
                train_mlp=lora.train_mlp,
                train_attn=lora.train_attn,
                train_unembed=lora.train_unembed,
            ).result()

        done = 0

        def on_candidate(c: dict[str, float]) -> None:
            nonlocal done
            done += 1
            self.rep.advance(task, done, f"lr {c['lr']:.3g}: val NLL {c['val_nll']:.3f}")

        result = probe_learning_rate(
            make_client,
            self.ctx.train,
            self.ctx.learning_rate,
            factors=factors,
            steps=t.probe_steps,
            batch_size=t.batch_size,
            seed=t.seed,
            on_candidate=on_candidate,
        )
        self.rep.finish(task)
        if result is None:
            self.state.probe = {"skipped": "fewer than 5 training examples"}
            return
        self.state.probe = result.to_json()
        self.state.tokens += result.tokens
        self.base_lr = result.chosen
        self.state.plan = {**self.state.plan, "lr": result.chosen}
        self.run.write_json("probe.json", result.to_json())
        self.run.event("lr_probe", **{"chosen": result.chosen, "base": result.base})
        tried = ", ".join(f"{c['lr']:.3g} → {c['val_nll']:.3f}" for c in result.candidates)
        self.rep.message(
            f"learning-rate probe (val NLL on {result.held_out} held-out training examples): "
            f"{tried}; using {result.chosen:.3g}"
        )

    # -- adaptive selection -----------------------------------------------------------------
    def _target_suites(self) -> list[Suite]:
        return [s for s, rule in self.ctx.suites if rule.role == "target" and s.kind != "nll"]

    def _failed_by_tag(self, k: int) -> dict[str, list[str]]:
        if not any(r["round"] == k for r in self.rounds):
            return {}
        results = self._results(k)
        out: dict[str, list[str]] = {}
        for suite in self._target_suites():
            for r in results[suite.name].records:
                if not r.correct:
                    for tag in r.tags or (ALL,):
                        out.setdefault(tag, []).append(r.prompt)
        return out

    def _eval_prompts(self) -> dict[str, list[str]]:
        """The target suites' prompts by tag: where untagged pool examples may belong."""
        out: dict[str, list[str]] = {}
        for suite in self._target_suites():
            for ex in suite.examples:
                for tag in ex.tags:
                    out.setdefault(tag, []).append(ex.prompt)
        return out

    def _synthesise(self) -> Synthesiser | None:
        syn = self.cfg.loop.selection.synthesis
        if syn is None:
            return None
        if self.synthesiser is None:
            chat = None
            if syn.model is not None:
                from evaltune.config.schema import JudgeConfig
                from evaltune.loop.context import judge_backend

                judge = JudgeConfig(
                    model=syn.model,
                    base_url=syn.base_url,
                    api_key_env=syn.api_key_env,
                    max_tokens=syn.max_tokens,
                )
                chat = judge_backend(judge, self.cfg, self.ctx.service, "loop.selection.synthesis")
            self.synthesiser = Synthesiser(
                generator=syn.generator,
                chat=chat,
                known_prompts=[e.prompt for e in self.examples.values()],
                eval_prompts=[e.prompt for s, _ in self.ctx.suites for e in s.examples],
                per_tag=syn.per_tag,
            )
        return self.synthesiser

    def _round_data(self, k: int, first: list[str], fresh: bool) -> Any:
        sel = self.cfg.loop.selection
        trained = set(self.state.trained)
        available = [i for i in self.pool if i not in trained]
        rank = self._plan().rank
        frozen = frozenset(t for t, r in self.state.stalled.items() if r == rank)
        data = plan_round_data(
            rounds=self.rounds,
            suites=[s.name for s in self._target_suites()],
            examples=self.examples,
            trained=self.state.trained,
            available=available,
            failed_by_tag=self._failed_by_tag(k),
            budget=sel.budget,
            replay=sel.replay,
            stall_rounds=sel.stall_rounds,
            explore=sel.explore,
            fitted_loss=sel.fitted_loss,
            frozen=frozen,
            seed=self.cfg.training.seed * 1000 + k,
            similarity=sel.similarity,
            synthesise=self._synthesise(),
            first=first,
            min_examples=2 * self.cfg.training.batch_size * self.cfg.training.grad_accum,
            eval_prompts=self._eval_prompts(),
        )
        for ex in data.generated:  # what this round does not use stays in the pool
            self.examples[ex.id] = self.pool[ex.id] = ex
            self.state.generated.append(
                {"id": ex.id, **example_to_record(ex), "generated": ex.metadata.get("generated")}
            )
        if fresh:  # a new adapter has learned nothing yet: everything trained so far again
            data.replay = [key for key in self.state.trained if key not in data.new]
        for tag, st in data.states.items():
            if st["status"] == "stalled":
                self.state.stalled[tag] = rank
        self.state.round_data = data.to_json()
        if self.synthesiser is not None:
            syn = self.synthesiser
            data.synthesis = {
                "made": len(data.generated),
                "rejected": dict(syn.rejected),
                "errors": list(syn.errors),
            }
            syn.errors.clear()
        return data

    def _describe(self, data: Any) -> dict[str, Any]:
        return {
            "strategy": "adaptive",
            "quotas": data.quotas,
            "states": data.states,
            "replay": len(data.replay),
            "synthesis": data.synthesis,
            "added": [
                {
                    "id": key,
                    "tags": list(self.examples[key].tags)
                    or ([f"{data.inferred[key]} (inferred)"] if key in data.inferred else []),
                    "prompt": self.examples[key].prompt,
                    "score": round(data.closeness.get(key, 0.0), 4),
                    "generated": bool(self.examples[key].metadata.get("generated")),
                }
                for key in data.new
                if not key.startswith("seed:")
            ],
            "weak_tags": sorted(data.quotas, key=lambda t: -data.quotas[t])[:3],
            "weakness": {t: round(1 - st["accuracy"], 4) for t, st in data.states.items()},
            "method": "",
        }

    def _plan_first_round(self) -> None:
        seed_keys = [f"seed:{e.id}" for e in self.ctx.train_examples]
        data = self._round_data(0, seed_keys, fresh=False)
        baseline = baseline_of(self.rounds)
        if baseline is not None:
            baseline["selection"] = self._describe(data)
        quotas = ", ".join(f"{t} {q}" for t, q in sorted(data.quotas.items())) or "none"
        self.rep.message(
            f"round 1 · data: {len(seed_keys)} seed + {len(data.new) - len(seed_keys)} pool "
            f"examples ({quotas})"
        )

    def _plan_adaptive(self, record: dict[str, Any], plan: Plan, notes: list[str]) -> None:
        k = record["round"]
        data = self._round_data(k, [], fresh=plan.fresh_adapter)
        selection = self._describe(data)
        stalled = [t for t, st in data.states.items() if st["status"] == "stalled"]
        new_pool = len(data.new)
        if new_pool == 0 and not plan.fresh_adapter and plan.method == "sft":
            # Nothing new to add: consolidation rounds (more passes over everything not
            # stalled) go on until the plateau rule stops them, unless the data is memorised.
            # ... but a tag that can still gain whose own examples are not fitted yet
            # (``underfit``) is not memorised, whatever the batch loss says: more passes
            # over its examples are what it needs.
            loss = (record.get("train") or {}).get("final_loss")
            memorised = loss is not None and loss < self.cfg.loop.overfit_loss
            learning = [t for t, st in data.states.items() if st.get("underfit")]
            improved = (record.get("vs_best") or {}).get("verdict") == "better"
            why = None
            if memorised and not improved and not learning:
                why, reason = f"its training loss is {loss:.3g}: memorised", "memorised"
            elif not data.replay:
                why, reason = "nothing is left to replay", "no_new_data"
            if why is not None:
                self.state.stop_reason = reason
                record["decision"] = {
                    **record["decision"],
                    "stop": True,
                    "reason": reason,
                    "note": f"no new examples for any tag that can still gain, and {why}",
                }
                record["selection"] = selection
                self.state.round_data = None
                self.rep.message(f"round {k} · decision: {reason} — {record['decision']['note']}")
                return
        quotas = ", ".join(f"{t} +{q}" for t, q in sorted(data.quotas.items()))
        notes.append(
            f"data: {new_pool} new ({quotas or 'none'}), {len(data.replay)} replayed"
            + (f"; stalled: {', '.join(stalled)}" if stalled else "")
        )
        record["decision"]["note"] = "; ".join(notes)
        record["next_plan"] = asdict(plan)
        record["selection"] = selection
        self.rep.message(f"round {k} · decision: continue — {record['decision']['note']}")

    # -- driver -----------------------------------------------------------------------------
    def execute(self) -> None:
        if self.cfg.loop.eval_baseline and baseline_of(self.rounds) is None:
            self.baseline()
            self.publisher.round(baseline_of(self.rounds))
        self._plan()
        if not any(r["round"] > 0 for r in self.rounds):
            self.probe()
            if self.adaptive and self.state.round_data is None:
                self._plan_first_round()
        self.save()
        while self.state.stop_reason is None:
            last = self.rounds[-1] if self.rounds and self.rounds[-1]["round"] > 0 else None
            if last is None or last["phase"] == Phase.DECIDED:
                k = (last["round"] if last else 0) + 1
                self.rounds.append(self.train(k))
            elif last["phase"] == Phase.TRAINED:
                self.evaluate_round(last)
            elif last["phase"] == Phase.EVALUATED:
                self.decide(last)
                self.save()
                self.publisher.round(last)  # the round's results to the sinks
                continue
            self.save()
        self.finish()

    def finish(self) -> None:
        best = choose_best(self.rounds, self.ctx.rules)
        self.state.best_round = best["round"] if best else None
        self.state.status = "finished"
        self.state.finished_at = time.time()
        # Summary and report first, state last: a kill in between leaves the run resumable
        # (status still "running" on disk with its stop_reason set), and resume finishes it.
        summary = write_summary(self.run, self.cfg, self.state.to_json(), self.ctx)
        # registry and sinks before the state says finished: a kill here finishes (and
        # registers, once) again on resume
        self.publisher.finish(summary)
        self.save()
        self.run.event(
            "run_finished",
            stop_reason=self.state.stop_reason,
            best_round=self.state.best_round,
        )
        self.rep.message(
            f"finished: {self.state.stop_reason}; best round "
            f"{self.state.best_round}; report: {self.run.path / 'report.md'}"
        )


def _execute(run: RunDir, cfg: RunConfig, rep: Reporter) -> None:
    publisher = Publisher.open(run, cfg, rep.message)  # the registry and the sinks
    try:
        _run_phases(run, cfg, rep, publisher)
    except BaseException as exc:
        publisher.failed(exc)  # run_failed alert; the sinks close their run
        raise


def _run_phases(run: RunDir, cfg: RunConfig, rep: Reporter, publisher: Publisher) -> None:
    faults.drain()  # retries before this run (another run in this process) are not its own
    try:
        _build_and_run(run, cfg, rep, publisher)
    except TrainingError as exc:
        _mark_failed(run, str(exc))
        raise TrainingError(
            f"{exc}; then continue the run from its last completed phase: evaltune resume "
            f"{run.path} training.learning_rate=<lower>"
        ) from exc
    except BackendError as exc:
        raise _backend_failed(run, exc) from exc
    except EvaltuneError as exc:
        _mark_failed(run, str(exc))
        raise
    except ConnectionError as exc:  # a socket outside the SDK's retries (an OSError too)
        raise _backend_failed(run, BackendError(f"connection lost: {exc}")) from exc
    except OSError as exc:  # a full disk, an unwritable folder: the OS refused a write
        marked = _mark_failed(run, f"could not write: {_os_what(exc)}")
        note = "" if marked else " (its status could not be set to failed either)"
        raise _write_refused(run, exc, note) from exc
    except Exception as exc:
        failure = service_failure(exc)  # the SDK's errors, once its retries are spent
        if failure is None:
            raise
        raise _backend_failed(run, failure) from exc


def _backend_failed(run: RunDir, exc: BackendError) -> BackendError:
    _mark_failed(run, str(exc))
    return BackendError(
        f"{exc}; the run keeps its last completed phase: once the cause is fixed, evaltune "
        f"resume {run.path}"
    )


def _os_what(exc: OSError) -> str:
    return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")


def _write_refused(run: RunDir, exc: OSError, note: str) -> EvaltuneError:
    return EvaltuneError(
        f"could not write ({_os_what(exc)}); {run.path / STATE} still holds the last completed "
        f"phase{note}; free space or fix the permissions, then: evaltune resume {run.path}"
    )


def _mark_failed(run: RunDir, reason: str) -> bool:
    """Mark the state on disk (the last completed phase, not what the failing one half-built)
    ``failed`` with ``reason``: no folder claims to be running when nothing is. False when even
    that cannot be written (a full disk): the state file is then left as it was."""
    try:
        state = RunState.from_json(run.read_json(STATE))
        state.status, state.error = "failed", reason[:2000]
        run.write_json(STATE, state.to_json())
        run.event("run_failed", error=reason[:2000])
    except OSError:
        return False
    return True


def _build_and_run(run: RunDir, cfg: RunConfig, rep: Reporter, publisher: Publisher) -> None:
    ctx = build_context(cfg, run.checkpoints, progress=rep.message)
    for note in ctx.notes:
        rep.message(f"data: {note}")
    lora = cfg.lora
    params = lora_parameter_count(
        ctx.facts, lora.rank, lora.train_attn, lora.train_mlp, lora.train_unembed
    )
    rep.message(capacity_advice(params, ctx.completion_tokens))
    _Loop(run, cfg, ctx, rep, publisher).execute()
