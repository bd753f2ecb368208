"""OpenAI's Files API, for fine-tuning data: the file store and the check of the chat format.

``FileStore`` keeps each upload as ``<id>.jsonl`` with a ``<id>.json`` beside it holding
OpenAI's file object (``id``, ``bytes``, ``created_at``, ``filename``, ``purpose``,
``status``), both written atomically (``evaltune.files``), so a restarted server lists exactly
the files it had. Ids are ``file-`` and 24 hex digits; nothing else names a file on disk.

``check_chat_jsonl`` checks a ``fine-tune`` upload the way OpenAI does before accepting it,
line by line, and reports every problem (up to ``MAX_PROBLEMS``) with its line and field:
``line 3: messages[1].role: expected one of system, user, assistant; found 'bot'``. A file
holds one kind of example: chat examples (``{"messages": [...]}``, for ``method: supervised``)
or preference examples (``{"input": {"messages": [...]}, "preferred_output": [...],
"non_preferred_output": [...]}``, for ``method: dpo``); ``file_kind`` tells which. What OpenAI
accepts but evaltune cannot train yet (tool and function calls, ``weight: 0``, image content,
a preference input other than one user message) is refused the same way, saying so, rather
than failing a job later. A file for ``evals`` (an eval suite a job names) is stored as it is: the
suite loader checks it when a job uses it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaltune.files import write_bytes_atomic
from evaltune.server.http import ApiError, parse_json

__all__ = [
    "FILE_ID",
    "MAX_PROBLEMS",
    "PURPOSES",
    "FileStore",
    "check_chat_jsonl",
    "file_kind",
    "preference_parts",
]

FILE_ID = re.compile(r"file-[0-9a-f]{24}")
PURPOSES = ("fine-tune", "evals")
MAX_PROBLEMS = 20
ROLES = ("system", "user", "assistant")
MESSAGE_KEYS = ("role", "content", "name", "weight")
_COLUMN = re.compile(r"line 1 column (\d+) \(char \d+\)")  # json's place, within the one line
_NOT_YET = {
    "tool": "tool messages are not supported by evaltune yet",
    "function": "function messages are not supported by evaltune yet",
}


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _message_problems(i: int, m: Any, last: bool) -> list[str]:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        return [f"{where}: expected an object with role and content; found {_show(m)}"]
    problems = []
    for key in ("tool_calls", "function_call", "tool_call_id"):
        if key in m:
            problems.append(f"{where}.{key}: tool and function calls are not supported yet")
    unknown = [
        k
        for k in m
        if k not in MESSAGE_KEYS and k not in ("tool_calls", "function_call", "tool_call_id")
    ]
    if unknown:
        problems.append(
            f"{where}: unknown key {unknown[0]!r}; a message has role, content, "
            "name and (assistant only) weight"
        )
    role = m.get("role")
    if role in _NOT_YET:
        problems.append(f"{where}.role: {_NOT_YET[role]}")
    elif role not in ROLES:
        found = "nothing" if role is None else _show(role)
        problems.append(f"{where}.role: expected one of {', '.join(ROLES)}; found {found}")
    elif role == "system" and i > 0:
        problems.append(f"{where}.role: 'system' is allowed only as the first message")
    content = m.get("content")
    if isinstance(content, list):
        problems.append(
            f"{where}.content: content parts (images) are not supported yet; "
            "send the text as a string"
        )
    elif not isinstance(content, str):
        problems.append(f"{where}.content: expected a string; found {_show(content)}")
    elif role == "assistant" and not content.strip():
        problems.append(f"{where}.content: an assistant message needs text")
    if "weight" in m:
        weight = m["weight"]
        if role != "assistant":
            problems.append(f"{where}.weight: only assistant messages carry a weight")
        elif weight == 0 and not isinstance(weight, bool):
            problems.append(
                f"{where}.weight: 0 is not supported yet (evaltune trains every "
                "assistant message); leave the message out or set weight 1"
            )
        elif weight != 1 or isinstance(weight, bool):
            problems.append(f"{where}.weight: expected 0 or 1; found {_show(weight)}")
    if last and role in ROLES and role != "assistant":
        problems.append(f"{where}: the last message must be the assistant's (the answer to learn)")
    return problems


PREFERENCE_KEYS = ("input", "preferred_output", "non_preferred_output")


def record_kind(record: Any) -> str:
    """``preference`` for a DPO example (it has ``preferred_output`` or
    ``non_preferred_output``), else ``chat``."""
    is_pair = isinstance(record, dict) and (
        "preferred_output" in record or "non_preferred_output" in record
    )
    return "preference" if is_pair else "chat"


def _output_problems(record: dict[str, Any], key: str) -> list[str]:
    value = record.get(key)
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        return [f"{key}: expected a list of one assistant message; found {_show(value)}"]
    m = value[0]
    unknown = [k for k in m if k not in ("role", "content")]
    if unknown:
        return [f"{key}[0]: unknown key {unknown[0]!r}; an output message has role and content"]
    if m.get("role") != "assistant":
        return [f"{key}[0].role: expected 'assistant'; found {_show(m.get('role'))}"]
    content = m.get("content")
    if not isinstance(content, str) or not content.strip():
        return [f"{key}[0].content: expected a non-empty string; found {_show(content)}"]
    return []


def _preference_problems(record: dict[str, Any]) -> list[str]:
    unknown = [k for k in record if k not in PREFERENCE_KEYS]
    if unknown:
        return [
            f"unknown key {unknown[0]!r}; a preference example has {', '.join(PREFERENCE_KEYS)}"
        ]
    problems = []
    source = record.get("input")
    if not isinstance(source, dict) or "messages" not in source:
        problems.append(f"input: expected an object with 'messages'; found {_show(source)}")
    else:
        extra = [k for k, v in source.items() if k != "messages" and v not in ([], None, True)]
        messages = source["messages"]
        if extra:
            problems.append(f"input.{extra[0]}: tools are not supported by evaltune yet")
        elif (
            not isinstance(messages, list)
            or len(messages) != 1
            or not isinstance(messages[0], dict)
            or messages[0].get("role") != "user"
        ):
            problems.append(
                "input.messages: evaltune trains preferences on one user message (no system "
                f"message or earlier turns yet); found {_show(messages)}"
            )
        else:
            problems += [f"input.{p}" for p in _message_problems(0, messages[0], False)]
    problems += _output_problems(record, "preferred_output")
    problems += _output_problems(record, "non_preferred_output")
    if not problems:
        _, preferred, rejected = preference_parts(record)
        if preferred == rejected:
            problems.append("preferred_output and non_preferred_output are the same answer")
    return problems


def preference_parts(record: dict[str, Any]) -> tuple[str, str, str]:
    """A checked preference example's prompt, preferred and non-preferred answer."""
    return (
        record["input"]["messages"][0]["content"],
        record["preferred_output"][0]["content"],
        record["non_preferred_output"][0]["content"],
    )


