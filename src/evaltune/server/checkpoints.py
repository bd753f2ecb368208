"""Checkpoint folders behind ``tinker://`` paths, training-run records, and their listings.

The layout is the local backend's (docs/local-engine.md), so ``evaltune serve`` and
``backend: local`` share one checkpoint folder and each can load what the other saved::

    tinker://<model_id>/weights/<name>          ->  <root>/<model_id>/weights/<name>/
    tinker://<model_id>/sampler_weights/<name>  ->  <root>/<model_id>/sampler_weights/<name>/

The path scheme itself lives in ``evaltune.engine.checkpoint_paths`` and is shared with the
local backend. Training runs get a small record
(``<root>/<model_id>/evaltune_run.json``: base model, LoRA rank, user metadata) so listings
survive a restart; the folders themselves are the source of truth for checkpoints.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinker import types

from evaltune.engine import checkpoint_paths
from evaltune.engine.checkpoint_paths import (
    MALFORMED,
    NAME,
    NAME_RULE,
    URI_PREFIX,
    make_uri,
    split_uri,
)
from evaltune.server.http import ApiError

__all__ = ["URI_PREFIX", "CheckpointStore"]

# The SDK's name for each kind of checkpoint folder.
KINDS: dict[str, types.CheckpointType] = dict(
    zip(checkpoint_paths.KINDS, ("training", "sampler"), strict=True)
)
RUN_FILE = "evaltune_run.json"
USER_FILE = "user_metadata.json"
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def check_name(name: str, what: str = "checkpoint name") -> str:
    if not NAME.fullmatch(name):
        raise ApiError(400, f"{what} {name!r} is not allowed; {NAME_RULE}")
    return name


def check_model_id(model_id: str) -> str:
    if not _MODEL_ID.fullmatch(model_id):
        raise ApiError(400, f"malformed model id {model_id!r}")
    return model_id


class CheckpointStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def uri(self, model_id: str, kind: str, name: str) -> str:
        return make_uri(model_id, kind, name)

    def new_folder(self, model_id: str, kind: str, name: str, overwrite: bool) -> tuple[Path, str]:
        """Where a new checkpoint goes, and its URI; refuses to replace one unless asked."""
        folder = self.root / check_model_id(model_id) / kind / check_name(name)
        if folder.exists() and not overwrite:
            raise ApiError(
                400,
                f"checkpoint {name!r} already exists for {model_id}; choose another name or "
                "pass overwrite=True",
            )
        return folder, self.uri(model_id, kind, name)

    def parse(self, path: str) -> tuple[str, str, str]:
        """``(model_id, kind, name)`` of a ``tinker://`` URI; a 400 when malformed."""
        rest = split_uri(path)
        if rest is None:
            raise ApiError(400, f"malformed checkpoint path {path!r}; {MALFORMED}")
        return check_model_id(rest[0]), rest[1], check_name(rest[2])

    def folder(self, path: str) -> Path:
        """The folder of a ``tinker://`` URI or of ``<model_id>/<name>`` (sampler weights
        first, then training weights); a 404 naming the path when there is none."""
        if path.startswith(URI_PREFIX):
            model_id, kind, name = self.parse(path)
            candidates = [self.root / model_id / kind / name]
        else:
            model_id, _, name = path.rpartition("/")
            if not model_id or not _MODEL_ID.fullmatch(model_id) or not NAME.fullmatch(name):
                raise ApiError(404, f"no checkpoint {path!r} on this server")
            candidates = [self.root / model_id / kind / name for kind in KINDS]
        for folder in candidates:
            if (folder / "adapter_config.json").is_file():
                return folder
        raise ApiError(404, f"checkpoint {path!r} not found on this server")

    # -- training runs ----------------------------------------------------------------------
    def write_run(self, model_id: str, record: dict[str, Any]) -> None:
        folder = self.root / check_model_id(model_id)
        folder.mkdir(parents=True, exist_ok=True)
        record = {"created": datetime.now(UTC).isoformat(), **record}
        (folder / RUN_FILE).write_text(json.dumps(record, indent=2))

    def read_run(self, model_id: str) -> dict[str, Any] | None:
        path = self.root / check_model_id(model_id) / RUN_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def run_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        found = [
            d
            for d in self.root.iterdir()
            if d.is_dir() and ((d / RUN_FILE).is_file() or any((d / k).is_dir() for k in KINDS))
        ]
        return [d.name for d in sorted(found, key=lambda d: d.stat().st_mtime, reverse=True)]

    # -- checkpoints ------------------------------------------------------------------------
    def write_user_metadata(self, folder: Path, metadata: dict[str, str] | None) -> None:
        if metadata:
            (folder / USER_FILE).write_text(json.dumps(metadata))

    def checkpoints(self, model_id: str) -> list[types.Checkpoint]:
        """Every checkpoint of a training run, newest first."""
        found = []
        for kind, ctype in KINDS.items():
            base = self.root / check_model_id(model_id) / kind
            for folder in base.iterdir() if base.is_dir() else ():
                if (folder / "adapter_config.json").is_file():
                    found.append(self._checkpoint(model_id, kind, ctype, folder))
        return sorted(found, key=lambda c: c.time, reverse=True)

    def all_checkpoints(self) -> list[types.Checkpoint]:
        found = [c for run in self.run_ids() for c in self.checkpoints(run)]
        return sorted(found, key=lambda c: c.time, reverse=True)

    def _checkpoint(
        self, model_id: str, kind: str, ctype: types.CheckpointType, folder: Path
    ) -> types.Checkpoint:
        user = folder / USER_FILE
        return types.Checkpoint(
            checkpoint_id=f"{kind}/{folder.name}",
            checkpoint_type=ctype,
            time=datetime.fromtimestamp(folder.stat().st_mtime, UTC),
            tinker_path=self.uri(model_id, kind, folder.name),
            size_bytes=sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
            user_metadata=json.loads(user.read_text()) if user.is_file() else None,
        )

    def delete(self, model_id: str, checkpoint_id: str) -> None:
        kind, _, name = checkpoint_id.partition("/")
        if kind not in KINDS:
            raise ApiError(400, f"malformed checkpoint id {checkpoint_id!r}")
        folder = self.root / check_model_id(model_id) / kind / check_name(name)
        if not folder.is_dir():
            raise ApiError(404, f"checkpoint {checkpoint_id!r} of {model_id} not found")
        shutil.rmtree(folder)
