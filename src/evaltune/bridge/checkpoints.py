"""The checkpoint store: ``tinker://`` paths ↔ folders, checkpoint names and their overwrite rule,
training-run records and listings. The local backend and ``evaltune serve`` both keep their
checkpoints here, so each can load what the other saved::

    tinker://<model_id>/weights/<name>          ->  <root>/<model_id>/weights/<name>/
    tinker://<model_id>/sampler_weights/<name>  ->  <root>/<model_id>/sampler_weights/<name>/

One rule for a ``tinker://`` path, the one the server needs (a path can come off the network):
the model id and the name must each match their pattern (so no part can climb out of the root),
and the checkpoint exists once its folder holds ``adapter_config.json``, which the engine writes
last, after the weights. A refused path or name raises ``CheckpointError`` (a 400 on the wire, a
``BackendError`` in-process); a missing checkpoint ``CheckpointNotFound`` (a 404).

Each folder is a PEFT adapter plus the engine's ``evaltune_checkpoint.json``; ``weights/``
folders also hold ``optimizer.pt``. A training run gets a small record
(``<root>/<model_id>/evaltune_run.json``: base model, LoRA settings, user metadata) so listings
survive a restart; the folders themselves are the source of truth for checkpoints.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tinker import types

from evaltune.errors import BackendError

__all__ = [
    "KINDS",
    "URI_PREFIX",
    "CheckpointError",
    "CheckpointNotFound",
    "CheckpointRef",
    "CheckpointStore",
    "check_name",
]

URI_PREFIX = "tinker://"
# Each kind of checkpoint folder (save_state, save_weights_for_sampler) and the SDK's name for it.
KINDS: dict[str, types.CheckpointType] = {"weights": "training", "sampler_weights": "sampler"}
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # use with fullmatch
NAME_RULE = "use letters, digits, '.', '_' and '-' (at most 128 characters, not starting with '.')"
MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # the SDK's ids have ':' in them
MALFORMED = (
    "expected tinker://<model_id>/weights/<name> or tinker://<model_id>/sampler_weights/<name>"
)
RUN_FILE = "evaltune_run.json"
USER_FILE = "user_metadata.json"
ADAPTER_CONFIG = "adapter_config.json"  # written last by the engine: its presence means complete


class CheckpointError(BackendError):
    """A checkpoint path, name or id that the store refuses."""


class CheckpointNotFound(CheckpointError):
    """A well-formed checkpoint path with no checkpoint behind it."""


def check_name(name: str) -> str:
    if not NAME.fullmatch(name):
        raise CheckpointError(f"checkpoint name {name!r} is not allowed; {NAME_RULE}")
    return name


def _check_model_id(model_id: str) -> str:
    if not MODEL_ID.fullmatch(model_id):
        raise CheckpointError(f"malformed model id {model_id!r}")
    return model_id


@dataclass(frozen=True)
class CheckpointRef:
    model_id: str
    kind: str  # a key of KINDS
    name: str

    @property
    def uri(self) -> str:
        return f"{URI_PREFIX}{self.model_id}/{self.kind}/{self.name}"

    @classmethod
    def parse(cls, path: str) -> CheckpointRef:
        """The parts of a ``tinker://`` path (a trailing ``/`` is allowed); ``CheckpointError``
        naming the expected shape when it is not one."""
        parts = path.removeprefix(URI_PREFIX).strip("/").split("/")
        if (
            not path.startswith(URI_PREFIX)
            or len(parts) != 3
            or not MODEL_ID.fullmatch(parts[0])
            or parts[1] not in KINDS
            or not NAME.fullmatch(parts[2])
        ):
            raise CheckpointError(f"malformed checkpoint path {path!r}; {MALFORMED}")
        return cls(*parts)


def _is_checkpoint(folder: Path) -> bool:
    return (folder / ADAPTER_CONFIG).is_file()


class CheckpointStore:
    """Checkpoint folders under ``root``, named by ``tinker://`` paths."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder_of(self, ref: CheckpointRef) -> Path:
        return self.root / ref.model_id / ref.kind / ref.name

    def new_folder(self, model_id: str, kind: str, name: str, overwrite: bool) -> tuple[Path, str]:
        """Where a new checkpoint goes, and its URI; refuses to replace one unless asked."""
        assert kind in KINDS, kind
        ref = CheckpointRef(_check_model_id(model_id), kind, check_name(name))
        folder = self.folder_of(ref)
        if folder.exists() and not overwrite:
            raise CheckpointError(
                f"checkpoint {name!r} already exists for {model_id} ({folder}); choose another "
                "name or pass overwrite=True"
            )
        return folder, ref.uri

    def folder(self, path: str) -> Path:
        """The folder of a ``tinker://`` path, or of ``<model_id>/<name>`` (the OpenAI-style
        short name: sampler weights first, then training weights)."""
        if path.startswith(URI_PREFIX):
            candidates = [self.folder_of(CheckpointRef.parse(path))]
        else:
            model_id, _, name = path.rpartition("/")
            if not MODEL_ID.fullmatch(model_id) or not NAME.fullmatch(name):
                raise CheckpointNotFound(
                    f"no checkpoint {path!r}; {MALFORMED} or <model_id>/<name>"
                )
            kinds = ("sampler_weights", "weights")  # the short name means a sampler checkpoint
            candidates = [self.folder_of(CheckpointRef(model_id, kind, name)) for kind in kinds]
        for folder in candidates:
            if _is_checkpoint(folder):
                return folder
        looked = " or ".join(str(f) for f in candidates)
        raise CheckpointNotFound(f"checkpoint {path!r} not found (looked in {looked})")

    def local_folder(self, path: str) -> Path | None:
        """The folder of ``path`` when this store holds it, else None: a remote checkpoint
        (the Tinker service's), a malformed path or one not written yet."""
        try:
            return self.folder(path)
        except CheckpointError:
            return None

    # -- training runs ----------------------------------------------------------------------
    def write_run(self, model_id: str, record: dict[str, Any]) -> None:
        folder = self.root / _check_model_id(model_id)
        folder.mkdir(parents=True, exist_ok=True)
        record = {"created": datetime.now(UTC).isoformat(), **record}
        (folder / RUN_FILE).write_text(json.dumps(record, indent=2))

    def read_run(self, model_id: str) -> dict[str, Any] | None:
        path = self.root / _check_model_id(model_id) / RUN_FILE
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
        for kind in KINDS:
            base = self.root / _check_model_id(model_id) / kind
            for folder in base.iterdir() if base.is_dir() else ():
                if _is_checkpoint(folder):
                    found.append(self._checkpoint(CheckpointRef(model_id, kind, folder.name)))
        return sorted(found, key=lambda c: c.time, reverse=True)

    def all_checkpoints(self) -> list[types.Checkpoint]:
        found = [c for run in self.run_ids() for c in self.checkpoints(run)]
        return sorted(found, key=lambda c: c.time, reverse=True)

    def _checkpoint(self, ref: CheckpointRef) -> types.Checkpoint:
        folder = self.folder_of(ref)
        user = folder / USER_FILE
        return types.Checkpoint(
            checkpoint_id=f"{ref.kind}/{ref.name}",
            checkpoint_type=KINDS[ref.kind],
            time=datetime.fromtimestamp(folder.stat().st_mtime, UTC),
            tinker_path=ref.uri,
            size_bytes=sum(f.stat().st_size for f in folder.iterdir() if f.is_file()),
            user_metadata=json.loads(user.read_text()) if user.is_file() else None,
        )

    def delete(self, model_id: str, checkpoint_id: str) -> None:
        """Delete ``<kind>/<name>`` of a training run (the SDK's checkpoint id)."""
        kind, _, name = checkpoint_id.partition("/")
        if kind not in KINDS:
            raise CheckpointError(f"malformed checkpoint id {checkpoint_id!r}")
        folder = self.folder_of(CheckpointRef(_check_model_id(model_id), kind, check_name(name)))
        if not folder.is_dir():
            raise CheckpointNotFound(f"checkpoint {checkpoint_id!r} of {model_id} not found")
        shutil.rmtree(folder)
