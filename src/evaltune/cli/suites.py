"""``evaltune suites [NAME]``: what can be evaluated, and what a bundle or benchmark expands to.

Without NAME: the benchmark formats (schema, scorer, default data), the bundles and use-case
templates with their items, and every grader name. With a benchmark name: its schema, canonical
prompt template, scorer and a config snippet. With a bundle or template name: the suites it
expands into and where each one's data would come from (``--data-dir`` as in the config).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from evaltune.cli.console import guarded, out
from evaltune.errors import ConfigError

__all__ = ["suites"]


def _items(items: tuple) -> str:
    return ", ".join(
        f"{i.benchmark}×{i.limit}" if i.limit else f"{i.benchmark} (all)" for i in items
    )


def _source(benchmark: object) -> str:
    if getattr(benchmark, "packaged", None) is not None:
        return "shipped in a package"
    hub = getattr(benchmark, "hub", None)
    return f"{hub} (needs network)" if hub else "file: only"


def _overview(out: Console) -> None:
    from evaltune.evals import GRADER_NAMES
    from evaltune.evals.benchmarks import BENCHMARKS, BUNDLES, TEMPLATES

    table = Table("benchmark", "upstream schema", "scorer", "default data", title="benchmarks")
    for b in BENCHMARKS.values():
        table.add_row(b.name, b.schema, b.grader, _source(b))
    out.print(table)
    groups = Table("name", "kind", "suites (benchmark × items)", title="bundles and templates")
    for name, items in BUNDLES.items():
        groups.add_row(name, "bundle", _items(items))
    for name, items in TEMPLATES.items():
        groups.add_row(name, "template", _items(items))
    out.print(groups)
    out.print("graders: " + ", ".join(GRADER_NAMES))
    out.print("details: evaltune suites NAME (a benchmark, bundle or template)")


def _benchmark(name: str, out: Console) -> None:
    from evaltune.evals.benchmarks import get_benchmark

    b = get_benchmark(name)
    out.print(Text.assemble((b.title, "bold"), f" ({b.name}): {b.about}"), highlight=False)
    out.print(f"upstream schema: {b.schema}", highlight=False)
    out.print(f"scorer: grader {b.grader} · max_tokens {b.max_tokens} · data: {_source(b)}")
    out.print("prompt template:" if b.template else "prompt: the record's own", highlight=False)
    if b.template:
        out.print(b.template, markup=False, highlight=False)
    out.print(
        f"config:\n  - name: {b.name}\n    benchmark: {b.name}\n    file: data/{b.name}.jsonl"
        "   # optional where the data ships or is on the hub\n    threshold: 0.5",
        markup=False,
        highlight=False,
    )


def _bundle(name: str, data_dir: Path | None, out: Console) -> None:
    from evaltune.evals import expand_bundle
    from evaltune.evals.benchmarks import get_benchmark

    table = Table("suite", "benchmark", "items", "data", title=f"bundle {name} expands to")
    for member in expand_bundle(name, name, data_dir=data_dir):
        source = member.file or _source(get_benchmark(member.benchmark))
        table.add_row(member.name, member.benchmark, str(member.limit or "all"), source)
    out.print(table)
    out.print(
        f"config:\n  - name: {name}\n    bundle: {name}\n    role: guard\n    tolerance: 0.05"
        + (f"\n    data_dir: {data_dir}" if data_dir else ""),
        markup=False,
        highlight=False,
    )


def suites(
    name: Annotated[
        str | None, typer.Argument(help="A benchmark, bundle or template to show in detail.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Bundles: the folder with <benchmark>.jsonl files.")
    ] = None,
) -> None:
    """List benchmarks, bundles, templates and graders, or show one of them."""
    from evaltune.evals.benchmarks import BENCHMARKS, BUNDLES, TEMPLATES

    def go() -> None:
        if name is None:
            _overview(out)
            return
        known = list(dict.fromkeys([*BENCHMARKS, *BUNDLES, *TEMPLATES]))
        if name not in known:
            raise ConfigError(f"unknown suite name {name!r}; choose one of: {', '.join(known)}")
        if name in BENCHMARKS:  # a name can be both (math, tools, safety, tutoring)
            _benchmark(name, out)
        if name in BUNDLES or name in TEMPLATES:
            _bundle(name, data_dir, out)

    guarded(go)
