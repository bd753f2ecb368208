"""The evaluation-driven loop as a persisted state machine.

``baseline → (train+save → evaluate → decide) × rounds → finish``. ``state.json`` is rewritten
atomically after every phase; ``resume`` reads it and continues after the last completed
phase. A round's training is committed together with its checkpoint (``save_state`` with the
optimizer), so a resumed run never repeats a committed optimizer step: an interrupted round
restarts from the previous round's checkpoint, on the same seeded batches.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evaltune.backends.local import checkpoint_folder
from evaltune.config import RunConfig, dump_config, load_config
from evaltune.evals import EvalResult, evaluate_examples, validation_nll
from evaltune.loop.context import RunContext, Suite, build_context
from evaltune.loop.decide import choose_best, decide_next, targets_met
from evaltune.loop.reporter import NullReporter, Reporter
from evaltune.loop.summary import analyse_round, write_summary
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
            "lr": None,
            "last_state_path": None,
            "stop_reason": None,
            "best_round": None,
            "started_at": time.time(),
            "finished_at": None,
        },
    )
    run.event("run_started", run_id=run.run_id, base_model=cfg.base_model)
    (reporter or NullReporter()).message(f"run folder: {run.path}")
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

    def save(self) -> None:
        self.run.write_json(STATE, self.state)

    @property
    def rounds(self) -> list[dict[str, Any]]:
        return self.state["rounds"]

    # -- phases -----------------------------------------------------------------------------
    def evaluate(self, k: int, sampler: Any, model_path: str | None) -> dict[str, Any]:
        evals: dict[str, Any] = {}
        for suite in self.ctx.suites:
            result = self._eval_suite(k, suite, sampler, model_path)
            evals[suite.name] = result.summary()
            m = result.metrics
            self.rep.message(
                f"round {k} · {suite.name}: {suite.rule.metric} {m.get(suite.rule.metric, 0):.3f}"
                f" (n={int(m.get('n', 0))})"
                + (
                    f" · threshold {suite.rule.threshold}"
                    if suite.rule.threshold is not None
                    else ""
                )
            )
        return evals

    def _eval_suite(self, k: int, suite: Suite, sampler: Any, model_path: str | None) -> EvalResult:
        task = f"eval-{k}-{suite.name}"
        self.rep.start(task, f"round {k} · eval {suite.name}", len(suite.examples))
        result = evaluate_examples(
            sampler,
            suite.examples,
            self.ctx.renderer,
            suite.grader,
            suite=suite.name,
            max_tokens=suite.max_tokens,
            temperature=suite.temperature,
            seed=self.cfg.training.seed,
            model_path=model_path,
            suite_hash=suite.suite_hash,
            progress=lambda done, total: self.rep.advance(task, done),
        )
        self.rep.finish(task)
        result.write_jsonl(self.run.round_dir(k) / "eval" / f"{suite.name}.jsonl")
        self.run.event("eval", round=k, suite=suite.name, **result.to_metrics(f"eval/{suite.name}"))
        return result

    def baseline(self) -> None:
        self.rep.message(f"round 0 · evaluating the base model {self.cfg.base_model}")
        sampler = self.ctx.service.create_sampling_client(base_model=self.cfg.base_model).result()
        record = {
            "round": 0,
            "phase": "evaluated",
            "lr": None,
            "train": None,
            "checkpoint": None,
            "evals": self.evaluate(0, sampler, None),
            "val_nll": None,
        }
        record["targets_met"] = targets_met(record, self.ctx.rules)
        self.rounds.append(record)
        self.run.write_json("rounds/0/analysis.json", analyse_round(self.rounds, self.ctx.rules))
        self.save()

    def _training_client(self) -> Any:
        if self.training_client is None:
            svc, last = self.ctx.service, self.state["last_state_path"]
            if last:
                self.training_client = svc.create_training_client_from_state_with_optimizer(
                    last
                ).result()
            else:
                lora = self.cfg.lora
                self.training_client = svc.create_lora_training_client(
                    self.cfg.base_model,
                    rank=lora.rank,
                    seed=self.cfg.training.seed,
                    train_mlp=lora.train_mlp,
                    train_attn=lora.train_attn,
                    train_unembed=lora.train_unembed,
                ).result()
        return self.training_client

    def train(self, k: int, lr: float) -> dict[str, Any]:
        t = self.cfg.training
        plan = {
            "round": k,
            "lr": lr,
            "steps": t.steps_per_round,
            "batch_size": t.batch_size,
            "grad_accum": t.grad_accum,
            "seed": t.seed * 1000 + k,
            "train_examples": len(self.ctx.train),
        }
        self.run.write_json(f"rounds/{k}/plan.json", plan)
        tc = self._training_client()
        task = f"train-{k}"
        self.rep.start(task, f"round {k} · train", t.steps_per_round)

        def on_step(m: StepMetrics) -> None:
            self.run.event("step", round=k, **m.to_event())
            self.rep.advance(
                task,
                m.step - self.state["global_step"],
                f"loss {m.loss:.3f} · {m.tokens_per_s:.0f} tok/s",
            )

        result = run_sft_round(
            tc,
            self.ctx.train,
            steps=t.steps_per_round,
            batch_size=t.batch_size,
            learning_rate=lr,
            seed=plan["seed"],
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
        self.state["global_step"] += t.steps_per_round
        self.state["last_state_path"] = state_path
        checkpoint = {"state": state_path, "sampler": sampler_path}
        if self.cfg.backend == "local":  # where the PEFT adapter folder is, for the report
            checkpoint["sampler_folder"] = str(
                checkpoint_folder(sampler_path, self.run.checkpoints)
            )
        return {
            "round": k,
            "phase": "trained",
            "lr": lr,
            "train": result.summary(),
            "checkpoint": checkpoint,
            "evals": {},
            "val_nll": None,
        }

    def evaluate_round(self, record: dict[str, Any]) -> None:
        k = record["round"]
        sampler_path = record["checkpoint"]["sampler"]
        sampler = self.ctx.service.create_sampling_client(model_path=sampler_path).result()
        record["evals"] = self.evaluate(k, sampler, sampler_path)
        if self.ctx.validation:
            nll = validation_nll(self._training_client(), self.ctx.validation)
            record["val_nll"] = nll.mean_nll
            self.run.event("val_nll", round=k, value=nll.mean_nll)
        record["targets_met"] = targets_met(record, self.ctx.rules)
        record["phase"] = "evaluated"
        self.run.write_json(f"rounds/{k}/analysis.json", analyse_round(self.rounds, self.ctx.rules))

    def decide(self, record: dict[str, Any]) -> None:
        loop = self.cfg.loop
        d = decide_next(
            self.rounds,
            self.ctx.rules,
            max_rounds=loop.max_rounds,
            lr=record["lr"],
            lr_decay=loop.lr_decay,
            stop_on_target=loop.stop_on_target,
            plateau_rounds=loop.plateau_rounds,
            min_improvement=loop.min_improvement,
        )
        record["decision"] = asdict(d)
        record["phase"] = "decided"
        self.rep.message(f"round {record['round']} · decision: {d.reason} — {d.note}")
        self.run.event("decision", round=record["round"], **asdict(d))
        if d.stop:
            self.state["stop_reason"] = d.reason
        else:
            self.state["lr"] = d.next_lr

    # -- driver -----------------------------------------------------------------------------
    def execute(self) -> None:
        if self.cfg.loop.eval_baseline and not any(r["round"] == 0 for r in self.rounds):
            self.baseline()
        if self.state["lr"] is None:
            self.state["lr"] = self.ctx.learning_rate
            self.save()
        while self.state["stop_reason"] is None:
            last = self.rounds[-1] if self.rounds and self.rounds[-1]["round"] > 0 else None
            if last is None or last["phase"] == "decided":
                k = (last["round"] if last else 0) + 1
                self.rep.message(f"round {k} · training at lr {self.state['lr']:.3g}")
                self.rounds.append(self.train(k, self.state["lr"]))
                self.save()
                continue
            if last["phase"] == "trained":
                self.evaluate_round(last)
                self.save()
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
            f"finished: {self.state['stop_reason']}; best round {self.state['best_round']}; "
            f"report: {self.run.path / 'report.md'}"
        )


def _execute(run: RunDir, cfg: RunConfig, rep: Reporter) -> None:
    ctx = build_context(cfg, run.checkpoints, progress=rep.message)
    for note in ctx.notes:
        rep.message(f"data: {note}")
    _Loop(run, cfg, ctx, rep).execute()
