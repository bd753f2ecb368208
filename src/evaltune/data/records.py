"""One raw record (a dict from any file format) → one ``Example``.

Owns the record shapes evaltune accepts, the field types, and the wording of every per-record
problem. Shapes, tried in this order (the first whose prompt field is present decides):

- ``{messages: [{role, content}, ...]}``: a conversation; the last turn must be the assistant's;
- ``{instruction, output}``: a non-empty ``input`` is appended to the instruction after a blank line;
- ``{prompt, response}`` or ``{prompt, completion}``;
- ``{question, answer}``;
- ``{input, output}``.

Every shape may carry ``id`` (string or integer), ``tags`` / ``topic_tags`` (a list of strings or
one comma-separated string; both are merged), ``grade`` (string or integer) and ``system`` (becomes
a system message). Any other field is kept in ``Example.metadata``. An empty string in an optional
field counts as absent, because CSV files cannot tell the two apart.

Every string in a record, keys included, must be Unicode text: JSON can spell a lone surrogate
(``"\\ud800"``), which no tokenizer or UTF-8 file accepts, so it is refused here by field.

Problems are collected rather than raised one at a time, so a loader can report every bad record
in a file at once. Each problem reads ``SOURCE: what was expected; found what``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from evaltune.data.example import Example, Message
from evaltune.errors import DataError

__all__ = ["ROLES", "SHAPES", "check_record", "parse_record"]

ROLES = ("system", "user", "assistant")
# (prompt field, accepted completion fields), in the order they are tried.
SHAPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("instruction", ("output",)),
    ("prompt", ("response", "completion")),
    ("question", ("answer",)),
    ("input", ("output",)),
)
_SHAPE_NAMES = "instruction/output, input/output, prompt/response, question/answer, messages"
_COMMON = ("id", "tags", "topic_tags", "grade", "system")

_Bad = Callable[[str], None]  # records one problem (the caller adds the record's source)


def parse_record(record: Mapping[str, Any], *, source: str, default_id: str) -> Example:
    """The ``Example`` for one record, or a ``DataError`` listing every problem with it."""
    problems: list[str] = []
    example = check_record(record, source=source, default_id=default_id, problems=problems)
    if example is None:
        raise DataError("\n".join(problems))
    return example


def check_record(
    record: Mapping[str, Any], *, source: str, default_id: str, problems: list[str]
) -> Example | None:
    """The ``Example`` for one record; on bad data, append to ``problems`` and return None."""
    before = len(problems)

    def bad(what: str) -> None:
        problems.append(f"{source}: {what}")

    unreadable = _bad_text(record)
    if unreadable is not None:
        bad(unreadable)
        return None

    if "messages" in record:
        used = {"messages"}
        messages = _conversation(record["messages"], bad)
    else:
        used, messages = _single_turn(record, bad)
    used.update(_COMMON)
    system = _optional_text(record, "system", bad)
    if system is not None and messages:
        if messages[0].role == "system":
            bad("has both a 'system' field and a system message; keep one")
        else:
            messages = [Message("system", system), *messages]
    example_id = _id(record, bad) or default_id
    tags = _tags(record, "tags", bad) + _tags(record, "topic_tags", bad)
    grade = _grade(record, bad)
    if len(problems) > before:
        return None
    metadata = {k: v for k, v in record.items() if k not in used}
    return Example(
        id=example_id,
        messages=tuple(messages),
        tags=tuple(dict.fromkeys(tags)),
        grade=grade,
        metadata=metadata,
        source=source,
    )


def _single_turn(record: Mapping[str, Any], bad: _Bad) -> tuple[set[str], list[Message]]:
    for prompt_key, answer_keys in SHAPES:
        if prompt_key not in record:
            continue
        present = [k for k in answer_keys if k in record]
        if not present:
            names = " or ".join(f"'{k}'" for k in answer_keys)
            bad(f"missing field {names} (the record has '{prompt_key}')")
            return set(), []
        if len(present) > 1:
            bad(f"has both {' and '.join(repr(k) for k in present)}; keep one")
            return set(), []
        prompt = _required_text(record, prompt_key, bad)
        answer = _required_text(record, present[0], bad)
        used = {prompt_key, present[0]}
        if prompt_key == "instruction":
            used.add("input")
            extra = _optional_text(record, "input", bad)
            if prompt is not None and extra is not None:
                prompt = f"{prompt}\n\n{extra}"
        if prompt is None or answer is None:
            return used, []
        return used, [Message("user", prompt), Message("assistant", answer)]
    for prompt_key, answer_keys in SHAPES:
        if any(k in record for k in answer_keys):
            bad(f"missing field '{prompt_key}' (the record has '{answer_keys[0]}')")
            return set(), []
    keys = ", ".join(_escaped(str(k)) for k in list(record)[:20]) or "(none)"
    keys += f", ... ({len(record)} in all)" if len(record) > 20 else ""
    bad(f"record has none of the known shapes ({_SHAPE_NAMES}); found keys: {keys}")
    return set(), []


def _conversation(value: Any, bad: _Bad) -> list[Message]:
    if isinstance(value, str):  # CSV cells can only hold text: accept the list as JSON
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            bad(f"field 'messages' is text but not valid JSON: {e.msg} at column {e.colno}")
            return []
        except (ValueError, RecursionError):  # an integer over 4300 digits; 1000 levels deep
            bad("field 'messages' is text but holds JSON too deep or too large to read")
            return []
    if not isinstance(value, list) or not value:
        bad(f"field 'messages' must be a non-empty list of {{role, content}}; found {_show(value)}")
        return []
    messages: list[Message] = []
    for i, turn in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(turn, Mapping):
            bad(f"field '{where}' must be an object with 'role' and 'content'; found {_show(turn)}")
            continue
        role, content = turn.get("role"), turn.get("content")
        ok = True
        if role not in ROLES:
            shown = "nothing" if role is None else _show(role)
            bad(f"field '{where}.role' must be one of {', '.join(ROLES)}; found {shown}")
            ok = False
        elif role == "system" and i > 0:
            bad(f"field '{where}.role' is 'system', but only the first turn may be")
            ok = False
        if content is None:
            bad(f"field '{where}.content' is missing")
        elif not isinstance(content, str):
            bad(f"field '{where}.content' must be a string; found {_show(content)}")
        elif role == "assistant" and not content.strip():
            bad(f"field '{where}.content' is empty; an assistant turn needs text")
        elif ok:
            messages.append(Message(str(role), content))
    if len(messages) == len(value):
        if messages[-1].role != "assistant":
            bad(
                f"field 'messages' must end with an assistant turn; the last is '{messages[-1].role}'"
            )
        elif not any(m.role == "user" for m in messages):
            bad("field 'messages' has no user turn before the assistant's answer")
    return messages


def _bad_text(record: Mapping[str, Any]) -> str | None:
    """The first key or string of ``record`` (nested ones too) that is not Unicode text."""
    stack: list[tuple[str, Any]] = [(str(k), v) for k, v in record.items()][::-1]
    keys = [str(k) for k in record]
    for key in keys:
        if not _encodable(key):
            return f"field name {_escaped(key)} is not valid Unicode text; write it as UTF-8"
    while stack:
        where, value = stack.pop()
        if isinstance(value, str) and not _encodable(value):
            return (
                f"field '{_escaped(where)}' is not valid Unicode text ({_first_bad(value)}); "
                "write it as UTF-8 (a lone surrogate such as \\ud800 is not a character)"
            )
        if isinstance(value, Mapping):
            for k, v in reversed(list(value.items())):
                if isinstance(k, str) and not _encodable(k):
                    return f"field '{_escaped(where)}' has a key that is not valid Unicode text"
                stack.append((f"{where}.{k}", v))
        elif isinstance(value, list | tuple):
            stack += [(f"{where}[{i}]", v) for i, v in reversed(list(enumerate(value)))]
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_bad(text: str) -> str:
    for i, char in enumerate(text):
        if not _encodable(char):
            return f"{char.encode('unicode_escape').decode('ascii')} at character {i + 1}"
    return "?"


def _escaped(text: str) -> str:
    shown = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _required_text(record: Mapping[str, Any], key: str, bad: _Bad) -> str | None:
    value = record[key]
    if not isinstance(value, str):
        bad(f"field '{key}' must be a string; found {_show(value)}")
        return None
    if not value.strip():
        bad(f"field '{key}' is empty; it needs text")
        return None
    return value


def _optional_text(record: Mapping[str, Any], key: str, bad: _Bad) -> str | None:
    value = record.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        bad(f"field '{key}' must be a string; found {_show(value)}")
        return None
    return value


def _id(record: Mapping[str, Any], bad: _Bad) -> str | None:
    value = record.get("id")
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        bad(f"field 'id' must be a string or an integer; found {_show(value)}")
        return None
    return str(value)


def _grade(record: Mapping[str, Any], bad: _Bad) -> str | None:
    value = record.get("grade")
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        bad(f"field 'grade' must be a string or an integer; found {_show(value)}")
        return None
    return str(value)


def _tags(record: Mapping[str, Any], key: str, bad: _Bad) -> list[str]:
    value = record.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list | tuple) and all(isinstance(t, str) for t in value):
        return [t.strip() for t in value if t.strip()]
    bad(
        f"field '{key}' must be a list of strings or a comma-separated string; found {_show(value)}"
    )
    return []


def _show(value: Any) -> str:
    """``int (42)``: the type and a short rendering of a value found where another was expected."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > 40:
        text = text[:37] + "..."
    kind = {dict: "object", list: "list", type(None): "null"}.get(type(value), type(value).__name__)
    return f"{kind} ({text})"
