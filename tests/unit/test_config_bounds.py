"""Hostile config input: aliases, deep nesting, huge integers, non-finite numbers, surrogates,
secrets and huge values all end in one ``ConfigError`` naming file:line and field, never a
traceback or a hang; plus property-based tests that nothing else escapes ``load_config``."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaltune.config import load_config
from evaltune.config.parse import MAX_DEPTH
from evaltune.errors import ConfigError, EvaltuneError

BASE = "data: {train: t.jsonl}\nevals: [{name: x, file: t.jsonl, threshold: 0.5}]\n"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "t.jsonl").write_text('{"prompt": "a", "response": "b"}\n')
    return tmp_path


def error(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides or [])
    return str(info.value)


def write(workdir: Path, name: str, text: str) -> Path:
    path = workdir / name
    path.write_text(text)
    return path


def test_billion_laughs_is_refused_at_once(workdir: Path) -> None:
    rows = [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 12)]
    path = write(workdir, "run.yaml", BASE + "extras:\n  l0: &l0 [x, x, x, x, x, x, x, x, x]\n")
    path.write_text(path.read_text() + "\n".join(rows) + "\n")
    start = time.monotonic()
    message = error(path)
    assert time.monotonic() - start < 2
    assert message == (
        f"{path}:5: extras.l1.0: a YAML alias (*l0); aliases are not supported in a config: "
        "write the value out"
    )


def test_recursive_alias_is_refused(workdir: Path) -> None:
    path = write(workdir, "run.yaml", BASE + "extras:\n  a: &a [*a]\n")
    assert error(path).startswith(f"{path}:4: extras.a.0: a YAML alias (*a)")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 200, 100_000])
def test_deep_yaml_names_line_and_field(workdir: Path, depth: int) -> None:
    path = write(workdir, "run.yaml", BASE + "extras:\n  a: " + "[" * depth + "]" * depth + "\n")
    message = error(path)
    assert message.startswith(f"{path}:4: extras.a.0.0.0.0.…")
    assert message.endswith(f"nested more than {MAX_DEPTH} levels deep; a config needs far fewer")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deep_json_names_line_and_field(workdir: Path, depth: int) -> None:
    text = '{"data": {"train": "t.jsonl"},\n "extras": {"a": ' + "[" * depth + "]" * depth + "}}"
    path = write(workdir, "run.json", text)
    assert error(path).startswith(f"{path}:2: extras.a.0.0.0.0.…")


def test_nesting_within_the_bound_is_fine(workdir: Path) -> None:
    depth = MAX_DEPTH - 3  # extras and a are two levels
    path = write(workdir, "run.yaml", BASE + "extras:\n  a: " + "[" * depth + "]" * depth + "\n")
    assert load_config(path).extras["a"]


@pytest.mark.parametrize("name", ["run.yaml", "run.json"])
def test_huge_integer_names_line_and_field(workdir: Path, name: str) -> None:
    digits = "1" * 5000
    if name.endswith(".json"):
        text = '{"data": {"train": "t.jsonl"},\n "training": {"seed": ' + digits + "}}"
        line = 2
    else:
        text, line = BASE + f"training:\n  seed: {digits}\n", 4
    path = write(workdir, name, text)
    assert error(path) == (
        f"{path}:{line}: training.seed: an integer of 5000 digits; at most 64 are accepted"
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("extras.a=&x [*x]", "the value holds a YAML alias (*x)"),
        ("training.seed=" + "9" * 5000, "the value holds an integer of 5000 digits"),
        ("extras.a=" + "[" * 5000, "the value is nested more than 64 levels deep"),
        ("output.run_name=a\udcff", "the value holds text that is not valid Unicode (\\udcff"),
    ],
)
def test_hostile_overrides_are_config_errors(workdir: Path, override: str, expected: str) -> None:
    message = error(write(workdir, "run.yaml", BASE), [override])
    assert message.startswith("override '") and expected in message
    assert len(message) < 300


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "training:\n  learning_rate: .inf\n",
            "training.learning_rate: expected a finite number > 0",
        ),
        (
            "training:\n  learning_rate: .nan\n",
            "training.learning_rate: expected a finite number > 0",
        ),
        ("training:\n  seed: -1\n", "training.seed: expected an integer in [0, 4294967295]"),
        ("training:\n  seed: 18446744073709551616\n", "training.seed: expected an integer in [0,"),
        ("training:\n  steps_per_round: 1000000000\n", "training.steps_per_round: expected an"),
        ("training:\n  probe_factors: [-1]\n", "training.probe_factors.0: expected a number in (0"),
        ("training:\n  weight_decay: -.inf\n", "training.weight_decay: expected a number >= 0"),
        ("loop:\n  significance: .nan\n", "loop.significance: expected a number in (0, 1)"),
        ("loop:\n  budget: {max_seconds: .inf}\n", "loop.budget.max_seconds: expected a number"),
        ("loop:\n  bayes: {seed: 4294967296}\n", "loop.bayes.seed: expected an integer in [0,"),
    ],
)
def test_non_finite_and_out_of_range_numbers_are_refused(
    workdir: Path, text: str, expected: str
) -> None:
    path = write(workdir, "run.yaml", BASE + text)
    assert f"{path}:4: {expected}" in error(path)


def test_non_finite_threshold_is_refused(workdir: Path) -> None:
    text = (
        "data: {train: t.jsonl}\nevals: [{name: x, file: t.jsonl, threshold: .inf, metric: nll}]\n"
    )
    assert "evals.0.threshold: expected a number" in error(write(workdir, "run.yaml", text))


def test_lone_surrogate_in_a_config_names_the_field(workdir: Path) -> None:
    text = json.dumps(
        {
            "data": {"train": "t.jsonl"},
            "evals": [{"name": "x", "file": "t.jsonl", "threshold": 0.5}],
            "output": {"run_name": "a\ud800"},
        }
    )
    path = write(workdir, "run.json", text)
    assert error(path) == (
        f"{path}:1: output.run_name: text that is not valid Unicode (\\ud800 at character 2); "
        "write it as UTF-8 text"
    )


@pytest.mark.parametrize(
    "override",
    [
        "extras.db_password=hunter2",
        "extras.hf_token=hunter2",
        "extras.client_secret=hunter2",
        "extras.private_key=hunter2",
        "extras.x={password: hunter2}",
        "training.learning_rate={passwd: hunter2}",
    ],
)
def test_secret_override_values_are_never_echoed(workdir: Path, override: str) -> None:
    message = error(write(workdir, "run.yaml", BASE), [override])
    assert "hunter2" not in message
    assert message.startswith(f"override '{override.split('=')[0]}=…'")


def test_secret_nested_in_a_file_value_is_masked(workdir: Path) -> None:
    path = write(workdir, "run.yaml", BASE + "training:\n  learning_rate: {api_token: hunter2}\n")
    message = error(path)
    assert "hunter2" not in message and "training.learning_rate" in message


def test_secret_keys_nested_in_extras_are_refused(workdir: Path) -> None:
    path = write(workdir, "run.yaml", BASE + "extras:\n  db:\n    password: hunter2\n")
    message = error(path)
    assert f"{path}:5: extras.db.password: expected a non-secret value" in message
    assert "hunter2" not in message


def test_huge_values_are_shortened(workdir: Path) -> None:
    big = "x" * 1_000_000
    path = write(workdir, "run.yaml", BASE + f"lora:\n  rank: '{big}'\n")
    message = error(path)
    assert message.startswith(f"{path}:4: lora.rank: expected an integer")
    assert len(message) < 400
    message = error(write(workdir, "ok.yaml", BASE), [f"lora.rank={big}"])
    assert len(message) < 400


# -- property-based: nothing but the project's own errors escapes -------------------------------

QUICK = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
MARKUP = st.sampled_from(["[/x]", "[bold]", "[/]", "[red]x[/red]", "\\[", "]["])
TEXT = st.one_of(st.text(max_size=20), MARKUP, st.sampled_from(["\ud800", "a\udfffb", "\udcff"]))
HUGE = st.integers(min_value=4000, max_value=6000).map(lambda n: "9" * n)
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)
KEYS = st.sampled_from(
    [
        "training.learning_rate",
        "training.seed",
        "training.steps_per_round",
        "lora.rank",
        "loop.significance",
        "extras.db_password",
        "extras.x",
        "evals.0.threshold",
        "output.run_name",
        "data.train",
    ]
)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


YAML_VALUE = st.one_of(
    VALUE.map(json.dumps),  # JSON is YAML
    HUGE,
    st.integers(min_value=60, max_value=3000).map(_deep),
    st.sampled_from(["&a [*a]", "*nope", "&a x", "!!python/object:os.system x", ".inf", ".nan"]),
    MARKUP,
)


def _only_ours(call) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(EvaltuneError):
        call()


@QUICK
@given(key=KEYS, value=YAML_VALUE)
def test_any_yaml_value_in_a_file_is_loaded_or_a_config_error(
    workdir: Path, key: str, value: str
) -> None:
    section, _, name = key.rpartition(".")
    if section.startswith("evals") or section.startswith("data"):
        text = BASE + f"extras:\n  {name}: {value}\n"
    else:
        text = BASE + f"{section}:\n  {name}: {value}\n"
    path = write(workdir, "run.yaml", text)
    _only_ours(lambda: load_config(path))


@QUICK
@given(key=KEYS, value=st.one_of(YAML_VALUE, TEXT))
def test_any_override_is_applied_or_a_config_error(workdir: Path, key: str, value: str) -> None:
    path = workdir / "ok.yaml"
    if not path.exists():
        path.write_text(BASE)
    _only_ours(lambda: load_config(path, [f"{key}={value}"]))


@QUICK
@given(data=VALUE, depth=st.integers(min_value=0, max_value=2000), huge=st.booleans())
def test_any_json_config_is_loaded_or_a_config_error(
    workdir: Path, data: object, depth: int, huge: bool
) -> None:
    inner = json.dumps(data) if not huge else "1" * 4500
    text = (
        '{"data": {"train": "t.jsonl"}, "evals": [{"name": "x", "file": "t.jsonl", '
        '"threshold": 0.5}], "extras": {"v": ' + "[" * depth + inner + "]" * depth + "}}"
    )
    path = write(workdir, "run.json", text)
    _only_ours(lambda: load_config(path))


@QUICK
@given(text=st.text(max_size=200))
def test_any_text_as_a_config_file_is_loaded_or_a_config_error(workdir: Path, text: str) -> None:
    path = workdir / "any.yaml"
    try:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    except UnicodeEncodeError:
        return
    _only_ours(lambda: load_config(path))
