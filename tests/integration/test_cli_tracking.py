"""``evaltune runs``, ``show``, ``report``, ``registry …`` and ``compare`` on runs and registry
ids, through CliRunner on hand-built run folders (no model): outputs, exit codes, one-line
errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaltune.cli import app
from run_fixture import make_run


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    make_run(tmp_path, "alpha", correct=(2, 5, 7))
    make_run(tmp_path, "beta", correct=(2, 3, 4), guard_correct=(6, 6, 2))
    return tmp_path


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return flat(result.output)


@pytest.mark.parametrize("command", ["runs", "show", "report", "registry"])
def test_every_new_command_has_help(command: str) -> None:
    assert "Usage" in invoke(command, "--help")


def test_runs_show_and_report(ws: Path) -> None:
    (alpha, beta) = sorted(p.name for p in (ws / "runs").iterdir())
    listing = invoke("runs", "--workspace", str(ws))
    assert alpha in listing and beta in listing and "max_rounds" in listing
    assert "0.875" in listing and "finished" in listing
    shown = invoke("show", alpha[:-2], "--workspace", str(ws))  # a unique prefix
    assert f"run {alpha} · finished" in shown and "best: round 2" in shown
    (ws / "runs" / alpha / "report.html").unlink(missing_ok=True)
    written = invoke("report", str(ws / "runs" / alpha))
    assert "report.html" in written and (ws / "runs" / alpha / "report.html").is_file()
    assert (ws / "runs" / alpha / "EXPERIMENT.md").is_file()
    assert "error: no run 'nope'" in invoke("show", "nope", "--workspace", str(ws), code=2)
    assert "no runs in" in invoke("runs", "--workspace", str(ws / "empty"))


def test_registry_add_promote_retire_show_and_export(ws: Path) -> None:
    alpha, beta = sorted((ws / "runs").iterdir())
    assert "registered alpha-v1 (candidate)" in invoke("registry", "add", str(alpha))
    assert "already registered as alpha-v1" in invoke("registry", "add", str(alpha))
    assert "registered alpha-v2" in invoke("registry", "add", str(alpha), "--round", "1")
    invoke("registry", "add", str(beta), "--name", "alpha")  # a broken guard, same name
    reg = ("--workspace", str(ws))
    listing = invoke("registry", "list", *reg)
    assert "alpha-v3 candidate" in listing and "GUARDS BROKEN" in listing
    assert "qa accuracy 0.875 [" in listing
    promoted = invoke(
        "registry",
        "promote",
        "alpha-v1",
        "--to",
        "production",
        "--why",
        "best qa",
        "--who",
        "ana",
        *reg,
    )
    assert "alpha-v1: candidate → production (ana: best qa)" in promoted
    refused = invoke("registry", "promote", "alpha-v3", "--to", "production", *reg, code=2)
    assert refused.startswith("error: alpha-v3 broke a guard") and "--force" in refused
    forced = invoke(
        "registry",
        "promote",
        "alpha-v3",
        "--to",
        "production",
        "--force",
        "--why",
        "hotfix",
        "--who",
        "ben",
        *reg,
    )
    assert "alpha-v1: production → retired (ben: alpha-v3 promoted to production)" in forced
    assert "forced past a broken guard: hotfix" in forced
    assert "alpha-v2: candidate → retired" in invoke("registry", "retire", "alpha-v2", *reg)
    shown = invoke("registry", "show", "alpha-v1", *reg)
    assert "production → retired by ben" in shown and "sha256" in shown
    record = json.loads(
        CliRunner().invoke(app, ["registry", "show", "alpha-v1", "--json", *reg]).output
    )
    assert record["record"]["lineage"]["round"] == 2 and len(record["history"]) == 3
    assert "wrote" in invoke("registry", "export", *reg)
    doc = (ws / "REGISTRY.md").read_text()
    assert "Production: alpha-v3" in doc and "## alpha" in doc
    assert "error: no model 'alpha-v9'" in invoke("registry", "show", "alpha-v9", *reg, code=2)
    assert "unknown status 'live'" in invoke(
        "registry", "promote", "alpha-v2", "--to", "live", *reg, code=2
    )
    assert "no model registry" in invoke(
        "registry", "show", "x", "--workspace", str(ws / "no"), code=2
    )


def test_compare_two_runs_and_two_registered_models(ws: Path) -> None:
    alpha, beta = sorted((ws / "runs").iterdir())
    out = invoke("compare", str(alpha), str(beta))
    assert "suite qa" in out and "suite guard" in out and "regressions:" in out
    saved = json.loads((beta / "rounds" / "2" / "eval" / "comparison.json").read_text())
    assert set(saved["suites"]) == {"guard", "qa"}
    invoke("registry", "add", str(alpha))
    invoke("registry", "add", str(beta))
    by_id = invoke(
        "compare", "alpha-v1", "beta-v1", "--workspace", str(ws), "--output", str(ws / "cmp.json")
    )
    assert "A: alpha-v1 (run" in by_id and "suite qa" in by_id
    qa = json.loads((ws / "cmp.json").read_text())["suites"]["qa"]
    assert qa["metrics"][0]["name"] == "accuracy" and qa["metrics"][0]["delta"] == pytest.approx(
        -3 / 8
    )
    mixed = invoke("compare", str(alpha), str(alpha / "rounds" / "1" / "eval" / "qa.jsonl"), code=2)
    assert "not a mix" in mixed
