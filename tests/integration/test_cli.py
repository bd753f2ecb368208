"""The ``evaltune`` command line through typer's CliRunner: exit codes, messages, outputs.

A user's mistake prints one ``error:`` line without a traceback and exits 2 (config/usage) or 1
(runtime). Commands that need a model run on the tiny one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from evaltune import __version__
from evaltune.cli import app
from evaltune.config import load_config
from evaltune.errors import ConfigError
from evaltune.evals import EvalResult

COMMANDS = ["run", "demo", "resume", "train", "eval", "init", "models"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def unwrapped(text: str) -> str:
    """Output with rich's line wrapping undone (it wraps at 80 columns when not a terminal):
    runs of whitespace, line breaks included, become one space."""
    return " ".join(text.split())


def squashed(text: str) -> str:
    """Output without any whitespace: a long path that rich folded mid-word is whole again."""
    return "".join(text.split())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-data")
    with open(folder / "train.jsonl", "w") as f:
        for i in range(8):
            row = {"question": f"What is {i} plus {i}?", "answer": str(2 * i), "tags": ["train"]}
            f.write(json.dumps(row) + "\n")
    with open(folder / "eval.jsonl", "w") as f:
        for i in range(12, 16):
            tag = "odd" if i % 2 else "even"
            row = {"question": f"What is {i} plus {i}?", "answer": str(2 * i), "tags": [tag]}
            f.write(json.dumps(row) + "\n")
    return folder


def write_config(folder: Path, data_dir: Path, model: Path) -> Path:
    """A one-round loop config for the tiny model; runs go to ``folder/ws``."""
    config = {
        "base_model": str(model),
        "data": {
            "train": str(data_dir / "train.jsonl"),
            "validation": str(data_dir / "eval.jsonl"),
            "renderer": "role_colon",
        },
        "lora": {"rank": 8},
        "training": {"batch_size": 4, "steps_per_round": 4, "learning_rate": 1e-2},
        "evals": [
            {
                "name": "qa",
                "file": str(data_dir / "eval.jsonl"),
                "threshold": 0.9,
                "max_tokens": 4,
            }
        ],
        "loop": {"max_rounds": 1},
        "output": {"workspace": str(folder / "ws"), "run_name": "cli"},
    }
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def tiny_config(data_dir: Path, tiny_model_dir: Path, tmp_path: Path) -> Path:
    return write_config(tmp_path, data_dir, tiny_model_dir)


@pytest.fixture(scope="module")
def finished_run(
    data_dir: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A loop run (1 round) made through the library, for commands that read its outputs."""
    from evaltune.loop import run_loop

    config = write_config(tmp_path_factory.mktemp("cli-run"), data_dir, tiny_model_dir)
    return run_loop(load_config(config)).path


# -- global options and help ----------------------------------------------------------------
def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"evaltune {__version__}"


