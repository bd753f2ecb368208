"""``evaltune bench`` against a real ``evaltune serve`` (the tiny model), through CliRunner.

Its results are EvalResult files that ``evaltune compare`` reads; a wrong URL, key, model or
suite is one clear ``error:`` line naming what to fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evaltune.cli import app
from evaltune.evals import EvalResult
from evaltune.server.launch import free_port
from serve_once import SharedServer, serve_once
from tiny import CHAT_TEMPLATE, write_tiny_model

FIXTURES = Path(__file__).parents[1] / "fixtures" / "benchmarks"
ROWS = [
    {"id": "greet", "prompt": "hello there!", "completion": "hi", "tags": ["chat"]},
    {"id": "sum", "prompt": "What is two plus two?", "completion": "four", "tags": ["math"]},
    {"id": "italy", "prompt": "What is the capital of Italy?", "completion": "Rome"},
    {"id": "fox", "prompt": "The quick brown fox", "completion": "jumps", "tags": ["chat"]},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> SharedServer:
    """The tiny model with a chat template, served as ``tiny``."""
    folder = write_tiny_model(tmp_path_factory.mktemp("tiny-bench"), chat_template=CHAT_TEMPLATE)
    return serve_once(folder, ("--served-model-name", "tiny"))


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def bench(server: SharedServer, *args: str, key_env: str | None = None):
    base = ["bench", "--endpoint", server.base_url, "--api-key-env", key_env or server.key_env]
    return CliRunner().invoke(app, [*base, *args])


def flat(text: str) -> str:
    return " ".join(text.split())


def test_bench_writes_results_that_compare_reads(
    server: SharedServer, suite: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "chat.jsonl", tmp_path / "completions.jsonl"
    common = ["--model", "tiny", "--suite", str(suite), "--max-tokens", "8"]
    done = bench(server, *common, "--output", str(a), "--concurrency", "4")
    assert done.exit_code == 0, done.output
    assert "qa: accuracy" in done.output and "math" in done.output  # accuracy per tag
    result = EvalResult.read_jsonl(a)
    assert [r.id for r in result.records] == ["greet", "sum", "italy", "fox"]
    assert result.model_path == "tiny" and result.metrics["n"] == 4
    assert result.sampling["endpoint"] == f"{server.base_url}/v1"
    assert result.provenance["endpoint"] == f"{server.base_url}/v1"
    assert all(r.num_tokens > 0 and r.stop_reason in ("stop", "length") for r in result.records)

    done = bench(server, *common, "--api", "completions", "--output", str(b))
    assert done.exit_code == 0, done.output
    assert EvalResult.read_jsonl(b).sampling["api"] == "completions"

    compared = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert compared.exit_code == 0, compared.output
    data = json.loads((tmp_path / "comparison.json").read_text())
    assert data["shared"] == 4 and data["a"]["model_path"] == "tiny"


def test_bench_runs_named_benchmark_formats(server: SharedServer, tmp_path: Path) -> None:
    out = tmp_path / "results"
    gsm8k = ["--suite", str(FIXTURES / "gsm8k.jsonl"), "--benchmark", "gsm8k", "--limit", "2"]
    done = bench(server, "--model", "tiny", *gsm8k, "--max-tokens", "8", "--output", str(out))
    assert done.exit_code == 0, done.output
    result = EvalResult.read_jsonl(out / "gsm8k.jsonl")
    assert result.provenance["benchmark"] == "gsm8k" and result.metrics["n"] == 2
    assert "exact_match" in result.metrics  # the benchmark's own scorer graded it

    # A benchmark by name, from the copy evaltune ships (no download).
    done = bench(server, "--model", "tiny", "--suite", "safety", "--limit", "2",
                 "--max-tokens", "8", "--output", str(out))  # fmt: skip
    assert done.exit_code == 0, done.output
    assert EvalResult.read_jsonl(out / "safety.jsonl").provenance["benchmark"] == "safety"


def test_bench_errors_are_one_clear_line(
    server: SharedServer, suite: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    common = ["--suite", str(suite), "--max-tokens", "4", "--retries", "0"]
    monkeypatch.setenv("WRONG_KEY", "tml-wrong")
    done = bench(server, "--model", "tiny", *common, key_env="WRONG_KEY")
    assert done.exit_code == 1
    message = flat(done.output)
    assert f"error: {server.base_url}/v1/chat/completions answered 401" in message
    assert "the key from $WRONG_KEY (--api-key-env names another variable) was refused" in message
    assert "Traceback" not in done.output

    monkeypatch.delenv("UNSET_KEY", raising=False)
    done = bench(server, "--model", "tiny", *common, key_env="UNSET_KEY")
    assert done.exit_code == 1 and "no API key was sent: put it in $UNSET_KEY" in flat(done.output)

    done = bench(server, "--model", "tiny-typo", *common)
    assert done.exit_code == 1
    assert "model 'tiny-typo' is not served there; it serves: " in flat(done.output)
    assert "tiny" in flat(done.output).split("it serves: ")[1]

    port = free_port()
    refused = ["bench", "--endpoint", f"http://127.0.0.1:{port}", "--model", "tiny", *common]
    done = CliRunner().invoke(app, refused)
    assert done.exit_code == 1
    assert f"cannot connect to http://127.0.0.1:{port}/v1/chat/completions" in flat(done.output)

    done = CliRunner().invoke(app, ["bench", "--endpoint", "127.0.0.1:8000", "--model", "m",
                                    *common])  # fmt: skip
    assert done.exit_code == 2 and "is not an http(s) URL" in flat(done.output)
    done = bench(server, "--model", "tiny", "--suite", "gsm8", "--retries", "0")
    assert done.exit_code == 2
    assert "--suite 'gsm8' is not a file, a benchmark or a bundle (did you mean 'gsm8k'?)" in (
        flat(done.output)
    )
