"""``evaltune compare A B``: two evaluation results, sample by sample; or two runs, or two
registered models, suite by suite.

Reads two ``EvalResult`` JSONL files (``rounds/<k>/eval/<suite>.jsonl``, or ``evaltune eval
--output``), prints every metric and every tag with its change and paired significance (exact
McNemar for right/wrong outcomes, a sign-flip permutation test for graded scores and NLL; see
``evaltune.evals.compare``), lists the samples that were fixed and broken, and writes
``comparison.json`` next to RESULT_B (or to ``--output``). ``--fail-on-regression`` exits 1
when any metric regressed significantly, for CI.

A and B may also be two run folders (or run ids in ``--workspace``; each run's best round) or
two registry ids (``demo-v3``; the round registered): every suite both evaluated is compared
the same way, and ``comparison.json`` (next to B's results) holds one comparison per suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from evaltune.cli.console import guarded, out
from evaltune.errors import ConfigError
from evaltune.registry import REGISTRY_FILE, Registry
from evaltune.tracking.runs import resolve_run

__all__ = ["compare", "print_comparison"]

_STYLE = {"improved": "green", "regressed": "red", "unchanged": "dim", "not significant": ""}


def _fmt(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 10 else f"{x:.2f}"


def _p(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-4 else "<1e-4"


def _verdict(verdict: str) -> Text:
    return Text(verdict, style=_STYLE.get(verdict, ""))


def print_comparison(data: dict, out: Console, show: int = 10) -> None:
    """The comparison (``Comparison.to_dict()``) as tables a person reads."""
    for side in ("a", "b"):
        h = data[side]
        out.print(
            Text.assemble(
                (side.upper(), "bold"),
                f": suite {h['suite']} · model {h['model_path'] or 'base'} · "
                f"{h['n']} samples · {h['created_at']}",
            ),
            highlight=False,
        )
    if data["same_suite"]:
        out.print(f"same suite (hash {data['a']['suite_hash'][:12]}): {data['shared']} paired")
    for note in data["notes"]:
        out.print(Text.assemble(("note", "yellow"), f": {note}"), highlight=False)
    if data["only_a"] or data["only_b"]:
        out.print(f"unpaired: {data['only_a']} only in A, {data['only_b']} only in B")
    table = Table("metric", "n", "A", "B", "Δ (B − A)", "p", "test", "verdict")
    for m in data["metrics"]:
        table.add_row(
            m["name"],
            str(m["n"]),
            _fmt(m["a"]),
            _fmt(m["b"]),
            f"{m['delta']:+.4f}",
            _p(m["p_value"]),
            m["test"],
            _verdict(m["verdict"]),
        )
    out.print(table)
    if data["tags"]:
        tags = Table("tag", "n", "metric", "A", "B", "Δ", "p", "verdict")
        for tag, changes in data["tags"].items():
            for m in changes:
                tags.add_row(
                    tag,
                    str(m["n"]),
                    m["name"],
                    _fmt(m["a"]),
                    _fmt(m["b"]),
                    f"{m['delta']:+.4f}",
                    _p(m["p_value"]),
                    _verdict(m["verdict"]),
                )
        out.print(tags)
    for key, label in (("fixed", "fixed (wrong → right)"), ("broken", "broken (right → wrong)")):
        ids = data[key]
        if ids:
            more = f", … {len(ids) - show} more" if len(ids) > show else ""
            out.print(f"{label}: {len(ids)} — {', '.join(ids[:show])}{more}", highlight=False)
    up = [m["name"] for m in data["metrics"] if m["verdict"] == "improved"]
    down = [m["name"] for m in data["metrics"] if m["verdict"] == "regressed"]
    out.print(
        f"improvements: {', '.join(up) or 'none'} · regressions: {', '.join(down) or 'none'} "
        f"(p < {data['alpha']})"
    )


def _results_of(ref: Path, workspace: Path, registry: Path | None) -> tuple[str, dict[str, Path]]:
    """(a label, suite → result file) for a result file, a run (its best round) or a
    registered model (its round)."""
    if ref.is_file():
        return str(ref), {"": ref}
    if ref.suffix in (".jsonl", ".json"):
        raise ConfigError(f"{ref}: no such result file; give two EvalResult JSONL files")
    run = resolve_run(str(ref), workspace)
    if run is not None:
        summary = json.loads((run / "state.json").read_text(encoding="utf-8"))
        k = summary.get("best_round")
        if k is None:
            raise ConfigError(f"{run} has no best round yet (it has not finished)")
        label = f"run {run.name} round {k}"
    else:
        reg = Registry(registry or workspace / REGISTRY_FILE)
        if not reg.path.is_file():
            raise ConfigError(
                f"{ref}: not a result file, a run or a registered model (no registry at "
                f"{reg.path}); give two result files, two runs or two registry ids"
            )
        lineage = reg.get(str(ref))["record"]["lineage"]
        run, k = Path(lineage["run_path"]), lineage["round"]
        label = f"{ref} (run {lineage['run_id']} round {k})"
    folder = run / "rounds" / str(k) / "eval"
    return label, {p.stem: p for p in sorted(folder.glob("*.jsonl"))}


def compare(
    result_a: Annotated[
        Path,
        typer.Argument(help="The reference: a result (JSONL), a run, or a registry id."),
    ],
    result_b: Annotated[Path, typer.Argument(help="What to compare with it: the same kind as A.")],
    output: Annotated[
        Path | None, typer.Option(help="Where to write comparison.json (default: next to B).")
    ] = None,
    alpha: Annotated[
        float, typer.Option(min=0.0001, max=0.5, help="Significance level for a verdict.")
    ] = 0.05,
    show: Annotated[int, typer.Option(min=0, help="Sample ids to list per change.")] = 10,
    fail_on_regression: Annotated[
        bool, typer.Option(help="Exit 1 when any metric regressed significantly.")
    ] = False,
    workspace: Annotated[
        Path, typer.Option(help="Where run ids and registry ids are looked up.")
    ] = Path("."),
    registry: Annotated[
        Path | None, typer.Option(help="The registry file (default: in --workspace).")
    ] = None,
) -> None:
    """Compare two eval results sample by sample (per-metric and per-tag changes, paired
    tests), or two runs or two registered models suite by suite."""
    from evaltune.evals import EvalResult, compare_results

    def go() -> None:
        if not (result_a.is_file() and result_b.is_file()):
            return _compare_models(
                result_a, result_b, output, alpha, show, fail_on_regression, workspace, registry
            )
        comparison = compare_results(
            EvalResult.read_jsonl(result_a), EvalResult.read_jsonl(result_b), alpha=alpha
        )
        data = {"a_path": str(result_a), "b_path": str(result_b), **comparison.to_dict()}
        print_comparison(data, out, show)
        target = output or result_b.parent / "comparison.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        out.print(f"wrote {target}", highlight=False)
        if fail_on_regression and comparison.regressions:
            raise typer.Exit(1)

    guarded(go)


def _compare_models(
    ref_a: Path,
    ref_b: Path,
    output: Path | None,
    alpha: float,
    show: int,
    fail_on_regression: bool,
    workspace: Path,
    registry: Path | None,
) -> None:
    """Two runs or two registered models: every suite both have, compared."""
    from evaltune.evals import EvalResult, compare_results

    (label_a, files_a), (label_b, files_b) = (
        _results_of(ref, workspace, registry) for ref in (ref_a, ref_b)
    )
    if "" in files_a or "" in files_b:
        raise ConfigError("compare two result files, two runs or two registry ids, not a mix")
    suites = sorted(set(files_a) & set(files_b))
    if not suites:
        raise ConfigError(f"{label_a} and {label_b} share no eval suite")
    out.print(f"A: {label_a}\nB: {label_b}", highlight=False)
    results, regressed = {}, False
    for suite in suites:
        out.print(Text.assemble(("suite ", "bold"), (suite, "bold")), highlight=False)
        comparison = compare_results(
            EvalResult.read_jsonl(files_a[suite]),
            EvalResult.read_jsonl(files_b[suite]),
            alpha=alpha,
        )
        data = {
            "a_path": str(files_a[suite]),
            "b_path": str(files_b[suite]),
            **comparison.to_dict(),
        }
        print_comparison(data, out, show)
        results[suite] = data
        regressed = regressed or bool(comparison.regressions)
    target = output or files_b[suites[0]].parent / "comparison.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    doc = {"a": label_a, "b": label_b, "suites": results}
    target.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.print(f"wrote {target}", highlight=False)
    if fail_on_regression and regressed:
        raise typer.Exit(1)
