"""``evaltune train`` and ``evaltune eval``: one training run, or one evaluation, outside the loop."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from evaltune.backends.local import ServiceClient, run_checkpoint_dir
from evaltune.cli.bench import print_accuracy
from evaltune.cli.reporter import RichReporter
from evaltune.config import RunConfig, dump_config
from evaltune.data import get_renderer, load_many
from evaltune.errors import ConfigError, EvalError
from evaltune.evals import EvalResult, compute_suite_hash, evaluate_examples, make_grader
from evaltune.evals import validation_nll as nll_of
from evaltune.loop.context import build_context
from evaltune.tracking import RunDir
from evaltune.train import run_sft_round, steps_for_data

__all__ = ["eval_once", "train_once"]


def _is_checkpoint(model: str) -> bool:
    return model.startswith("tinker://") or (Path(model) / "adapter_config.json").is_file()


def eval_once(
    model: str,
    suite: Path,
    grader: str,
    pattern: str | None,
    renderer_name: str,
    max_tokens: int,
    base_model: str | None,
    output: Path | None,
    console: Console,
    out: Console,
) -> EvalResult:
    examples = load_many([suite])
    if not examples:
        raise EvalError(f"{suite} has no items to evaluate")
    options = {"pattern": pattern} if pattern else {}
    try:
        grade = make_grader(grader, **options)
    except EvalError as exc:  # a wrong --grader/--pattern is a usage error (exit 2)
        raise ConfigError(str(exc)) from None
    service = ServiceClient(
        checkpoint_dir=run_checkpoint_dir(model),
        progress=lambda msg: console.print(msg, highlight=False),
    )
    if _is_checkpoint(model):
        sampler = service.create_sampling_client(model_path=model, base_model=base_model).result()
    else:
        sampler = service.create_sampling_client(base_model=model).result()
    renderer = get_renderer(renderer_name, sampler.get_tokenizer())
    with RichReporter(console) as rep:
        rep.start("eval", f"eval {suite.name}", len(examples))
        result = evaluate_examples(
            sampler,
            examples,
            renderer,
            grade,
            suite=suite.stem,
            max_tokens=max_tokens,
            model_path=model,
            suite_hash=compute_suite_hash(suite, grader, renderer.name, options),
            progress=lambda done, total: rep.advance("eval", done),
        )
        rep.finish("eval")
    print_accuracy(result, out)
    if output:
        result.write_jsonl(output)
        out.print(f"per-sample results: {output}")
    return result


def train_once(cfg: RunConfig, steps: int | None, console: Console, out: Console) -> Path:
    workspace = Path(cfg.output.workspace) if cfg.output.workspace else Path.cwd()
    run = RunDir.create(workspace, f"train-{cfg.output.run_name or Path(cfg.data.train[0]).stem}")
    run.write_text("config.yaml", dump_config(cfg))
    out.print(f"run folder: {run.path.resolve()}")
    with RichReporter(console) as rep:
        ctx = build_context(cfg, run.checkpoints, progress=rep.message)
        lora = cfg.lora
        tc = ctx.service.create_lora_training_client(
            cfg.base_model,
            rank=lora.rank,
            seed=cfg.training.seed,
            train_mlp=lora.train_mlp,
            train_attn=lora.train_attn,
            train_unembed=lora.train_unembed,
        ).result()
        before = nll_of(tc, ctx.validation).mean_nll if ctx.validation else None
        t = cfg.training
        n = steps or (
            t.steps_per_round
            if t.steps_per_round != "auto"
            else steps_for_data(
                len(ctx.train),
                t.batch_size,
                t.grad_accum,
                t.passes,
                t.min_steps,
                cfg.loop.max_steps_per_round,
            )
        )
        rep.start("train", "train", n)
        result = run_sft_round(
            tc,
            ctx.train,
            steps=n,
            batch_size=t.batch_size,
            learning_rate=ctx.learning_rate,
            seed=t.seed,
            grad_accum=t.grad_accum,
            schedule=t.schedule,
            warmup_steps=t.warmup_steps,
            weight_decay=t.weight_decay,
            grad_clip_norm=t.grad_clip_norm,
            on_step=lambda m: (
                run.event("step", **m.to_event()),
                rep.advance("train", m.step, f"loss {m.loss:.3f}"),
            ),
        )
        rep.finish("train")
        after = nll_of(tc, ctx.validation).mean_nll if ctx.validation else None
        state = tc.save_state("final", overwrite=True).result().path
        sampler = tc.save_weights_for_sampler("final").result().path
    summary = {
        **result.summary(),
        "val_nll_before": before,
        "val_nll_after": after,
        "learning_rate": ctx.learning_rate,
        "checkpoint": {"state": state, "sampler": sampler},
        "steps": [asdict(s) for s in result.steps],
    }
    run.write_json("train.json", summary)
    table = Table("", "value")
    table.add_row(
        "train loss (first → last step)",
        f"{summary['first_loss']:.3f} → {summary['final_loss']:.3f}",
    )
    if before is not None and after is not None:
        table.add_row("validation NLL (before → after)", f"{before:.3f} → {after:.3f}")
    table.add_row("learning rate", f"{ctx.learning_rate:.3g}")
    table.add_row("tokens/s", str(summary["tokens_per_s"]))
    table.add_row("checkpoint", sampler)
    out.print(table)
    return run.path
