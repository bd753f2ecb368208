"""Writing a file so that a crash or a refused write never leaves half of it.

``write_bytes_atomic`` writes into a temp file beside the target, fsyncs it and renames it into
place: a reader sees the old file or the new one, never a torn one, and a kill leaves at most a
hidden temp file. A write the operating system refuses (a full disk, a quota, a read-only
folder) is an ``OSError`` naming the target (not the temp file), with the old file untouched.
The run folder's JSON (``tracking``) and the engine's checkpoint files both go through it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_bytes_atomic"]


def _named(exc: OSError, path: Path) -> OSError:
    return exc if exc.errno is None else OSError(exc.errno, exc.strerror, str(path))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _named(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise _named(exc, path) from exc
        raise
