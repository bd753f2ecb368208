"""What a benchmark format is, and reading its rows from a local file or the Hugging Face hub.

A ``Benchmark`` names a public data set's upstream record schema, its canonical prompt
(``template``, hashed into the suite hash), its scorer (a grader name from ``evals.registry``)
and where its data comes from when no file is given: a file shipped in a package (HumanEval,
the built-in application sets) or the hub (``HubSource``, read with ``datasets`` only when
installed and online; never in tests).

Rows are read from ``.jsonl``, ``.jsonl.gz``, ``.json`` (a list, or ``{"data": [...]}``) and
``.parquet`` files, exactly as the upstream data set stores them; ``to_example`` turns one row
into an ``Example`` (prompt rendered from the template, reference answer as the completion,
what the scorer needs in ``metadata``) or raises ``DataError`` saying which field is wrong.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaltune.data.example import Example
from evaltune.errors import DataError, EvalError

__all__ = [
    "Benchmark",
    "BenchmarkData",
    "HubSource",
    "Row",
    "read_hub",
    "read_rows",
    "require",
    "to_examples",
]

Row = Mapping[str, Any]
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class HubSource:
    path: str  # e.g. "openai/gsm8k"
    name: str | None  # the dataset config ("main"), if any
    split: str

    def __str__(self) -> str:
        return f"hf://{self.path}" + (f"/{self.name}" if self.name else "") + f":{self.split}"


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    schema: str  # the upstream record shape, for docs and errors
    template: str  # canonical prompt ("" when the record's prompt is used as is)
    grader: str  # a name in evals.registry
    to_example: Callable[[Row, str, int], Example]  # (row, "file:line", index) -> Example
    hub: HubSource | None = None
    packaged: Callable[[], Path] | None = None  # data shipped in a package
    max_tokens: int = 512
    grader_options: Mapping[str, Any] = field(default_factory=dict)
    about: str = ""  # one line for `evaltune suites`


@dataclass(frozen=True)
class BenchmarkData:
    benchmark: Benchmark
    examples: list[Example]
    source: str  # the file, "hf://..." or "package:..." the rows came from


def require(row: Row, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``row[key]``, checked to be a ``kind``; a ``DataError`` naming the field otherwise."""
    if key not in row or row[key] is None:
        raise DataError(f"{where}: missing field {key!r}")
    value = row[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        names = "/".join(k.__name__ for k in _kinds(kind))
        raise DataError(f"{where}: field {key!r} should be {names}; found {type(value).__name__}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def read_rows(path: str | Path) -> list[tuple[str, Row]]:
    """Every record of a data file as ``("file:line", row)``; ``DataError`` when unreadable."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    try:
        if name.endswith((".jsonl", ".jsonl.gz")):
            opener: Any = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8-sig") as fh:
                lines = fh.read().splitlines()
            rows = []
            for lineno, line in enumerate(lines, 1):
                if line.strip():
                    rows.append((f"{path}:{lineno}", _object(json.loads(line), f"{path}:{lineno}")))
            return rows
        if name.endswith(".json"):
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            items = data.get("data") if isinstance(data, dict) else data
            if not isinstance(items, list):
                raise DataError(f"{path}: expected a JSON list of records or {{'data': [...]}}")
            return [
                (f"{path}:item {i}", _object(r, f"{path}:item {i}")) for i, r in enumerate(items)
            ]
        if name.endswith(".parquet"):
            import pyarrow.parquet as pq

            table = pq.read_table(path).to_pylist()
            return [(f"{path}:row {i}", r) for i, r in enumerate(table)]
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    raise DataError(f"{path}: unsupported file type; use .jsonl, .jsonl.gz, .json or .parquet")


def _object(value: Any, where: str) -> Row:
    if not isinstance(value, dict):
        raise DataError(f"{where}: expected a JSON object; found {type(value).__name__}")
    return value


def read_hub(source: HubSource) -> list[tuple[str, Row]]:
    """The rows of ``source`` through ``datasets.load_dataset`` (imported only here)."""
    try:
        import datasets
    except ImportError:
        raise EvalError(
            f"reading {source} needs the `datasets` package (pip install datasets) and network; "
            "or download the data once and point `file:` at it"
        ) from None
    try:
        table = datasets.load_dataset(source.path, source.name, split=source.split)
    except Exception as exc:
        raise EvalError(
            f"could not load {source} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
            "with no network, point `file:` at a local copy in the upstream schema"
        ) from None
    return [(f"{source}:row {i}", dict(row)) for i, row in enumerate(table)]


def to_examples(benchmark: Benchmark, rows: list[tuple[int, str, Row]]) -> list[Example]:
    """``benchmark.to_example`` over ``(index in the data set, where, row)`` triples (the index
    makes ids for rows without one, so a limited suite keeps the ids of the full one); every
    bad row is reported in one ``DataError``."""
    examples, problems = [], []
    for index, where, row in rows:
        try:
            examples.append(benchmark.to_example(row, where, index))
        except DataError as exc:
            problems.append(str(exc))
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        raise DataError(
            f"{len(problems)} {benchmark.title} record(s) do not match the upstream schema "
            f"{benchmark.schema}:\n  "
            + "\n  ".join(shown)
            + (f"\n  ... and {more} more" if more else "")
        )
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"{benchmark.title}: duplicate id {dup!r}; ids must be unique")
    return examples
