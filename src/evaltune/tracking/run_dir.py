"""The run folder: where a run's config, state, events, rounds and reports live on disk.

```
<workspace>/runs/<run-id>/
  config.yaml      the resolved config, as run
  state.json       the loop's state machine (resume reads this)
  events.jsonl     one line per step/phase
  probe.json       the learning-rate probe (learning_rate: auto), when it ran
  rounds/<k>/      plan.json, train.json, eval/<suite>.jsonl, analysis.json
  checkpoints/     the backend's checkpoint folders (local engine)
  summary.json, report.md, report.html, EXPERIMENT.md
```

Every JSON file is written atomically (temp file + ``os.replace``), so a run killed at any
moment leaves either the old or the new version, never half a file; a new folder appears only
once its config and first state are in it (``create`` builds it under a hidden name).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaltune.errors import EvaltuneError
from evaltune.files import write_bytes_atomic

__all__ = ["RunDir", "json_text", "write_json_atomic", "write_text_atomic"]


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` into ``path`` atomically (``evaltune.files``): the old file or the new one."""
    write_bytes_atomic(path, text.encode("utf-8"))


def json_text(data: Any) -> str:
    """How every JSON file of a run is written."""
    return json.dumps(data, indent=2, default=str) + "\n"


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json_text(data))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:48] or "run"


class RunDir:
    """A run's folder. ``create`` makes a new one; ``open`` an existing one (for resume)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(
        cls, workspace: Path, name: str, first: Callable[[str], Mapping[str, str]] | None = None
    ) -> RunDir:
        """A new folder ``runs/<stamp>-<name>``. ``first(run_id)`` gives the files it starts
        with (relative path → text): they are written into a hidden staging folder that is then
        renamed into place, so a run killed while it is being created leaves no folder that
        looks like a run without a ``state.json``."""
        runs = workspace / "runs"
        try:
            return cls._create(runs, name, first)
        except OSError as exc:
            raise EvaltuneError(
                f"cannot create a run folder under {runs}: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename else "")
                + "; set output.workspace to a folder you can write, or free space there"
            ) from exc

    @classmethod
    def _create(
        cls, runs: Path, name: str, first: Callable[[str], Mapping[str, str]] | None
    ) -> RunDir:
        runs.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{_slug(name)}"
        for i in range(1000):
            path = runs / (base if i == 0 else f"{base}-{i}")
            if path.exists():
                continue
            staging = Path(tempfile.mkdtemp(dir=runs, prefix=f".{path.name}.", suffix=".new"))
            try:
                for relative, text in (first(path.name) if first else {}).items():
                    write_text_atomic(staging / relative, text)
            except BaseException:  # a refused write, Ctrl-C: nothing is left behind
                shutil.rmtree(staging, ignore_errors=True)
                raise
            try:
                staging.rename(path)  # atomic; refused when another run took the name meanwhile
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
                continue
            return cls(path)
        raise EvaltuneError(f"could not create a run folder under {runs}")

    @classmethod
    def open(cls, path: Path) -> RunDir:
        if not (path / "state.json").is_file():
            raise EvaltuneError(
                f"{path} is not an evaltune run folder (no state.json); pass the folder that "
                "`evaltune run` printed, e.g. runs/20261121-101500-demo"
            )
        return cls(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def round_dir(self, k: int) -> Path:
        path = self.path / "rounds" / str(k)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def write_json(self, relative: str, data: Any) -> Path:
        path = self.path / relative
        write_json_atomic(path, data)
        return path

    def read_json(self, relative: str) -> Any:
        return json.loads((self.path / relative).read_text(encoding="utf-8"))

    def write_text(self, relative: str, text: str) -> Path:
        path = self.path / relative
        write_text_atomic(path, text)
        return path

    def event(self, kind: str, **fields: Any) -> None:
        """Append one line to events.jsonl (one write call: a line is whole or absent)."""
        line = json.dumps({"time": round(time.time(), 3), "event": kind, **fields}, default=str)
        path = self.path / "events.jsonl"
        with open(path, "a+b") as f:
            # A kill mid-write can leave a last line without its newline: start a fresh line so
            # this event is not glued onto the fragment (events() skips the fragment).
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write((line + "\n").encode("utf-8"))

    def events(self) -> list[dict[str, Any]]:
        path = self.path / "events.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        return out