def test_no_arguments_shows_help(runner: CliRunner) -> None:
    result = runner.invoke(app, [])
    assert result.exit_code in (0, 2)
    assert "Usage" in result.output
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(runner: CliRunner, command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output and command in result.output


def test_eval_help_reads_the_grader_catalogue(runner: CliRunner) -> None:
    from evaltune.evals.graders import GRADERS

    result = runner.invoke(app, ["eval", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert ", ".join(GRADERS) + "." in unwrapped(result.output)


def test_unknown_command(runner: CliRunner) -> None:
    result = runner.invoke(app, ["trian"])
    assert result.exit_code == 2
    assert "trian" in result.output


# -- run ------------------------------------------------------------------------------------
def test_run_missing_file(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["run", "missing.yaml"])
    assert result.exit_code == 2
    assert result.stderr == "error: config file not found: missing.yaml\n"
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_run_missing_file_with_a_long_path_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / ("deep-folder-" * 4) / "config.yaml"
    result = runner.invoke(app, ["run", str(missing)])
    assert result.exit_code == 2
    assert result.stderr == f"error: config file not found: {missing}\n"


def test_debug_reraises(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "run", str(tmp_path / "missing.yaml")])
    assert isinstance(result.exception, ConfigError)
    assert "config file not found" in str(result.exception)


def test_run_bad_config_names_file_line_and_field(
    runner: CliRunner, tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = tiny_config.read_text().splitlines()
    index = lines.index("training:")
    lines[index] = "trainig:"
    bad = tiny_config.with_name("bad.yaml")
    bad.write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(bad.parent)
    result = runner.invoke(app, ["run", "bad.yaml"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    message = unwrapped(result.stderr)
    assert message.startswith(f"error: bad.yaml:{index + 1}: trainig: unknown field")
    assert "did you mean 'training'?" in message
    assert not (bad.parent / "ws").exists()  # nothing ran


def test_run_bad_override(runner: CliRunner, tiny_config: Path) -> None:
    result = runner.invoke(app, ["run", str(tiny_config), "training.learning_rate=fast"])
    assert result.exit_code == 2
    message = unwrapped(result.stderr)
    assert message.startswith("error: override 'training.learning_rate=fast'")
    assert 'expected a finite number > 0 or "auto"; found "fast"' in message


def test_run_good_config(runner: CliRunner, tiny_config: Path) -> None:
    result = runner.invoke(app, ["run", str(tiny_config)])
    assert result.exit_code == 0, result.output
    (run,) = (tiny_config.parent / "ws" / "runs").iterdir()
    assert squashed(f"run folder: {run.resolve()}") in squashed(result.stdout)
    assert json.loads((run / "summary.json").read_text())["stop_reason"] == "max_rounds"
    assert "round 1 · decision: max_rounds" in unwrapped(result.stderr)


def test_run_with_overrides(runner: CliRunner, tiny_config: Path) -> None:
    result = runner.invoke(app, ["run", str(tiny_config), "training.steps_per_round=2"])
    assert result.exit_code == 0, result.output
    (run,) = (tiny_config.parent / "ws" / "runs").iterdir()
    assert load_config(run / "config.yaml").training.steps_per_round == 2
    assert len(json.loads((run / "rounds/1/train.json").read_text())["steps"]) == 2


def test_interrupt_exits_130_with_a_hint(
    runner: CliRunner, tiny_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import evaltune.loop

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(evaltune.loop, "run_loop", interrupted)
    result = runner.invoke(app, ["run", str(tiny_config)])
    assert result.exit_code == 130
    assert "evaltune resume" in unwrapped(result.stderr)


# -- resume ---------------------------------------------------------------------------------
def test_resume_a_folder_that_is_not_a_run(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["resume", str(tmp_path)])
    assert result.exit_code == 1
    message = unwrapped(result.stderr)
    assert message.startswith("error: ")
    assert "is not an evaltune run folder (no state.json)" in message
    assert "Traceback" not in result.output


# -- eval -----------------------------------------------------------------------------------
def test_eval_prints_accuracy_and_tags(
    runner: CliRunner, tiny_model_dir: Path, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results" / "qa.jsonl"
    args = ["eval", "--model", str(tiny_model_dir), "--suite", str(data_dir / "eval.jsonl")]
    args += ["--renderer", "role_colon", "--max-tokens", "4", "--output", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    stdout = result.stdout
    assert re.search(r"eval: accuracy \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] on 4 items", stdout)
    assert re.search(r"│ even\s+│ \d\.\d{3}\s+│ 2 │", stdout)
    assert re.search(r"│ odd\s+│ \d\.\d{3}\s+│ 2 │", stdout)
    saved = EvalResult.read_jsonl(out)
    assert saved.suite == "eval"
    assert len(saved.records) == 4
    assert set(saved.per_tag) == {"even", "odd"}
    assert saved.sampling["max_tokens"] == 4
    assert f"{saved.metrics['accuracy']:.3f}" in stdout


def eval_args(model: str, data_dir: Path) -> list[str]:
    suite = str(data_dir / "eval.jsonl")
    return ["eval", "--model", model, "--suite", suite, "--renderer", "role_colon"]


def test_eval_a_loop_checkpoint_folder(
    runner: CliRunner, finished_run: Path, data_dir: Path
) -> None:
    summary = json.loads((finished_run / "summary.json").read_text())
    folder = summary["best"]["checkpoint"]["sampler_folder"]
    result = runner.invoke(app, [*eval_args(folder, data_dir), "--max-tokens", "4"])
    assert result.exit_code == 0, result.output
    assert "eval: accuracy" in result.stdout


def test_eval_the_checkpoint_uri_the_report_names(
    runner: CliRunner, finished_run: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the workspace (where runs/ is), the tinker:// URI in the report resolves."""
    monkeypatch.chdir(finished_run.parent.parent)
    uri = json.loads((finished_run / "summary.json").read_text())["best"]["checkpoint"]["sampler"]
    assert f"`{uri}`" in (finished_run / "report.md").read_text()
    result = runner.invoke(app, [*eval_args(uri, data_dir), "--max-tokens", "4"])
    assert result.exit_code == 0, result.output


def test_resume_a_finished_run(runner: CliRunner, finished_run: Path) -> None:
    result = runner.invoke(app, ["resume", str(finished_run)])
    assert result.exit_code == 0, result.output
    assert "run already finished (max_rounds); nothing to resume" in unwrapped(result.stderr)
    assert squashed(f"run folder: {finished_run.resolve()}") in squashed(result.stdout)


def test_eval_unknown_grader_lists_the_choices(
    runner: CliRunner, tiny_model_dir: Path, data_dir: Path
) -> None:
    args = ["eval", "--model", str(tiny_model_dir), "--suite", str(data_dir / "eval.jsonl")]
    result = runner.invoke(app, [*args, "--grader", "exat"])
    assert result.exit_code in (1, 2)
    message = unwrapped(result.stderr)
    assert "unknown grader 'exat'" in message
    for name in ("exact", "normalized", "numeric", "contains", "regex", "choice"):
        assert name in message
    assert "Traceback" not in result.output


def test_eval_missing_suite(runner: CliRunner, tiny_model_dir: Path, tmp_path: Path) -> None:
    args = ["eval", "--model", str(tiny_model_dir), "--suite", str(tmp_path / "none.jsonl")]
    result = runner.invoke(app, args)
    assert result.exit_code in (1, 2)
    assert unwrapped(result.stderr).startswith("error: ")
    assert "none.jsonl" in squashed(result.stderr)
    assert "Traceback" not in result.output


# -- init -----------------------------------------------------------------------------------
def test_init_writes_a_valid_starter(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "starter"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in target.iterdir())
    assert names == ["config.yaml", "eval.jsonl", "pool.jsonl", "train.jsonl"]
    cfg = load_config(target / "config.yaml")  # the data files it names exist
    assert Path(cfg.data.train[0]) == target / "train.jsonl"
    assert "evaltune run" in unwrapped(result.stdout)


def test_init_into_an_empty_existing_folder(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "config.yaml").is_file()


def test_init_refuses_a_non_empty_folder(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not empty" in unwrapped(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_init_on_an_existing_file(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 2
    assert unwrapped(result.stderr).startswith("error: ")
    assert target.read_text() == "keep me"


# -- train ----------------------------------------------------------------------------------
def test_train_prints_loss_first_to_last(runner: CliRunner, tiny_config: Path) -> None:
    result = runner.invoke(app, ["train", str(tiny_config)])
    assert result.exit_code == 0, result.output
    stdout = result.stdout
    match = re.search(r"train loss \(first → last step\)\s*│\s*(\d+\.\d+) → (\d+\.\d+)", stdout)
    assert match, stdout
    first, last = float(match[1]), float(match[2])
    assert last < first
    assert re.search(r"validation NLL \(before → after\)\s*│\s*\d+\.\d+ → \d+\.\d+", stdout)
    (run,) = (tiny_config.parent / "ws" / "runs").iterdir()
    assert run.name.endswith("-train-cli")
    summary = json.loads((run / "train.json").read_text())
    assert len(summary["steps"]) == 4
    assert f"{summary['first_loss']:.3f} → {summary['final_loss']:.3f}" in stdout


def test_train_steps_option(runner: CliRunner, tiny_config: Path) -> None:
    result = runner.invoke(app, ["train", str(tiny_config), "--steps", "2"])
    assert result.exit_code == 0, result.output
    (run,) = (tiny_config.parent / "ws" / "runs").iterdir()
    assert len(json.loads((run / "train.json").read_text())["steps"]) == 2


def test_models_lists_the_builtin_alias(runner: CliRunner) -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "gemma-3-270m" in result.stdout


def test_train_rejects_negative_steps(runner: CliRunner, tiny_config: Path) -> None:
    result = runner.invoke(app, ["train", str(tiny_config), "--steps", "-1"])
    assert result.exit_code == 2
    assert "steps" in unwrapped(result.output)
    assert result.exception is None or isinstance(result.exception, SystemExit)


# -- literal error text, short values, no model code on the config error path ----------------
def test_markup_in_a_path_prints_literally(runner: CliRunner, tmp_path: Path) -> None:
    # rich would parse "[/x]" as a closing tag (MarkupError), drop "[bold]" and turn ":smile:"
    # into an emoji: error text is printed as it is.
    path = tmp_path / "[/x]" / "[bold]run:smile:.yaml"
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2, result.output
    assert f"config file not found: {path}" in unwrapped(result.stderr)
    assert "Traceback" not in result.output


def test_markup_in_an_override_prints_literally(runner: CliRunner, tiny_config: Path) -> None:
    result = runner.invoke(app, ["run", str(tiny_config), "training.learning_rate=[red]x[/]"])
    assert result.exit_code == 2, result.output
    assert "override 'training.learning_rate=[red]x[/]'" in unwrapped(result.stderr)


def test_markup_in_a_data_field_prints_literally(
    runner: CliRunner, tiny_model_dir: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "suite.jsonl"
    suite.write_text('{"question": "q", "answer": "a", "tags": "[/oops]"}\n')
    args = ["eval", "--model", str(tiny_model_dir), "--suite", str(suite)]
    result = runner.invoke(app, [*args, "--max-tokens", "2"])
    assert result.exit_code == 0, result.output
    assert "│ [/oops] │" in result.stdout  # the per-tag table, tag as written
    assert "Traceback" not in result.output


def test_a_huge_value_is_shortened_in_the_error(runner: CliRunner, tiny_config: Path) -> None:
    value = "x" * 100_000
    result = runner.invoke(app, ["run", str(tiny_config), f"training.learning_rate={value}"])
    assert result.exit_code == 2, result.output
    # the config layer shortens the value itself (config.messages.show); the console's own cut
    # ("characters left out", test below) is the backstop for anything longer
    assert "…" in result.stderr
    assert max(len(line) for line in result.stderr.splitlines()) < 1000


def test_shorten_keeps_short_lines_and_cuts_long_ones() -> None:
    from evaltune.cli.console import shorten

    assert shorten("a\nb [/x]") == "a\nb [/x]"
    cut = shorten("head" + "x" * 5000 + "tail", limit=100)
    assert cut.startswith("headx") and cut.endswith("xtail") and len(cut) < 150
    assert "(4908 characters left out)" in cut


def test_a_bad_config_imports_no_model_code(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("base_model: tiny\nfoo: 1\n")
    script = (
        "import sys\n"
        "from evaltune.cli import app\n"
        f"try:\n    app(['run', {str(bad)!r}])\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'tinker') if m in sys.modules]\n"
        "print('exit', code, 'heavy', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert "foo: unknown field" in done.stderr
    assert done.stdout.strip() == "exit 2 heavy []", done.stderr


# -- a diverged round -------------------------------------------------------------------------
def test_a_diverged_run_exits_1_and_resumes_with_a_lower_learning_rate(
    runner: CliRunner, tiny_config: Path
) -> None:
    result = runner.invoke(app, ["run", str(tiny_config), "training.learning_rate=1e30"])
    assert result.exit_code == 1, result.output
    message = unwrapped(result.stderr)
    assert "error: training diverged at step 2 of 4" in message
    assert "training.learning_rate=<lower>" in message
    assert "Traceback" not in result.output
    (run,) = (tiny_config.parent / "ws" / "runs").iterdir()
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "failed" and "diverged" in state["error"]
    assert not (run / "rounds" / "1" / "train.json").exists()

    result = runner.invoke(app, ["resume", str(run), "training.learning_rate=1e-2"])
    assert result.exit_code == 0, result.output
    assert "the last attempt failed: training diverged" in unwrapped(result.stderr)
    state = json.loads((run / "state.json").read_text())
    assert (state["status"], state["error"]) == ("finished", None)
    assert state["rounds"][1]["lr"] == pytest.approx(1e-2)
    assert load_config(run / "config.yaml").training.learning_rate == pytest.approx(1e-2)


def test_resume_refuses_overrides_outside_training(runner: CliRunner, finished_run: Path) -> None:
    result = runner.invoke(app, ["resume", str(finished_run), "loop.max_rounds=9"])
    assert result.exit_code == 2, result.output
    assert "resume takes overrides of training.* only" in unwrapped(result.stderr)
