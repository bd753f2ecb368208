"""``evaltune bench``: evaluate an OpenAI-compatible endpoint on evaltune's suites.

``--suite`` is a test file (graded by ``--grader``, as in ``evaltune eval``; a benchmark file in
its upstream schema with ``--benchmark``), a benchmark name (``gsm8k``: its default source), or
a bundle or template (``quick``, ``math``: one result per benchmark, data from ``--data-dir``).
Each result is an ``EvalResult`` JSONL (default ``bench-results/<model>/<suite>.jsonl``) that
``evaltune compare`` reads next to a local ``evaltune eval`` or a run's round.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from evaltune.cli.console import console, guarded, out
from evaltune.errors import ConfigError, EvalError

if TYPE_CHECKING:
    from evaltune.evals import EvalResult, GeneratedSuite

__all__ = ["bench", "print_accuracy"]


def _slug(model: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"


def print_accuracy(result: EvalResult, out: Console) -> None:
    """Accuracy with its interval, then accuracy per tag."""
    m = result.metrics
    out.print(
        Text.assemble(
            (result.suite, "bold"),
            f": accuracy {m['accuracy']:.3f} "
            f"[{m['accuracy_ci_low']:.3f}, {m['accuracy_ci_high']:.3f}] on {int(m['n'])} items",
        ),
        highlight=False,
    )
    if result.per_tag:
        table = Table("tag", "accuracy", "n")
        for tag, v in sorted(result.per_tag.items()):
            table.add_row(tag, f"{v['accuracy']:.3f}", str(int(v["n"])))
        out.print(table)


def _suites(
    suite: str,
    name: str | None,
    benchmark: str | None,
    grader: str | None,
    pattern: str | None,
    limit: int | None,
    max_tokens: int | None,
    data_dir: Path | None,
    renderer: str,
) -> list[GeneratedSuite]:
    """The suites ``--suite`` names, loaded: a file, a benchmark, or a bundle/template."""
    from evaltune.config.schema import did_you_mean
    from evaltune.evals import load_bundle, load_suite
    from evaltune.evals.benchmarks import BENCHMARKS, BUNDLES, TEMPLATES

    options = {"pattern": pattern} if pattern else {}
    common = {"renderer": renderer, "limit": limit, "max_tokens": max_tokens}
    try:
        if Path(suite).is_file():
            if benchmark is not None and benchmark not in BENCHMARKS:
                raise ConfigError(
                    f"--benchmark {benchmark!r}; choose one of: {', '.join(BENCHMARKS)}"
                )
            stem = Path(suite).name.split(".")[0]
            return [
                load_suite(
                    name or stem,
                    file=suite,
                    benchmark=benchmark,
                    grader=grader,
                    grader_options=options,
                    **common,
                )
            ]
        if suite in BENCHMARKS:
            return [
                load_suite(
                    name or suite, benchmark=suite, grader=grader, grader_options=options, **common
                )
            ]
        if suite in BUNDLES or suite in TEMPLATES:
            if grader:
                raise ConfigError("--grader with a bundle: each benchmark uses its own scorer")
            return load_bundle(name or suite, suite, data_dir=data_dir, **common)
    except EvalError as exc:  # a wrong grader, pattern or benchmark file: usage
        raise ConfigError(str(exc)) from None
    choices = [*BENCHMARKS, *BUNDLES, *TEMPLATES]
    close = did_you_mean(suite, choices)
    hint = f" (did you mean {close!r}?)" if close else ""
    raise ConfigError(
        f"--suite {suite!r} is not a file, a benchmark or a bundle{hint}; give a test file, or "
        f"one of: {', '.join(dict.fromkeys(choices))}"
    )


def _outputs(names: list[str], model: str, output: Path | None) -> list[Path]:
    if output is not None and len(names) == 1 and output.suffix == ".jsonl":
        return [output]
    folder = output if output is not None else Path("bench-results") / _slug(model)
    return [folder / f"{n}.jsonl" for n in names]


def bench(
    endpoint: Annotated[
        str,
        typer.Option(
            help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 "
            "(a bare host:port gets /v1)."
        ),
    ],
    model: Annotated[str, typer.Option(help="The model name the endpoint serves.")],
    suite: Annotated[
        str,
        typer.Option(
            help="A test file (JSONL/JSON/CSV/Parquet), a benchmark (gsm8k, mmlu, …) or a "
            "bundle/template (quick, math, …)."
        ),
    ],
    benchmark: Annotated[
        str | None,
        typer.Option(help="The benchmark whose upstream schema --suite FILE is in (e.g. gsm8k)."),
    ] = None,
    grader: Annotated[
        str | None,
        typer.Option(help="Grader (default: normalized for a file, the benchmark's own scorer)."),
    ] = None,
    pattern: Annotated[str | None, typer.Option(help="Regex for the regex grader.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Evaluate the first N items.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Tokens per answer (default: the suite's own).")
    ] = None,
    temperature: Annotated[float, typer.Option(min=0.0, help="0 is greedy.")] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Sampling seed, sent when set.")] = None,
    api: Annotated[
        str,
        typer.Option(help="chat (/chat/completions) or completions (a 'User: … Assistant:' text)."),
    ] = "chat",
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the API key (unset: no key sent).")
    ] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 16,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds to wait per request.")] = 120.0,
    retries: Annotated[
        int, typer.Option(min=0, help="Retries on connection errors, 429 and 5xx.")
    ] = 2,
    data_dir: Annotated[
        Path | None, typer.Option(help="Bundles: folder of <benchmark>.jsonl files.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Suite name (default: from --suite).")] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Result file (.jsonl) or folder (default: bench-results/<model>/<suite>.jsonl)."
        ),
    ] = None,
) -> None:
    """Evaluate an OpenAI-compatible endpoint (vLLM, Ollama, OpenAI, evaltune serve) on a suite."""

    def go() -> None:
        from evaltune.cli.reporter import RichReporter
        from evaltune.evals import EndpointClient, evaluate_endpoint

        loaded = _suites(
            suite, name, benchmark, grader, pattern, limit, max_tokens, data_dir, f"endpoint-{api}"
        )
        key = os.environ.get(api_key_env) or None
        if key is None:
            console.print(f"note: ${api_key_env} is not set; sending requests without an API key")
        client = EndpointClient(
            endpoint,
            model,
            api_key=key,
            api=api,
            timeout=timeout,
            retries=retries,
            concurrency=concurrency,
            key_source=f"${api_key_env} (--api-key-env names another variable)",
        )
        try:
            paths = _outputs([s.name for s in loaded], model, output)
            for s, path in zip(loaded, paths, strict=True):
                with RichReporter(console) as rep:
                    rep.start("bench", f"{model} · {s.name}", len(s.examples))
                    result = evaluate_endpoint(
                        s,
                        client,
                        temperature=temperature,
                        seed=seed,
                        progress=lambda done, total: rep.advance("bench", done),
                    )
                    rep.finish("bench")
                print_accuracy(result, out)
                result.write_jsonl(path)
                out.print(f"wrote {path}", highlight=False)
        finally:
            client.close()

    guarded(go)