def _record_problems(record: Any) -> list[str]:
    if not isinstance(record, dict):
        return [f"expected a JSON object with 'messages'; found {_show(record)}"]
    if record_kind(record) == "preference":
        return _preference_problems(record)
    if "messages" not in record:
        return [f"no 'messages' key; found keys {', '.join(sorted(record)) or 'none'}"]
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        return [f"messages: expected a non-empty list of messages; found {_show(messages)}"]
    problems = []
    for i, m in enumerate(messages):
        problems += _message_problems(i, m, i == len(messages) - 1)
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "assistant" not in roles:
        problems.append("messages: no assistant message; every example needs one to learn")
    elif "user" not in roles:
        problems.append("messages: no user message before the assistant's answer")
    return problems


def file_kind(path: Path) -> str:
    """``chat`` or ``preference``: the kind of a checked fine-tuning file (its first example's;
    only that line is read)."""
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                return record_kind(json.loads(raw))
    return "chat"


def check_chat_jsonl(data: bytes, filename: str) -> int:
    """The number of examples in a fine-tuning file (chat or preference examples, one kind);
    a 400 listing every problem (by line and field) when it is not one."""
    problems: list[str] = []
    count = 0
    first: tuple[int, str] | None = None  # the first example's line and kind
    for n, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        count += 1
        try:
            record = parse_json(raw)
        except ApiError as exc:
            why = _COLUMN.sub(r"column \1", exc.message.replace("malformed JSON body", "not JSON"))
            problems.append(f"line {n}: {why}")
            continue
        kind = record_kind(record)
        if first is None:
            first = (n, kind)
        elif kind != first[1]:
            problems.append(
                f"line {n}: a {kind} example, but line {first[0]} is a {first[1]} example; "
                "a file holds one kind (chat for supervised jobs, preference for dpo)"
            )
            continue
        problems += [f"line {n}: {p}" for p in _record_problems(record)]
        if len(problems) >= MAX_PROBLEMS:
            break
    if not count and not problems:
        problems.append("the file holds no examples (one JSON object per line)")
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = " (and more; fix these first)" if len(problems) > MAX_PROBLEMS else ""
        raise ApiError(
            400,
            f"{filename} is not a valid fine-tuning file (OpenAI's format: one "
            f'{{"messages": [...]}} per line, or for dpo one {{"input": ..., '
            f'"preferred_output": ..., "non_preferred_output": ...}}): ' + "; ".join(shown) + more,
        )
    return count


@dataclass(frozen=True)
class StoredFile:
    info: dict[str, Any]  # OpenAI's file object
    path: Path  # the content


class FileStore:
    """Uploaded files under ``folder``: ``<id>.jsonl`` and ``<id>.json`` (OpenAI's object)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = f"file-{uuid.uuid4().hex[:24]}"
        info = {
            "id": file_id,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
        }
        write_bytes_atomic(self.folder / f"{file_id}.jsonl", data)
        write_bytes_atomic(self.folder / f"{file_id}.json", json.dumps(info).encode())
        return info

    def get(self, file_id: str, what: str = "file") -> StoredFile:
        """The stored file; a 404 naming it (and where the list is) when there is none."""
        meta = self.folder / f"{file_id}.json"
        if not FILE_ID.fullmatch(file_id) or not meta.is_file():
            raise ApiError(
                404, f"no {what} {file_id!r} on this server; GET /v1/files lists the uploads"
            )
        return StoredFile(json.loads(meta.read_text()), self.folder / f"{file_id}.jsonl")

    def all(self) -> list[dict[str, Any]]:
        infos = [json.loads(p.read_text()) for p in self.folder.glob("file-*.json")]
        return sorted(infos, key=lambda i: (i["created_at"], i["id"]), reverse=True)

    def delete(self, file_id: str) -> None:
        stored = self.get(file_id)
        stored.path.unlink(missing_ok=True)
        (self.folder / f"{file_id}.json").unlink(missing_ok=True)
