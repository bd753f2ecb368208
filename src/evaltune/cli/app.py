"""The ``evaltune`` command line.

The composition root: the ``run``, ``demo``, ``resume``, ``train``, ``eval``, ``init`` and
``models`` commands, with ``bench``, ``compare``, ``export``, ``serve``, ``suites``, ``runs``,
``show``, ``report`` and the ``registry`` group from their modules.
Consoles and the error guard (one red line and an exit code for a user's mistake) live in
``cli/console.py``. Nothing that imports the model stack (torch, transformers, tinker) is
imported before a command's config has been validated: a bad config answers at once.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperCommand

from evaltune import __version__
from evaltune.cli.bench import bench
from evaltune.cli.compare import compare
from evaltune.cli.console import console, guarded, out, set_debug
from evaltune.cli.export import export
from evaltune.cli.feedback import feedback_app
from evaltune.cli.registry import registry_app
from evaltune.cli.runs import report, runs, show
from evaltune.cli.serve import serve
from evaltune.cli.suites import suites
from evaltune.errors import ConfigError

if TYPE_CHECKING:
    from evaltune.config import RunConfig

app = typer.Typer(
    help="Evaluation-driven LoRA fine-tuning: train, evaluate, find failures, retrain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
Overrides = Annotated[
    list[str] | None,
    typer.Argument(
        help="Dotted overrides applied before validation, e.g. training.learning_rate=1e-4"
    ),
]


def _version(value: bool) -> None:
    if value:
        print(f"evaltune {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    set_debug(debug)


def _load_config(config: Path, overrides: Sequence[str]) -> RunConfig:
    """The validated config, checked before any model code is imported.

    The pluggable names (graders, benchmarks, policies) are listed by layers that import the
    model stack, so a first pass checks everything else without them; once that passes,
    importing ``loop.context`` registers their catalogue and a second pass checks them too.
    """
    from evaltune.config import NameCatalog, load_config

    load_config(config, overrides, names=NameCatalog())
    import evaltune.loop.context  # noqa: F401  (registers the name catalogue)

    return load_config(config, overrides)


def _run_config(config: Path, overrides: list[str] | None) -> Path:
    cfg = _load_config(config, overrides or ())
    from evaltune.cli.reporter import RichReporter
    from evaltune.loop import run_loop

    with RichReporter(console) as reporter:
        run = run_loop(cfg, reporter)
    out.print(f"run folder: {run.path.resolve()}")
    return run.path


@app.command()
def run(
    config: Annotated[
        Path, typer.Argument(help="Run config (YAML, JSON, or the seed eval_loop_config.json).")
    ],
    overrides: Overrides = None,
) -> None:
    """Run the evaluation-driven loop: baseline, then train/evaluate/decide until a stop rule."""
    guarded(lambda: _run_config(config, overrides))


@app.command()
def demo(overrides: Overrides = None) -> None:
    """Run the embedded demo (five QA topics on Gemma 3 270M) into ./runs/."""
    from evaltune.demo import DEMO_CONFIG

    guarded(lambda: _run_config(DEMO_CONFIG, overrides))


@app.command()
def resume(
    run_folder: Annotated[
        Path, typer.Argument(help="A run folder, e.g. runs/20261121-101500-demo.")
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="training.* overrides for the rounds still to train, e.g. "
            "training.learning_rate=1e-5 after a diverged round"
        ),
    ] = None,
) -> None:
    """Continue a stopped or failed run from its last completed phase."""
    from evaltune.cli.reporter import RichReporter
    from evaltune.loop import resume_run

    def go() -> None:
        with RichReporter(console) as reporter:
            run = resume_run(run_folder, reporter, overrides or ())
        out.print(f"run folder: {run.path.resolve()}")

    guarded(go)


@app.command()
def train(
    config: Annotated[
        Path, typer.Argument(help="Run config; uses its base_model, lora, data and training.")
    ],
    overrides: Overrides = None,
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="Optimizer steps (default: training.steps_per_round)."),
    ] = None,
) -> None:
    """One SFT run on data.train: train loss per step, validation loss before and after."""

    def go() -> Path:
        cfg = _load_config(config, overrides or ())
        from evaltune.cli.oneshot import train_once

        return train_once(cfg, steps, console, out)

    guarded(go)


class _EvalCommand(TyperCommand):
    """``evaltune eval``, whose ``--help`` lists the string graders from their catalogue
    (``evals.graders.GRADERS``), read only when help is shown: importing evals takes seconds."""

    def format_help(self, ctx: typer.Context, formatter: Any) -> None:
        from evaltune.evals.graders import GRADERS

        for param in self.params:
            if param.name == "grader":
                param.help = ", ".join(GRADERS) + "."
        super().format_help(ctx, formatter)


@app.command(name="eval", cls=_EvalCommand)
def eval_(
    model: Annotated[
        str,
        typer.Option(
            help="Base model (alias, folder, HF id) or a checkpoint folder / tinker:// path."
        ),
    ],
    suite: Annotated[Path, typer.Option(help="JSONL/JSON/CSV/Parquet test set.")],
    grader: Annotated[str, typer.Option(help="A grader name (listed by --help).")] = "normalized",
    pattern: Annotated[str | None, typer.Option(help="Regex for the regex grader.")] = None,
    renderer: Annotated[str, typer.Option(help="auto, chat_template, role_colon, plain.")] = "auto",
    max_tokens: Annotated[int, typer.Option(help="Tokens to sample per answer.")] = 64,
    base_model: Annotated[
        str | None, typer.Option(help="Base model of a checkpoint that does not name it.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write per-sample results here (JSONL).")
    ] = None,
) -> None:
    """Evaluate a model or checkpoint on one test set and print accuracy per tag."""
    from evaltune.cli.oneshot import eval_once

    guarded(
        lambda: eval_once(
            model, suite, grader, pattern, renderer, max_tokens, base_model, output, console, out
        )
    )


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create (must be empty or new).")],
) -> None:
    """Write a starter config and sample data (the demo's) into DIRECTORY."""
    from evaltune.demo import DEMO_DIR

    def go() -> None:
        if directory.exists() and not directory.is_dir():
            raise ConfigError(f"{directory} is a file; give evaltune init a new folder name")
        if directory.exists() and any(directory.iterdir()):
            raise ConfigError(f"{directory} is not empty; choose a new folder for evaltune init")
        directory.mkdir(parents=True, exist_ok=True)
        for name in ("config.yaml", "train.jsonl", "pool.jsonl", "eval.jsonl"):
            shutil.copyfile(DEMO_DIR / name, directory / name)
        out.print(
            f"wrote {directory}/config.yaml and sample data; next: "
            f"evaltune run {directory}/config.yaml"
        )

    guarded(go)


@app.command()
def models() -> None:
    """List the built-in model aliases and whether each is converted in the local cache."""
    from evaltune.engine.models import BUILTIN_MODELS, MARKER, default_cache_dir

    table = Table(title=f"built-in models (cache: {default_cache_dir()})")
    table.add_column("alias")
    table.add_column("description")
    table.add_column("cached")
    for alias, description in BUILTIN_MODELS.items():
        cached = (default_cache_dir() / "models" / alias / MARKER).is_file()
        table.add_row(alias, description, "yes" if cached else "no (converted on first use)")
    out.print(table)
    out.print(
        "Also accepted: a local folder with config.json, or a Hugging Face id (needs network)."
    )


app.command()(serve)
app.command()(compare)
app.command()(bench)
app.command()(suites)
app.command()(export)
app.command()(runs)
app.command()(show)
app.command()(report)
app.add_typer(registry_app, name="registry")
app.add_typer(feedback_app, name="feedback")
