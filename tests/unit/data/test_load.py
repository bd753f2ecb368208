"""Loading data files: every format and shape, and a precise message for every kind of bad data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evaltune.data import Example, Message, load_examples, load_many, parse_record
from evaltune.errors import DataError


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def jsonl(*records: object) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def error_of(path: Path) -> str:
    with pytest.raises(DataError) as info:
        load_examples(path)
    return str(info.value)


# --- good data -------------------------------------------------------------------------------


def test_jsonl_every_shape_normalised(fixtures: Path) -> None:
    path = fixtures / "shapes.jsonl"
    inst, io, pr, pc, qa, chat = load_examples(path)

    assert inst.prompt == "Translate to French.\n\nGood morning"  # input appended
    assert inst.completion == "Bonjour"
    assert inst.tags == ("translation", "french")
    assert inst.grade == "5"
    assert inst.source == f"{path}:1"

    assert (io.prompt, io.completion, io.tags) == ("2 + 2 =", "4", ("math", "arithmetic"))
    assert io.metadata == {"source_url": "https://example.org/a"}

    assert pr.messages == (
        Message("system", "Answer in one word."),
        Message("user", "Name a primary colour."),
        Message("assistant", "Red"),
    )
    assert pr.tags == ("colours",)
    assert pr.source == f"{path}:4"  # the blank line 3 is skipped but still counted

    assert (pc.id, pc.completion, pc.tags) == ("7", "Cold", ("words", "antonyms"))

    assert qa.id == "shapes.jsonl:6"  # no id: file name + line, stable wherever the file lives
    assert (qa.prompt, qa.completion, qa.grade) == ("What is the capital of France?", "Paris", "3")
    assert qa.metadata == {"difficulty": "easy"}

    assert [m.role for m in chat.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert (chat.prompt, chat.completion) == ("And 3 x 4?", "12")


def test_json_list_and_data_wrapper(fixtures: Path) -> None:
    first, second = load_examples(fixtures / "items.json")
    assert (first.id, first.completion, first.tags) == ("j-1", "four", ("math",))
    assert second.id == "items.json:item 1"
    assert second.tags == ("geography",)
    [wrapped] = load_examples(fixtures / "wrapped.json")
    assert (wrapped.prompt, wrapped.completion) == ("Say hello.", "hello there")


def test_csv_rows_with_a_multiline_cell(fixtures: Path) -> None:
    path = fixtures / "qa.csv"
    first, second, third = load_examples(path)
    assert first.tags == ("geography", "europe")
    assert (first.grade, first.metadata) == ("4", {"difficulty": "easy"})
    assert second.prompt == "How many legs does a spider have?\nAnswer in digits."
    assert second.grade is None  # empty cells are absent
    assert third.source == f"{path}:5"  # the row's own line, after the two-line row
    assert third.tags == ()


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "id": ["p-1", None],
            "messages": [
                [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
                [{"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Later"}],
            ],
            "tags": [["greeting"], []],
        }
    )
    pq.write_table(table, tmp_path / "chat.parquet")
    first, second = load_examples(tmp_path / "chat.parquet")
    assert (first.id, first.prompt, first.completion, first.tags) == (
        "p-1",
        "Hi",
        "Hello",
        ("greeting",),
    )
    assert second.id == "chat.parquet:row 1"


def test_csv_messages_cell_as_json(tmp_path: Path) -> None:
    cell = json.dumps([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}])
    path = write(tmp_path, "chat.csv", 'messages\n"' + cell.replace('"', '""') + '"\n')
    [example] = load_examples(path)
    assert example.completion == "Yo"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    path = write(
        tmp_path, "bom.jsonl", bom + jsonl({"question": "Café?", "answer": "Oui"}).encode()
    )
    [example] = load_examples(path)
    assert example.prompt == "Café?"
    csv_path = write(tmp_path, "bom.csv", bom + b"question,answer\nQ,A\n")
    assert (
        load_examples(csv_path)[0].prompt == "Q"
    )  # the header is "question", not "\ufeffquestion"


def test_blank_lines_are_skipped_silently(tmp_path: Path) -> None:
    text = (
        "\n"
        + jsonl({"question": "a", "answer": "b"})
        + "   \n\r\n"
        + jsonl({"question": "c", "answer": "d"})
    )
    examples = load_examples(write(tmp_path, "gaps.jsonl", text + "\n\n"))
    assert [e.source.rsplit(":", 1)[1] for e in examples] == ["2", "5"]


def test_load_many_keeps_order(fixtures: Path) -> None:
    examples = load_many([fixtures / "items.json", fixtures / "wrapped.json"])
    assert [e.completion for e in examples] == ["four", "Rome", "hello there"]


def test_parse_record_from_memory() -> None:
    example = parse_record({"prompt": "p", "response": "r"}, source="mem:1", default_id="m1")
    assert example == Example.single_turn("m1", "p", "r", source="mem:1")


# --- bad data: each gives one message naming file, line and field ----------------------------


def test_malformed_json_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "train.jsonl", jsonl({"question": "a", "answer": "b"}) + '{"question": "a",\n'
    )
    assert (
        error_of(path)
        == f"{path}:2: invalid JSON at column 18: Expecting property name enclosed in double quotes"
    )


def test_malformed_json_file_reports_line_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path, "items.json", '[\n  {"question": "a", "answer": "b"},\n  {"question" "c"}\n]'
    )
    assert error_of(path) == f"{path}:3: invalid JSON at column 15: Expecting ':' delimiter"


def test_missing_required_field(tmp_path: Path) -> None:
    path = write(tmp_path, "train.jsonl", jsonl({"instruction": "Say hi"}, {"answer": "4"}))
    message = error_of(path)
    assert f"{path}:1: missing field 'output' (the record has 'instruction')" in message
    assert f"{path}:2: missing field 'question' (the record has 'answer')" in message


def test_wrong_typed_field(tmp_path: Path) -> None:
    path = write(tmp_path, "train.jsonl", jsonl({"instruction": "What is 6 x 7?", "output": 42}))
    assert error_of(path) == f"{path}:1: field 'output' must be a string; found int (42)"


def test_empty_files(tmp_path: Path) -> None:
    for name, text in [
        ("e.jsonl", ""),
        ("w.jsonl", "\n \n"),
        ("e.json", "[]"),
        ("e.csv", "question,answer\n"),
    ]:
        path = write(tmp_path, name, text)
        assert error_of(path) == f"{path}: file is empty; expected at least one record"


def test_non_utf8_bytes(tmp_path: Path) -> None:
    good = jsonl({"question": "a", "answer": "b"}).encode()
    path = write(
        tmp_path, "latin.jsonl", good + '{"question": "Café?", "answer": "oui"}\n'.encode("latin-1")
    )
    offset = len(good) + len('{"question": "Caf')
    assert error_of(path) == (
        f"{path}:2: not valid UTF-8 (byte 0xe9 at byte offset {offset}); re-encode the file as "
        "UTF-8, e.g. `iconv -f latin1 -t utf-8 latin.jsonl > fixed.jsonl`"
    )


def test_unknown_shape(tmp_path: Path) -> None:
    path = write(
        tmp_path, "train.jsonl", jsonl({"question": "a", "answer": "b"}, {"foo": 1, "bar": 2})
    )
    assert error_of(path) == (
        f"{path}:2: record has none of the known shapes (instruction/output, input/output, "
        "prompt/response, question/answer, messages); found keys: foo, bar"
    )


def test_empty_answer(tmp_path: Path) -> None:
    path = write(tmp_path, "train.jsonl", jsonl({"question": "What is 2+2?", "answer": "  "}))
    assert error_of(path) == f"{path}:1: field 'answer' is empty; it needs text"


def test_messages_with_bad_role(tmp_path: Path) -> None:
    turns = [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "Hello"}]
    path = write(tmp_path, "chat.jsonl", jsonl({"messages": turns}))
    assert error_of(path) == (
        f"{path}:1: field 'messages[1].role' must be one of system, user, assistant; found str (\"bot\")"
    )


def test_messages_with_missing_content(tmp_path: Path) -> None:
    turns = [{"role": "user"}, {"role": "assistant", "content": "Hello"}]
    path = write(tmp_path, "chat.jsonl", jsonl({"messages": turns}))
    assert error_of(path) == f"{path}:1: field 'messages[0].content' is missing"


def test_messages_without_final_assistant_turn(tmp_path: Path) -> None:
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    turns.append({"role": "user", "content": "Bye"})
    path = write(tmp_path, "chat.jsonl", jsonl({"messages": turns}))
    assert (
        error_of(path)
        == f"{path}:1: field 'messages' must end with an assistant turn; the last is 'user'"
    )


def test_messages_not_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "chat.jsonl", jsonl({"messages": "hello"}))
    assert "field 'messages' is text but not valid JSON" in error_of(path)


def test_tags_of_a_wrong_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train.jsonl",
        jsonl(
            {"question": "q", "answer": "a", "tags": [1, 2]},
            {"question": "q2", "answer": "a", "topic_tags": {"x": 1}},
        ),
    )
    message = error_of(path)
    assert (
        f"{path}:1: field 'tags' must be a list of strings or a comma-separated string; found list ([1, 2])"
        in message
    )
    assert (
        f"{path}:2: field 'topic_tags' must be a list of strings or a comma-separated string; found object"
        in message
    )


def test_duplicate_ids_within_a_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train.jsonl",
        jsonl(
            {"id": "q1", "question": "a", "answer": "b"},
            {"id": "q2", "question": "c", "answer": "d"},
            {"id": "q1", "question": "e", "answer": "f"},
        ),
    )
    assert (
        error_of(path)
        == f"{path}:3: duplicate id 'q1' (first at 1); ids must be unique within a file"
    )


def test_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path, "train.jsonl", '["a", "b"]\n')
    assert error_of(path) == f"{path}:1: expected a JSON object (a record); found a list"


def test_json_item_position(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "items.json",
        json.dumps([{"question": "a", "answer": "b"}, {"question": "c", "answer": None}]),
    )
    assert error_of(path) == f"{path}:item 1: field 'answer' must be a string; found null (null)"


def test_json_of_the_wrong_shape(tmp_path: Path) -> None:
    path = write(tmp_path, "items.json", '{"rows": []}')
    assert (
        error_of(path)
        == f"{path}: expected a list of records or an object with a 'data' list; found an object"
    )


def test_csv_row_with_wrong_column_count(tmp_path: Path) -> None:
    path = write(tmp_path, "qa.csv", "question,answer\nWhat is 2+2?,4\nOops,a,b\n")
    assert (
        error_of(path) == f"{path}:3: row has 3 values; the header has 2 columns (question, answer)"
    )


def test_system_field_and_system_message(tmp_path: Path) -> None:
    turns = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U"},
        {"role": "assistant", "content": "A"},
    ]
    path = write(tmp_path, "chat.jsonl", jsonl({"messages": turns, "system": "T"}))
    assert error_of(path) == f"{path}:1: has both a 'system' field and a system message; keep one"


def test_unknown_suffix_lists_the_supported_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "train.txt", "hello")
    assert (
        error_of(path)
        == f"{path}: unknown data file type '.txt'; use one of: .jsonl, .json, .csv, .parquet"
    )


def test_missing_file(tmp_path: Path) -> None:
    assert error_of(tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: no such data file"


def test_all_problems_collected_and_capped(tmp_path: Path) -> None:
    bad = [{"question": "q", "answer": i} for i in range(25)]
    path = write(tmp_path, "train.jsonl", jsonl(*bad))
    lines = error_of(path).splitlines()
    assert lines[0] == "25 problems in the data:"
    assert lines[1] == f"  {path}:1: field 'answer' must be a string; found int (0)"
    assert len(lines) == 1 + 20 + 1
    assert lines[-1] == "  ... and 5 more"


def test_several_problems_in_one_record(tmp_path: Path) -> None:
    path = write(tmp_path, "train.jsonl", jsonl({"question": 1, "answer": "", "grade": [3]}))
    message = error_of(path)
    assert message.startswith("3 problems in the data:")
    assert re.search(r"field 'question' must be a string", message)
    assert re.search(r"field 'answer' is empty", message)
    assert re.search(r"field 'grade' must be a string or an integer; found list \(\[3\]\)", message)


def test_load_many_reports_every_file(tmp_path: Path) -> None:
    a = write(tmp_path, "a.jsonl", jsonl({"question": "q"}))
    b = write(tmp_path, "b.jsonl", "")
    with pytest.raises(DataError) as info:
        load_many([a, b])
    message = str(info.value)
    assert f"{a}:1: missing field 'answer'" in message
    assert f"{b}: file is empty" in message
