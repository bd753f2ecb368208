"""The evaluation-driven loop as a persisted state machine.

``baseline → (train+save → evaluate+analyse → decide+plan) × rounds → finish``. ``state.json``
is rewritten atomically after every phase; ``resume`` reads it and continues after the last
completed phase. A round's training is committed together with its checkpoint (``save_state``
with the optimizer), so a resumed run never repeats a committed optimizer step: an interrupted
round restarts from the previous round's checkpoint, on the same seeded batches.

The decide phase also plans the next round (policies: ``loop/policies.py``) and picks the pool
examples it adds (``loop/select.py``); both are written into the state before the round starts,
so a resumed run trains exactly what the interrupted one would have.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evaltune.backends.local import checkpoint_folder
from evaltune.config import RunConfig, dump_config, load_config
from evaltune.evals import EvalResult, validation_nll
from evaltune.loop.analysis import analyse_round
from evaltune.loop.context import RunContext, Suite, build_context
from evaltune.loop.decide import choose_best, decide_next, guards_hold, targets_met
from evaltune.loop.policies import Plan, capacity_advice, lora_parameter_count, next_plan
from evaltune.loop.reporter import NullReporter, Reporter
from evaltune.loop.select import select_random, select_targeted, tag_weakness
from evaltune.loop.summary import write_summary
from evaltune.tracking import RunDir
from evaltune.train import StepMetrics, run_sft_round

__all__ = ["resume_run", "run_loop", "start_run"]

STATE = "state.json"


def start_run(cfg: RunConfig, reporter: Reporter | None = None) -> RunDir:
    """Create the run folder with its config snapshot and an initial state."""
    workspace = Path(cfg.output.workspace) if cfg.output.workspace else Path.cwd()
    run = RunDir.create(workspace, cfg.output.run_name or Path(cfg.data.train[0]).stem)
    run.write_text("config.yaml", dump_config(cfg))
    run.write_json(
        STATE,
        {
            "version": 1,
            "run_id": run.run_id,
            "status": "running",
            "rounds": [],
            "global_step": 0,
            "tokens": 0,
            "plan": None,
            "selected_ids": [],
            "last_state_path": None,
            "stop_reason": None,
            "best_round": None,
            "started_at": time.time(),
            "finished_at": None,
        },
    )
    run.event("run_started", run_id=run.run_id, base_model=cfg.base_model)
    (reporter or NullReporter()).message(f"run folder: {run.path.resolve()}")
    return run


def run_loop(cfg: RunConfig, reporter: Reporter | None = None) -> RunDir:
    run = start_run(cfg, reporter)
    _execute(run, cfg, reporter or NullReporter())
    return run


def resume_run(path: Path, reporter: Reporter | None = None) -> RunDir:
    run = RunDir.open(path)
    cfg = load_config(run.path / "config.yaml")
    state = run.read_json(STATE)
    rep = reporter or NullReporter()
    if state["status"] == "finished":
        rep.message(f"run already finished ({state['stop_reason']}); nothing to resume")
        return run
    rep.message(f"resuming {run.path}")
    run.event("run_resumed")
    _execute(run, cfg, rep)
    return run


class _Loop:
    def __init__(self, run: RunDir, cfg: RunConfig, ctx: RunContext, rep: Reporter) -> None:
        self.run, self.cfg, self.ctx, self.rep = run, cfg, ctx, rep
        self.state: dict[str, Any] = run.read_json(STATE)
        self.training_client: Any = None
        self.client_rank: int | None = None
        self.pool = {e.id: e for e in ctx.pool}

    def save(self) -> None:
        self.run.write_json(STATE, self.state)

    @property
    def rounds(self) -> list[dict[str, Any]]:
        return self.state["rounds"]

    # -- evaluate ---------------------------------------------------------------------------
    def evaluate(self, k: int, sampler: Any, model_path: str | None) -> dict[str, EvalResult]:
        results: dict[str, EvalResult] = {}
        for suite in self.ctx.suites:
            result = self._eval_suite(k, suite, sampler, model_path)
            results[suite.name] = result
            m, rule = result.metrics, suite.rule
            goal = f" · threshold {rule.threshold}" if rule.threshold is not None else ""
            self.rep.message(
                f"round {k} · {suite.name}: {rule.metric} "
                f"{m.get(rule.metric, 0):.3f} (n={int(m.get('n', 0))}){goal}"
            )
        return results

    def _eval_suite(self, k: int, suite: Suite, sampler: Any, model_path: str | None) -> EvalResult:
        task = f"eval-{k}-{suite.name}"
        self.rep.start(task, f"round {k} · eval {suite.name}", len(suite.examples))
        result = suite.evaluate(
            sampler,
            self.ctx.renderer,
            seed=self.cfg.training.seed,
            model_path=model_path,
            max_seq_len=self.ctx.max_seq_len,
            progress=lambda done, total: self.rep.advance(task, done),
            log_dir=self.run.round_dir(k) / "eval" / "inspect",  # Inspect tasks' logs
        )
        self.rep.finish(task)
        result.write_jsonl(self.run.round_dir(k) / "eval" / f"{suite.name}.jsonl")
        self.run.event("eval", round=k, suite=suite.name, **result.to_metrics(f"eval/{suite.name}"))
        return result

    def _results(self, k: int) -> dict[str, EvalResult]:
        folder = self.run.path / "rounds" / str(k) / "eval"
        return {s.name: EvalResult.read_jsonl(folder / f"{s.name}.jsonl") for s in self.ctx.suites}

    def _analyse(self, k: int, results: dict[str, EvalResult]) -> None:
        similarity = self.cfg.loop.selection.similarity
        analysis = analyse_round(self.rounds, self.ctx.rules, results, similarity)
        self.run.write_json(f"rounds/{k}/analysis.json", analysis)

    def baseline(self) -> None:
        self.rep.message(f"round 0 · evaluating the base model {self.cfg.base_model}")
        sampler = self.ctx.service.create_sampling_client(base_model=self.cfg.base_model).result()
        results = self.evaluate(0, sampler, None)
        record = {
            "round": 0,
            "phase": "evaluated",
            "lr": None,
            "train": None,
            "checkpoint": None,
            "val_nll": None,
            "evals": {name: r.summary() for name, r in results.items()},
        }
        record["targets_met"] = targets_met(record, self.ctx.rules)
        self.rounds.append(record)
        self._analyse(0, results)
        self.save()

    # -- train ------------------------------------------------------------------------------
    def _training_client(self, plan: Plan) -> Any:
        svc, lora = self.ctx.service, self.cfg.lora
        if plan.fresh_adapter or plan.restart_from or self.client_rank != plan.rank:
            self.training_client = None
        if self.training_client is None:
            start = plan.restart_from or (
                None if plan.fresh_adapter else self.state["last_state_path"]
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
        if self.state["plan"] is None:
            t = self.cfg.training
            self.state["plan"] = asdict(
                Plan(self.ctx.learning_rate, t.steps_per_round, self.cfg.lora.rank)
            )
        return Plan(**self.state["plan"])

    def train(self, k: int) -> dict[str, Any]:
        t, plan = self.cfg.training, self._plan()
        added = [self.pool[i] for i in self.state["selected_ids"] if i in self.pool]
        datums = self.ctx.train + self.ctx.render(added)
        seed = t.seed * 1000 + k
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
            },
        )
        tc = self._training_client(plan)
        task = f"train-{k}"
        self.rep.start(task, f"round {k} · train", plan.steps)

        def on_step(m: StepMetrics) -> None:
            self.run.event("step", round=k, **m.to_event())
            self.rep.advance(
                task,
                m.step - self.state["global_step"],
                f"loss {m.loss:.3f} · {m.tokens_per_s:.0f} tok/s",
            )

        result = run_sft_round(
            tc,
            datums,
            steps=plan.steps,
            batch_size=t.batch_size,
            learning_rate=plan.lr,
            seed=seed,
            step_offset=self.state["global_step"],
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
        self.state["global_step"] += plan.steps
        self.state["tokens"] += result.tokens
        self.state["last_state_path"] = state_path
        checkpoint = {"state": state_path, "sampler": sampler_path}
        if self.cfg.backend == "local":  # where the PEFT adapter folder is, for the report
            checkpoint["sampler_folder"] = str(
                checkpoint_folder(sampler_path, self.run.checkpoints)
            )
        return {
            "round": k,
            "phase": "trained",
            "lr": plan.lr,
            "steps": plan.steps,
            "rank": plan.rank,
            "train": result.summary(),
            "checkpoint": checkpoint,
            "evals": {},
            "val_nll": None,
        }

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
        baseline = self.rounds[0] if self.rounds[0]["round"] == 0 else None
        record["targets_met"] = targets_met(record, self.ctx.rules)
        record["guards_hold"] = guards_hold(record, baseline, self.ctx.rules)
        record["phase"] = "evaluated"
        self._analyse(k, results)

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
                "steps": self.state["global_step"] + record["steps"],
                "tokens": self.state["tokens"] + (record["train"] or {}).get("tokens", 0),
                "seconds": time.time()
                - self.state["started_at"]
                + ((record["train"] or {}).get("seconds") or 0.0),
            },
            limits={"steps": b.max_steps, "tokens": b.max_tokens, "seconds": b.max_seconds},
        )
        record["decision"] = asdict(d)
        if d.stop:
            self.state["stop_reason"] = d.reason
            self.rep.message(f"round {record['round']} · decision: {d.reason} — {d.note}")
        else:
            self._plan_next(record)
        record["phase"] = "decided"
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
            base_lr=self.ctx.learning_rate,
            lora_params=params,
            completion_tokens=self.ctx.completion_tokens,
        )
        self.state["plan"] = asdict(plan)
        selection = self._select(record["round"])
        if selection:
            self.state["selected_ids"] += [s["id"] for s in selection["added"]]
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
        used = set(self.state["selected_ids"])
        available = [e for e in self.ctx.pool if e.id not in used]
        if sel.strategy == "none" or not available:
            return None
        targets = [s for s in self.ctx.suites if s.rule.role == "target"]
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

    # -- driver -----------------------------------------------------------------------------
    def execute(self) -> None:
        if self.cfg.loop.eval_baseline and not any(r["round"] == 0 for r in self.rounds):
            self.baseline()
        self._plan()
        self.save()
        while self.state["stop_reason"] is None:
            last = self.rounds[-1] if self.rounds and self.rounds[-1]["round"] > 0 else None
            if last is None or last["phase"] == "decided":
                k = (last["round"] if last else 0) + 1
                plan = self._plan()
                self.rep.message(
                    f"round {k} · training {plan.steps} steps at lr {plan.lr:.3g}"
                    f" (rank {plan.rank})"
                )
                self.rounds.append(self.train(k))
            elif last["phase"] == "trained":
                self.evaluate_round(last)
            elif last["phase"] == "evaluated":
                self.decide(last)
            self.save()
        self.finish()

    def finish(self) -> None:
        best = choose_best(self.rounds, self.ctx.rules)
        self.state["best_round"] = best["round"] if best else None
        self.state["status"] = "finished"
        self.state["finished_at"] = time.time()
        # Summary and report first, state last: a kill in between leaves the run resumable
        # (status still "running" on disk with its stop_reason set), and resume finishes it.
        write_summary(self.run, self.cfg, self.state, self.ctx)
        self.save()
        self.run.event(
            "run_finished",
            stop_reason=self.state["stop_reason"],
            best_round=self.state["best_round"],
        )
        self.rep.message(
            f"finished: {self.state['stop_reason']}; best round "
            f"{self.state['best_round']}; report: {self.run.path / 'report.md'}"
        )


def _execute(run: RunDir, cfg: RunConfig, rep: Reporter) -> None:
    ctx = build_context(cfg, run.checkpoints, progress=rep.message)
    for note in ctx.notes:
        rep.message(f"data: {note}")
    lora = cfg.lora
    params = lora_parameter_count(
        ctx.facts, lora.rank, lora.train_attn, lora.train_mlp, lora.train_unembed
    )
    rep.message(capacity_advice(params, ctx.completion_tokens))
    _Loop(run, cfg, ctx, rep).execute()
