"""Data files → validated ``Example``s: the file formats, text decoding and error reporting.

Formats, chosen by suffix: ``.jsonl`` (one JSON object per line; blank lines skipped), ``.json``
(a list of records, or ``{"data": [...]}``), ``.csv`` (a header row, then one record per row) and
``.parquet`` (one record per row; needs ``pyarrow``). What a record may look like is owned by
``records``.

Each record is located as ``PATH:POS`` in messages and in ``Example.source``. ``POS`` is the
1-based line for JSONL and CSV (the line a CSV row starts on), ``item N`` for the N-th element of
a JSON list and ``row N`` for a Parquet row (both 0-based, as array indices are). A record without
an ``id`` gets ``NAME:POS`` (file name, not the full path, so ids stay stable when the data moves).

JSON is parsed within bounds, so a hostile file is a ``DataError`` rather than a traceback:
``MAX_DEPTH`` levels of nesting and integers of at most ``MAX_INT_DIGITS`` digits (Python itself
refuses over 4300 digits with a bare ``ValueError``); text must be valid Unicode (``records``).

A file is read to the end even when records are bad: every problem (the first ``MAX_PROBLEMS`` of
them are listed) is raised as one ``DataError``, so a user fixes a file in one pass. A UTF-8 byte
order mark is accepted silently; other non-UTF-8 bytes are reported with their line and offset.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evaltune.data.example import Example
from evaltune.data.records import check_record
from evaltune.errors import DataError
from evaltune.limits import MAX_DEPTH, MAX_INT_DIGITS, depth_over

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_PROBLEMS",
    "SUPPORTED_SUFFIXES",
    "default_id",
    "load_examples",
    "load_many",
    "read_records",
]

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
MAX_PROBLEMS = 20

Rows = list[tuple[str, Any]]  # (position in the file, the raw record)


def load_examples(path: str | Path) -> list[Example]:
    """Every record of one data file as an ``Example``; a ``DataError`` lists every problem."""
    return load_many([path])


def load_many(paths: Iterable[str | Path]) -> list[Example]:
    """The examples of several files, in order; problems from all of them in one ``DataError``."""
    examples: list[Example] = []
    problems: list[str] = []
    for path in map(Path, paths):
        examples += _load(path, problems)
    if problems:
        raise DataError(_summarise(problems))
    return examples


def read_records(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """The raw records (JSON objects) of one data file with their ``file:position``, read with
    the same bounds as examples; a ``DataError`` lists every problem."""
    path = Path(path)
    readers = {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".parquet": _parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        choices = ", ".join(SUPPORTED_SUFFIXES)
        raise DataError(f"{path}: unknown data file type '{path.suffix}'; use one of: {choices}")
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    problems: list[str] = []
    out = []
    for pos, record in reader(path, problems):
        if isinstance(record, dict):
            out.append((f"{path}:{pos}", record))
        else:
            problems.append(
                f"{path}:{pos}: expected a JSON object (a record); found {_kind(record)}"
            )
    if not out and not problems:
        problems.append(f"{path}: file is empty; expected at least one record")
    if problems:
        raise DataError(_summarise(problems))
    return out


def default_id(source: str) -> str:
    """The id given to a record without one: its file name and position (``train.jsonl:7``)."""
    path, _, pos = source.rpartition(":")
    return f"{Path(path).name}:{pos}"


def _load(path: Path, problems: list[str]) -> list[Example]:
    readers = {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".parquet": _parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        choices = ", ".join(SUPPORTED_SUFFIXES)
        raise DataError(f"{path}: unknown data file type '{path.suffix}'; use one of: {choices}")
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    before = len(problems)
    rows = reader(path, problems)
    if not rows and len(problems) == before:
        problems.append(f"{path}: file is empty; expected at least one record")
    examples: list[Example] = []
    first_seen: dict[str, str] = {}
    for pos, record in rows:
        source = f"{path}:{pos}"
        if not isinstance(record, dict):
            problems.append(f"{source}: expected a JSON object (a record); found {_kind(record)}")
            continue
        example = check_record(
            record, source=source, default_id=default_id(source), problems=problems
        )
        if example is None:
            continue
        if example.id in first_seen:
            problems.append(
                f"{source}: duplicate id '{example.id}' (first at {first_seen[example.id]}); "
                "ids must be unique within a file"
            )
            continue
        first_seen[example.id] = pos
        examples.append(example)
    return examples


def _jsonl(path: Path, problems: list[str]) -> Rows:
    text = _read_text(path, problems)
    rows: Rows = []
    for number, line in enumerate((text or "").split("\n"), start=1):
        if not line.strip():
            continue  # blank lines (and a trailing newline) are not records
        try:
            rows.append((str(number), _parse_json(line)))
        except json.JSONDecodeError as e:
            problems.append(f"{path}:{number}: invalid JSON at column {e.colno}: {e.msg}")
        except _Bound as e:
            problems.append(f"{path}:{number}: {e.where}{e}")
    return rows


class _Bound(ValueError):
    """JSON past the bounds: the message, and ``where`` (``field 'x': `` or nothing)."""

    where = ""


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise _Bound(f"an integer of {digits} digits; at most {MAX_INT_DIGITS} are accepted")
    return int(text)


def _parse_json(text: str) -> Any:
    """``json.loads`` within ``MAX_DEPTH`` and ``MAX_INT_DIGITS``; ``_Bound`` past them, naming
    the field (found by scanning the text) where it could."""
    try:
        data = json.loads(text, parse_int=_parse_int)
    except RecursionError:
        exc = _Bound(f"nested more than {MAX_DEPTH} levels deep")
        exc.where = _field_at(text, depth=MAX_DEPTH)
        raise exc from None
    except _Bound as exc:
        long = re.search(rf"\d{{{MAX_INT_DIGITS + 1},}}", text)
        exc.where = _field_at(text, stop=long.start()) if long else ""
        raise
    if depth_over(data, MAX_DEPTH):
        exc = _Bound(f"nested more than {MAX_DEPTH} levels deep")
        exc.where = _field_at(text, depth=MAX_DEPTH)
        raise exc
    return data


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def _field_at(text: str, *, depth: int | None = None, stop: int | None = None) -> str:
    """``field 'a.b.0': `` where the text first nests deeper than ``depth`` (or at offset
    ``stop``): the key path of the open containers, scanned without parsing; "" at top level."""
    path: list[str | int | None] = []  # per open container: its current key or index
    kinds: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group()
        if stop is not None and match.start() >= stop:
            break
        if token in "[{":
            if depth is not None and len(kinds) > depth:
                break
            kinds.append(token)
            path.append(0 if token == "[" else None)
        elif token in "]}":
            if kinds:
                kinds.pop()
                path.pop()
        elif token == ",":
            if kinds and kinds[-1] == "[":
                path[-1] = int(path[-1] or 0) + 1
            elif kinds:
                path[-1] = None
        elif kinds and kinds[-1] == "{" and path[-1] is None:
            path[-1] = token[1:-1]  # a key (a string value comes after one is set)
    shown = [str(p) for p in path if p is not None]
    if len(shown) > 8:
        shown = [*shown[:6], "…"]
    return f"field '{'.'.join(shown)}': " if shown else ""


def _json(path: Path, problems: list[str]) -> Rows:
    text = _read_text(path, problems)
    if text is None or not text.strip():
        return []
    try:
        data = _parse_json(text)
    except json.JSONDecodeError as e:
        problems.append(f"{path}:{e.lineno}: invalid JSON at column {e.colno}: {e.msg}")
        return []
    except _Bound as e:
        problems.append(f"{path}: {e.where}{e}")
        return []
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        problems.append(
            f"{path}: expected a list of records or an object with a 'data' list; "
            f"found {_kind(data)}"
        )
        return []
    return [(f"item {i}", record) for i, record in enumerate(data)]


def _csv(path: Path, problems: list[str]) -> Rows:
    text = _read_text(path, problems)
    if text is None or not text.strip():
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: Rows = []
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            problems.append(f"{path}:{start}: unreadable CSV row: {e}")
            break
        if not values:
            continue  # a blank line
        if header is None:
            header = [name.strip() for name in values]
            continue
        if len(values) != len(header):
            problems.append(
                f"{path}:{start}: row has {len(values)} values; the header has "
                f"{len(header)} columns ({', '.join(header)})"
            )
            continue
        rows.append((str(start), dict(zip(header, values, strict=True))))
    return rows


def _parquet(path: Path, problems: list[str]) -> Rows:
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise DataError(f"{path}: reading Parquet needs pyarrow: pip install pyarrow") from e
    try:
        records = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a bad file
        problems.append(f"{path}: not a readable Parquet file: {e}")
        return []
    return [(f"row {i}", record) for i, record in enumerate(records)]


def _read_text(path: Path, problems: list[str]) -> str | None:
    """The file as text: UTF-8, with a byte order mark dropped; None (and problems) otherwise."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    offset = 0
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            bad = line[e.start]
            problems.append(
                f"{path}:{number}: not valid UTF-8 (byte 0x{bad:02x} at byte offset "
                f"{offset + e.start}); re-encode the file as UTF-8, e.g. "
                f"`iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`"
            )
        offset += len(line) + 1
    return None


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _summarise(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    shown = problems[:MAX_PROBLEMS]
    lines = [f"{len(problems)} problems in the data:", *(f"  {p}" for p in shown)]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_PROBLEMS} more")
    return "\n".join(lines)
