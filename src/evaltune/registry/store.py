"""The model registry on disk: one SQLite file, safe for several processes at once.

``Registry`` owns the file's schema and every write to it. The file is opened in WAL mode with a
busy timeout, and each write is one ``BEGIN IMMEDIATE`` transaction (the write lock is taken
before anything is read), so two runs finishing at the same moment both land: the second waits
for the first instead of failing or overwriting its version number.

Tables: ``models`` (one row per registered checkpoint: its name and version, lineage columns for
queries, and the whole record as JSON) and ``status_changes`` (every status a model has had,
with who, when and why). A model's status is one of ``STATUSES``; a name has at most one
``production`` model: promoting another one moves the old one out in the same transaction, and
both changes are recorded. Promotion to ``staging`` or ``production`` refuses a model whose
guards did not hold unless forced with a reason.
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaltune.errors import ConfigError, EvaltuneError

__all__ = ["STATUSES", "Registry", "RegistryError", "StatusChange", "who_am_i"]

STATUSES: tuple[str, ...] = ("candidate", "staging", "production", "retired")
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    run_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    base_model TEXT NOT NULL,
    backend TEXT NOT NULL,
    guards_hold INTEGER NOT NULL,
    targets_met INTEGER NOT NULL,
    target_score REAL,
    created_at TEXT NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (name, version),
    UNIQUE (run_id, round)
);
CREATE TABLE IF NOT EXISTS status_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    model_id TEXT NOT NULL REFERENCES models (id),
    from_status TEXT,
    to_status TEXT NOT NULL,
    who TEXT NOT NULL,
    at TEXT NOT NULL,
    why TEXT NOT NULL
);
"""


