"""RunConfig: loading, overrides, the seed format, error messages (file:line: path), reference."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from evaltune.config import (
    NameCatalog,
    RunConfig,
    dump_config,
    is_seed_format,
    load_config,
)
from evaltune.config.__main__ import main
from evaltune.config.reference import render_reference
from evaltune.config.seed import map_renderer
from evaltune.errors import ConfigError
from evaltune.loop.context import CONFIG_NAMES  # registers the names configs are checked against

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
data:
  train: train.jsonl
evals:
  - name: arith
    file: arith.jsonl
    threshold: 0.8
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder with the small data files the configs below point at."""
    for name in ("train.jsonl", "arith.jsonl", "caps.jsonl"):
        (tmp_path / name).write_text('{"prompt": "2+2?", "completion": "4"}\n')
    return tmp_path


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def config_error(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(info.value)


# --- bad configs: each message names the file, the line and the key path ---------------------

BAD = {
    "wrong_type": (
        GOOD + "lora:\n  rank: big\n",
        ['{f}:8: lora.rank: expected an integer in [1, 4096]; found "big"'],
    ),
    "negative_rank": (
        GOOD + "lora:\n  rank: -2\n",
        ["{f}:8: lora.rank: expected an integer in [1, 4096]; found -2"],
    ),
    "unknown_key_with_suggestion": (
        GOOD + "lora:\n  rnak: 4\n",
        ["{f}:8: lora.rnak: unknown field; did you mean 'rank'?"],
    ),
    "key_in_the_wrong_section": (
        GOOD + "learning_rate: 0.001\n",
        ["{f}:7: learning_rate: unknown field; did you mean 'training.learning_rate'?"],
    ),
    "missing_evals": (
        "data:\n  train: train.jsonl\n",
        ["{f}:1: evals: expected a list of mappings (required: evaluation suites", "found nothing"],
    ),
    "empty_evals": (
        "data:\n  train: train.jsonl\nevals: []\n",
        ["{f}:3: evals: expected a list of mappings with at least 1 item; found []"],
    ),
    "target_without_threshold": (
        "data:\n  train: train.jsonl\nevals:\n  - name: arith\n    file: arith.jsonl\n",
        ["{f}:4: evals.0.threshold: expected a number in [0, 1]: a target suite needs a threshold"],
    ),
    "threshold_out_of_range": (
        GOOD.replace("0.8", "1.5"),
        ["{f}:6: evals.0.threshold: expected a number in [0, 1] or null; found 1.5"],
    ),
    "duplicate_suite_names": (
        GOOD + "  - name: arith\n    file: caps.jsonl\n    role: guard\n",
        [
            "{f}:7: evals.1.name: expected a unique suite name (evals.0.name is also 'arith'); "
            'found "arith"'
        ],
    ),
    "bad_regex_pattern": (
        GOOD + "    grader: regex\n    pattern: '(unclosed'\n",
        ["{f}:8: evals.0.pattern: expected a valid regular expression (missing ), unterminated"],
    ),
    "regex_grader_without_pattern": (
        GOOD + "    grader: regex\n",
        ["{f}:4: evals.0.pattern: expected a regular expression: the regex grader needs"],
    ),
    "pattern_without_regex_grader": (
        GOOD + "    pattern: '\\d+'\n",
        ["{f}:7: evals.0.pattern: expected no pattern: only the regex grader uses one"],
    ),
    "unknown_grader": (
        GOOD + "    grader: exat\n",
        [
            "{f}:7: evals.0.grader: expected one of: " + ", ".join(CONFIG_NAMES.graders or ()),
            "(did you mean 'exact'?); found \"exat\"",
        ],
    ),
    "bad_suite_name": (
        GOOD.replace("name: arith", "name: my suite"),
        ["{f}:4: evals.0.name: expected a name of letters, digits, '_' and '-'"],
    ),
    "unknown_backend_lists_choices": (
        "backend: tinkr\n" + GOOD,
        [
            "{f}:1: backend: expected one of: local, tinker (did you mean 'tinker'?); found \"tinkr\""
        ],
    ),
    "learning_rate_not_a_number": (
        GOOD + "training:\n  batch_size: 4\n  learning_rate: fast\n",
        ['{f}:9: training.learning_rate: expected a finite number > 0 or "auto"; found "fast"'],
    ),
    "quoted_integer": (
        GOOD + "training:\n  batch_size: '8'\n",
        ['{f}:8: training.batch_size: expected an integer in [1, 65536]; found "8"'],
    ),
    "lr_decay_out_of_range": (
        GOOD + "loop:\n  lr_decay: 0\n",
        ["{f}:8: loop.lr_decay: expected a number in (0, 1]; found 0"],
    ),
    "missing_data_file": (
        GOOD.replace("train: train.jsonl", "train: [train.jsonl, nope.jsonl]"),
        ['{f}:2: data.train.1: expected an existing file; found "{d}/nope.jsonl"'],
    ),
    "renderer_typo": (
        GOOD.replace("  train: train.jsonl\n", "  train: train.jsonl\n  renderer: chatml\n"),
        [
            "{f}:3: data.renderer: expected one of: auto, chat_template, role_colon, plain "
            "(did you mean 'chat_template'?); found \"chatml\""
        ],
    ),
    "api_key_in_config": (
        "tinker:\n  api_key: sk-very-secret\n" + GOOD,
        [
            "{f}:2: tinker.api_key: unknown field: never put a key in a config; set it in the "
            "environment variable named by tinker.api_key_env (default TINKER_API_KEY)"
        ],
    ),
    "key_pasted_as_env_name": (
        "tinker:\n  api_key_env: sk-very-secret\n" + GOOD,
        ["{f}:2: tinker.api_key_env: expected the NAME of an environment variable"],
    ),
    "secret_in_extras": (
        GOOD + "extras:\n  evalops_api_key: sk-very-secret\n",
        ["{f}:8: extras.evalops_api_key: expected a non-secret value"],
    ),
    "duplicate_yaml_key": (
        GOOD + "lora:\n  rank: 4\nlora:\n  rank: 8\n",
        ["{f}:9: lora: duplicate key (first at line 7); only the last one would count"],
    ),
    "invalid_yaml_syntax": (
        "data:\n  train: train.jsonl\n   oops: 1\n",
        ["{f}:3:8: invalid YAML: mapping values are not allowed here"],
    ),
    "tab_indentation": (
        "data:\n\ttrain: train.jsonl\n",
        ["{f}:2:1: invalid YAML: found character '\\t'", "indent YAML with spaces, not tabs"],
    ),
    "empty_file": ("", ["{f}:1: the config is empty; expected a mapping"]),
    "top_level_list": (
        "- data\n- evals\n",
        ['{f}:1: expected a mapping of config keys (base_model, data, evals, ...); found ["data"'],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_message_names_file_line_and_field(workdir: Path, case: str) -> None:
    text, expected = BAD[case]
    path = write(workdir, "run.yaml", text)
    message = config_error(path)
    for fragment in expected:
        assert fragment.format(f=path, d=workdir) in message, message
    assert "sk-very-secret" not in message  # a secret is never echoed back


def test_bad_json_reports_the_key_line(workdir: Path) -> None:
    text = json.dumps(
        {"data": {"train": "train.jsonl"}, "lora": {"rank": 0}, "evals": [{"name": "a"}]},
        indent=2,
    )
    path = write(workdir, "run.json", text)
    message = config_error(path)
    assert f"{path}:6: lora.rank: expected an integer in [1, 4096]; found 0" in message
    assert f"{path}:9: evals.0.file: expected a non-empty string" in message


def test_json_that_is_not_yaml_still_gets_key_lines(workdir: Path) -> None:
    data = {"data": {"train": "train.jsonl"}, "lora": {"rank": 0}, "evals": []}
    path = write(workdir, "run.json", json.dumps(data, indent="\t"))  # tabs: not YAML
    message = config_error(path)
    assert f"{path}:6: lora.rank: expected an integer in [1, 4096]; found 0" in message
    assert f"{path}:8: evals: expected a list of mappings with at least 1 item" in message


def test_invalid_json_syntax_gives_line_and_column(workdir: Path) -> None:
    path = write(workdir, "run.json", '{\n  "data": 1,\n  "evals" []\n}\n')
    assert config_error(path) == f"{path}:3:11: invalid JSON: Expecting ':' delimiter"


def test_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"config file not found: {missing}"):
        load_config(missing)


def test_three_mistakes_give_one_error_listing_all_three(workdir: Path) -> None:
    text = GOOD + "lora:\n  rank: 0\ntraining:\n  shedule: cosine\n" + "backend: gpu\n"
    path = write(workdir, "run.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"3 problems in {path}:\n")
    assert f"{path}:8: lora.rank: expected an integer in [1, 4096]; found 0" in message
    assert f"{path}:10: training.shedule: unknown field; did you mean 'schedule'?" in message
    assert f'{path}:11: backend: expected one of: local, tinker; found "gpu"' in message
    assert isinstance(info.value, ValueError)


def test_a_duplicate_suite_name_is_reported_even_when_another_suite_has_an_error(
    workdir: Path,
) -> None:
    # suite 0 has a bad grader, so the list's own validator never runs; the duplicate name of
    # suite 1 (and of suite 2) is still in the same error, on its own line
    text = GOOD.replace("    threshold: 0.8\n", "    threshold: 0.8\n    grader: nope\n") + (
        "  - name: arith\n    file: caps.jsonl\n    role: guard\n"
        "  - name: arith\n    file: caps.jsonl\n    role: guard\n"
    )
    path = write(workdir, "run.yaml", text)
    message = config_error(path)
    assert message.startswith(f"3 problems in {path}:\n")
    assert f"{path}:7: evals.0.grader: expected one of: " in message
    unique = "expected a unique suite name (evals.0.name is also 'arith'); found \"arith\""
    assert f"{path}:8: evals.1.name: {unique}" in message
    assert f"{path}:11: evals.2.name: {unique}" in message
    # with no other error the duplicate is one line, not the validator's and the loader's both
    clean = write(
        workdir, "dup.yaml", GOOD + "  - name: arith\n    file: caps.jsonl\n    role: guard\n"
    )
    assert config_error(clean) == f"{clean}:7: evals.1.name: {unique}"


def test_a_misspelt_grader_is_one_error_not_a_second_about_pattern(workdir: Path) -> None:
    path = write(workdir, "run.yaml", GOOD + "    grader: regexp\n")
    message = config_error(path)
    assert "problems in" not in message  # exactly one
    assert message.startswith(f"{path}:7: evals.0.grader: expected one of: ")
    assert "(did you mean 'regex'?)" in message and "pattern" not in message


# --- overrides ----------------------------------------------------------------------------------


def test_overrides_merge_before_validation(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(workdir, "run.yaml", GOOD)
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "extra.jsonl").write_text("{}\n")
    monkeypatch.chdir(elsewhere)  # a path given on the command line is relative to the shell
    config = load_config(
        path,
        [
            "training.learning_rate=1e-4",
            "evals.0.threshold=0.9",
            "data.train=[extra.jsonl, ../train.jsonl]",
            "lora.train_unembed=false",
            "output.run_name=demo",
        ],
    )
    assert config.training.learning_rate == pytest.approx(1e-4)
    assert config.evals[0].threshold == 0.9
    assert config.data.train == (str(elsewhere / "extra.jsonl"), str(workdir / "train.jsonl"))
    assert config.lora.train_unembed is False
    assert config.output.run_name == "demo"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("foo", "override 'foo': expected key=value with a dotted key"),
        ("lora.rnak=3", "override 'lora.rnak=3': lora.rnak: unknown field; did you mean 'rank'?"),
        ("evals.3.threshold=1", "evals.3.threshold: index 3 is out of range (evals has 1 item)"),
        ("data.train=[a,", "override 'data.train=[a,': the value is not valid YAML"),
        ("lora.rank.x=1", "override 'lora.rank.x=1': lora.rank.x: lora.rank has no field 'x'"),
        (
            "training.learning_rate=fast",
            "override 'training.learning_rate=fast': training.learning_rate: expected a finite "
            'number > 0 or "auto"; found "fast"',
        ),
        ("tinker.api_key=sk-very-secret", "override 'tinker.api_key=…': tinker.api_key: never"),
    ],
)
def test_bad_override_names_the_override(workdir: Path, override: str, expected: str) -> None:
    message = config_error(write(workdir, "run.yaml", GOOD), (override,))
    assert expected in message
    assert "sk-very-secret" not in message


# --- good paths ---------------------------------------------------------------------------------


def test_minimal_config_gets_defaults_and_absolute_paths(workdir: Path) -> None:
    config = load_config(write(workdir, "run.yaml", GOOD))
    assert config.base_model == "gemma-3-270m" and config.backend == "local"
    assert config.data.train == (str(workdir / "train.jsonl"),)  # one string → a list
    assert config.evals[0].file == str(workdir / "arith.jsonl")
    assert config.output.workspace is None  # unset: the current directory when the run starts
    assert config.training.learning_rate == "auto"  # left for the trainer to resolve
    assert config.lora.rank == 16 and config.loop.max_rounds == 3
    with pytest.raises(ValidationError):
        config.backend = "tinker"  # type: ignore[misc]  # frozen


def test_exponent_without_dot_is_a_number(workdir: Path) -> None:
    text = GOOD + "training:\n  learning_rate: 1e-4\n"
    config = load_config(write(workdir, "run.yaml", text))
    assert config.training.learning_rate == pytest.approx(1e-4)


def test_dump_and_reload_from_another_directory(
    workdir: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = GOOD + "training:\n  learning_rate: 2.0e-4\noutput:\n  workspace: out\n"
    config = load_config(write(workdir, "run.yaml", text), ["lora.rank=4"])
    snapshot = tmp_path_factory.mktemp("run-folder") / "config.yaml"
    snapshot.write_text(dump_config(config))
    monkeypatch.chdir(tmp_path_factory.mktemp("anywhere"))
    assert load_config(snapshot) == config
    assert config.output.workspace == str(workdir / "out")


def test_resolve_paths_for_a_config_built_in_code(tmp_path: Path) -> None:
    config = RunConfig.model_validate(
        {"data": {"train": "t.jsonl"}, "evals": [{"name": "a", "file": "a.jsonl", "role": "guard"}]}
    )
    resolved = config.resolve_paths(tmp_path)
    assert resolved.data.train == (str(tmp_path / "t.jsonl"),)
    assert resolved.evals[0].file == str(tmp_path / "a.jsonl")
    assert resolved.output.workspace is None
    assert resolved.base_model == "gemma-3-270m"  # an alias, not a path


def test_local_model_folder_is_relative_to_the_config(workdir: Path) -> None:
    (workdir / "my-model").mkdir()
    config = load_config(write(workdir, "run.yaml", "base_model: ./my-model\n" + GOOD))
    assert config.base_model == str(workdir / "my-model")


def test_check_files_off_and_custom_graders(workdir: Path) -> None:
    text = GOOD.replace("arith.jsonl", "later.jsonl") + "    grader: f1\n"
    names = NameCatalog(graders=("f1",))
    config = load_config(write(workdir, "run.yaml", text), check_files=False, names=names)
    assert config.evals[0].grader == "f1"


# --- the seed format (tinker-eval-loop's eval_loop_config.json) --------------------------------


def test_shipped_seed_config_maps_onto_run_config() -> None:
    path = ROOT / "examples" / "eval_loop_config.json"
    assert is_seed_format(json.loads(path.read_text()))
    config = load_config(path)
    seed = ROOT / "examples" / "seed"
    assert config.data.train == (str(seed / "train.jsonl"),)
    assert config.data.renderer == "chat_template"  # "gemma3"
    assert config.data.max_seq_len == 256 and config.lora.rank == 8
    assert config.training.learning_rate == 0.0002 and config.training.batch_size == 4
    assert config.loop.max_rounds == 3 and config.loop.lr_decay == 0.8
    arithmetic, capitals = config.evals
    assert (arithmetic.name, arithmetic.file) == ("arithmetic", str(seed / "arithmetic.jsonl"))
    assert arithmetic.threshold == 0.8  # eval_threshold
    assert (capitals.grader, capitals.threshold) == ("contains", 0.6)  # its own wins
    assert config.extras == {}  # the evalops_* keys set the HTTP sink
    assert not config.tracking.http.enabled
    assert config.tracking.http.suite_id == "demo-suite"
    assert load_config(path, ["backend=tinker"]).backend == "tinker"


def test_seed_errors_name_the_seed_key_and_its_line(workdir: Path) -> None:
    seed = {
        "train_file": "train.jsonl",
        "eval_tasks": ["arith", {"name": "caps", "path": "caps.jsonl", "grade": "exact"}],
        "learning_rate": -1,
        "eval_threshold": 2,
        "lora_rnk": 8,
    }
    path = write(workdir, "eval_loop_config.json", json.dumps(seed, indent=2))
    message = config_error(path)
    assert message.startswith(f"4 problems in {path}:")
    assert f"{path}:8: eval_tasks.1.grade (evals.1.grade): unknown field; did you mean" in message
    assert (
        f"{path}:11: learning_rate (training.learning_rate): expected a finite number > 0"
        in message
    )
    assert f"{path}:12: eval_threshold: expected a number in [0, 1] or null; found 2" in message
    assert f"{path}:13: lora_rnk: unknown field of the seed format; did you mean 'lora_rank'?" in (
        message
    )


def test_seed_without_train_file(workdir: Path) -> None:
    path = write(workdir, "seed.json", json.dumps({"eval_tasks": ["arith"], "eval_threshold": 0.5}))
    assert (
        config_error(path) == f"{path}:1: train_file: required field missing; it maps to data.train"
    )


@pytest.mark.parametrize(
    ("name", "renderer"),
    [("role_colon", "role_colon"), ("llama3", "chat_template"), ("qwen3", "chat_template"),
     ("gemma3", "chat_template"), ("default", "auto"), ("plain", "plain"), ("klingon", None)],
)  # fmt: skip
def test_seed_renderer_names(name: str, renderer: str | None) -> None:
    assert map_renderer(name) == renderer


# --- shipped configs and the generated reference ------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [*sorted((ROOT / "examples").glob("**/*.yaml")), ROOT / "examples" / "eval_loop_config.json"],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_shipped_config_validates(path: Path) -> None:
    assert isinstance(load_config(path), RunConfig)


def test_reference_doc_matches_the_model() -> None:
    committed = (ROOT / "docs" / "config-reference.md").read_text()
    assert committed == render_reference(), (
        "docs/config-reference.md is stale: "
        "python -m evaltune.config --reference > docs/config-reference.md"
    )


def test_main_prints_reference_and_reports_errors(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--reference"]) == 0
    assert capsys.readouterr().out == render_reference()
    assert main([str(write(workdir, "run.yaml", "backend: x\n" + GOOD))]) == 2
    assert "backend: expected one of: local, tinker" in capsys.readouterr().err
