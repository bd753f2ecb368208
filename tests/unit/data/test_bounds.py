"""Hostile data files: deep nesting, huge integers and lone surrogates are one ``DataError``
naming file, line and field; property-based: nothing but the project's errors escapes."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaltune.data import load_examples
from evaltune.data.load import MAX_DEPTH
from evaltune.errors import DataError, EvaltuneError


def error(path: Path) -> str:
    with pytest.raises(DataError) as info:
        load_examples(path)
    return str(info.value)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100_000])
def test_deep_record_names_line_and_field(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "d.jsonl"
    ok = '{"prompt": "a", "response": "b"}\n'
    path.write_text(
        ok + '{"prompt": "a", "response": "b", "meta": ' + "[" * depth + "]" * depth + "}\n"
    )
    assert error(path) == f"{path}:2: field 'meta.0.0.0.0.0.…': nested more than 64 levels deep"


def test_deep_json_file_names_the_field(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[{"prompt": "a", "response": "b", "m": ' + "[" * 5000 + "]" * 5000 + "}]")
    assert error(path).startswith(f"{path}: field '0.m.0.0.0.0.…': nested more than")


def test_huge_integer_names_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "response": "b", "id": ' + "1" * 5000 + "}\n")
    assert (
        error(path) == f"{path}:1: field 'id': an integer of 5000 digits; at most 64 are accepted"
    )


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ('{"prompt": "a\\ud800", "response": "b"}', "prompt"),
        ('{"prompt": "a", "response": "b", "meta": {"x": ["\\udfff"]}}', "meta.x[0]"),
        (
            '{"messages": [{"role": "user", "content": "hi"}, '
            '{"role": "assistant", "content": "x\\ud800"}]}',
            "messages[1].content",
        ),
    ],
)
def test_lone_surrogate_names_line_and_field(tmp_path: Path, record: str, field: str) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(record + "\n")
    message = error(path)
    assert message.startswith(f"{path}:1: field '{field}' is not valid Unicode text (\\ud")
    message.encode("utf-8")  # printable


def test_csv_messages_too_deep_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('messages\n"' + "[" * 3000 + "]" * 3000 + '"\n')
    assert "field 'messages' is text but holds JSON too deep or too large" in error(path)


QUICK = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TEXT = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["[/x]", "[bold]", "\ud800", "a\udfffb", "\\[", "]["]),
)
VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=10,
)
FIELD = st.sampled_from(["prompt", "response", "id", "tags", "grade", "system", "messages", "x"])


@QUICK
@given(
    record=st.dictionaries(FIELD, VALUE, max_size=4),
    depth=st.integers(min_value=0, max_value=2000),
    huge=st.booleans(),
)
def test_any_jsonl_record_loads_or_is_a_data_error(
    tmp_path: Path, record: dict, depth: int, huge: bool
) -> None:
    extra = "1" * 4500 if huge else '"v"'
    line = json.dumps(record)[:-1] + (", " if record else "")
    line += '"nested": ' + "[" * depth + extra + "]" * depth + "}"
    path = tmp_path / "p.jsonl"
    path.write_text(line + "\n", encoding="utf-8", errors="surrogatepass")
    with contextlib.suppress(EvaltuneError):
        for example in load_examples(path):
            for message in example.messages:
                message.content.encode("utf-8")  # whatever is accepted is real text