def _wal(conn: sqlite3.Connection) -> None:
    """WAL mode. Switching to it takes an exclusive lock and SQLite does not wait for that one
    through the busy timeout: two processes creating the registry at once could see "database
    is locked". The switch is retried (WAL is then a property of the file: later connections
    find it set, and setting it again needs no lock)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class RegistryError(EvaltuneError, RuntimeError):
    """The registry file cannot be opened or written (locked too long, corrupt, read-only)."""


@dataclass(frozen=True)
class StatusChange:
    model_id: str
    from_status: str | None
    to_status: str
    who: str
    at: str
    why: str


def who_am_i() -> str:
    """Who a status change is recorded as: ``$EVALTUNE_USER``, else the login name."""
    try:
        return os.environ.get("EVALTUNE_USER") or getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """The registry at ``path`` (created on first write). Every method opens its own short
    connection, so an instance may be shared between threads and never holds a lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self, write: bool) -> Iterator[sqlite3.Connection]:
        if not write and not self.path.is_file():
            raise ConfigError(
                f"no model registry at {self.path}; a finished run creates it (or: "
                "evaltune registry add RUN)"
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise RegistryError(f"cannot open the model registry {self.path}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _wal(conn)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                if write:  # statement by statement: executescript would commit first
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),),
                    )
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise RegistryError(f"model registry {self.path}: {exc}") from exc
        finally:
            conn.close()

    # -- writes --------------------------------------------------------------------------------
    def register(
        self, name: str, record: dict[str, Any], *, who: str | None = None, why: str = ""
    ) -> tuple[dict[str, Any], bool]:
        """Add ``record`` (``registry.entry``) as the next version of ``name``, status
        ``candidate``; (the model, True). The same run and round registered again is not
        added twice: (the existing model, False)."""
        lineage = record["lineage"]
        with self._connect(write=True) as conn:
            row = conn.execute(
                "SELECT id FROM models WHERE run_id = ? AND round = ?",
                (lineage["run_id"], lineage["round"]),
            ).fetchone()
            if row is not None:
                return self._get(conn, row["id"]), False
            version = conn.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM models WHERE name = ?", (name,)
            ).fetchone()[0]
            model_id = f"{name}-v{version}"
            best = record.get("evidence", {})
            conn.execute(
                "INSERT INTO models VALUES (?, ?, ?, 'candidate', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    model_id,
                    name,
                    version,
                    lineage["run_id"],
                    lineage["round"],
                    record["base_model"],
                    record["backend"],
                    int(bool(best.get("guards_hold", True))),
                    int(bool(best.get("targets_met"))),
                    best.get("target_score"),
                    _now(),
                    json.dumps(record, default=str),
                ),
            )
            self._record(conn, model_id, None, "candidate", who, why or "registered")
            return self._get(conn, model_id), True

    def set_status(
        self,
        model_id: str,
        status: str,
        *,
        why: str = "",
        who: str | None = None,
        force: bool = False,
        previous: str = "retired",
    ) -> list[StatusChange]:
        """Move a model to ``status``; every change made (the old production model's too) is
        returned and recorded with ``who``, the time and ``why``."""
        for value, what in ((status, "status"), (previous, "previous production status")):
            if value not in STATUSES:
                raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(STATUSES)}")
        with self._connect(write=True) as conn:
            model = self._get(conn, model_id)
            if model["status"] == status:
                raise ConfigError(f"{model_id} is already {status}")
            if status in ("staging", "production") and not model["guards_hold"]:
                if not force:
                    raise ConfigError(
                        f"{model_id} broke a guard in its run (guards_hold: false), so it is not "
                        f"promoted to {status}; if you must, pass --force with --why REASON"
                    )
                if not why.strip():
                    raise ConfigError("--force needs a reason: --why TEXT")
                why = f"forced past a broken guard: {why}"
            changes: list[StatusChange] = []
            if status == "production":
                for row in conn.execute(
                    "SELECT id FROM models WHERE name = ? AND status = 'production' AND id != ?",
                    (model["name"], model_id),
                ).fetchall():
                    note = f"{model_id} promoted to production"
                    changes.append(self._record(conn, row["id"], "production", previous, who, note))
            changes.append(self._record(conn, model_id, model["status"], status, who, why))
            return changes

    def _record(
        self,
        conn: sqlite3.Connection,
        model_id: str,
        old: str | None,
        new: str,
        who: str | None,
        why: str,
    ) -> StatusChange:
        change = StatusChange(model_id, old, new, who or who_am_i(), _now(), why or "–")
        conn.execute("UPDATE models SET status = ? WHERE id = ?", (new, model_id))
        conn.execute(
            "INSERT INTO status_changes (model_id, from_status, to_status, who, at, why) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (change.model_id, old, new, change.who, change.at, change.why),
        )
        return change

    # -- reads ---------------------------------------------------------------------------------
    def _get(self, conn: sqlite3.Connection, model_id: str) -> dict[str, Any]:
        row = conn.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
        if row is None:
            known = [r[0] for r in conn.execute("SELECT id FROM models ORDER BY rowid DESC")]
            hint = f"; registered: {', '.join(known[:10])}" if known else "; the registry is empty"
            raise ConfigError(f"no model {model_id!r} in {self.path}{hint}")
        return _model(row)

    def get(self, model_id: str) -> dict[str, Any]:
        with self._connect(write=False) as conn:
            return self._get(conn, model_id)

    def list(self, name: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Every model, newest first, optionally of one name or status."""
        if not self.path.is_file():
            return []
        query, args = "SELECT * FROM models WHERE 1 = 1", []
        if name is not None:
            query, args = query + " AND name = ?", [*args, name]
        if status is not None:
            query, args = query + " AND status = ?", [*args, status]
        with self._connect(write=False) as conn:
            return [_model(r) for r in conn.execute(query + " ORDER BY rowid DESC", args)]

    def history(self, model_id: str | None = None) -> list[StatusChange]:
        """Status changes in the order they were made (of one model, or all)."""
        if not self.path.is_file():
            return []
        query = "SELECT model_id, from_status, to_status, who, at, why FROM status_changes"
        args: tuple[str, ...] = ()
        if model_id is not None:
            query, args = query + " WHERE model_id = ?", (model_id,)
        with self._connect(write=False) as conn:
            return [StatusChange(*row) for row in conn.execute(query + " ORDER BY seq", args)]


def _model(row: sqlite3.Row) -> dict[str, Any]:
    out = {k: row[k] for k in row.keys() if k != "record"}  # noqa: SIM118 (Row has no __iter__ keys)
    out["guards_hold"], out["targets_met"] = bool(out["guards_hold"]), bool(out["targets_met"])
    out["record"] = json.loads(row["record"])
    return out
