"""What a running server knows: its engine and base model, sessions, training models,
sampling sessions, pending futures and the checkpoint store.

Training models are LoRA slots on the one engine. A model's slot name is filled in on the
engine's worker when its ``create_model`` / ``load_weights`` runs, and every later request on
that model is queued behind it on the same worker, so requests on one training client run in
the order they arrived (the SDK sends them in its submission order, one at a time).

A session's adapters and snapshot folders are freed when the client closes it, or when it has
sent nothing (the SDK heartbeats every 10 s) for ``SESSION_IDLE_S``: a long-lived server does
not keep every finished script's optimizer state in memory. Checkpoints always stay.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from evaltune.bridge import CheckpointStore
from evaltune.engine import Engine, LoraSpec, read_checkpoint_meta
from evaltune.engine.models import BUILTIN_MODELS, default_cache_dir
from evaltune.errors import EngineError
from evaltune.server.futures import FutureStore
from evaltune.server.generations import MAX_PENDING, Generations, default_max_tokens
from evaltune.server.http import ApiError
from evaltune.server.jobs import JobRunner, Jobs
from evaltune.server.uploads import FileStore

__all__ = ["SamplerSession", "ServerConfig", "ServerState", "Session", "TrainingModel"]

T = TypeVar("T")
SESSION_IDLE_S = 900.0


SEEN_REQUESTS = 256  # per training model: how far back a re-sent request is recognised


@dataclass(frozen=True)
class ServerConfig:
    """How ``evaltune serve`` was started (the CLI builds it; defaults live in the CLI)."""

    base_model: str
    api_key: str
    checkpoint_dir: Path
    served_model_name: str | None = None
    max_body_bytes: int = 64 * 1024 * 1024
    device: str | None = None
    dtype: str | None = None
    max_tokens: int | None = None  # per request; None: what fits the device (generations.py)
    max_pending: int = MAX_PENDING  # generations queued or running before a 429
    drain_s: float = 10.0  # after SIGTERM: how long running generations may finish
    # More adapters by name (``evaltune serve --runs``: each finished run's rounds), asked
    # again on every lookup, so runs that finish while the server is up are found too.
    named_adapters: Callable[[], dict[str, Path]] | None = None
    # OpenAI's files and fine-tuning jobs (``server.jobs``): where they are kept, and who runs
    # a job (``evaltune serve`` passes the loop's runner); either None: those routes are off.
    jobs_dir: Path | None = None
    job_runner: JobRunner | None = None


@dataclass
class TrainingModel:
    model_id: str
    session_id: str
    spec: LoraSpec
    slot: str | None = None  # set on the worker once the adapter exists
    failed: str | None = None
    snapshots: itertools.count = field(default_factory=itertools.count)
    # The replies to the last requests by the SDK's ``seq_id``: a request the SDK sends again
    # (its reply was lost to a reset or a timeout) gets the first one's future, not a second
    # forward_backward or Adam step.
    submitted: OrderedDict[tuple[str, int], dict[str, str]] = field(default_factory=OrderedDict)

    def once(
        self, kind: str, seq_id: int | None, submit: Callable[[], dict[str, str]]
    ) -> dict[str, str]:
        """``submit()``, unless this ``kind`` of request with this ``seq_id`` was submitted
        already: then its reply again."""
        if seq_id is None:
            return submit()
        key = (kind, seq_id)
        if key in self.submitted:
            return self.submitted[key]
        reply = self.submitted[key] = submit()
        while len(self.submitted) > SEEN_REQUESTS:
            self.submitted.popitem(last=False)
        return reply

    def require_slot(self) -> str:
        """The slot, on the worker; a clear error if creating or loading it failed."""
        if self.slot is None:
            raise EngineError(f"model {self.model_id} is not usable: {self.failed or 'not ready'}")
        return self.slot


@dataclass
class SamplerSession:
    sampler_id: str
    folder: Path | None  # None: the base model
    model_path: str | None
    clients: itertools.count = field(default_factory=lambda: itertools.count(1))


@dataclass
class Session:
    models: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)  # sampler ids of temp snapshot folders
    seen: float = field(default_factory=time.monotonic)


class ServerState:
    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self.engine = engine
        self.config = config
        self.checkpoints = CheckpointStore(config.checkpoint_dir)
        self.futures = FutureStore()
        cap = config.max_tokens or default_max_tokens(engine.device.type)
        self.generations = Generations(engine.batcher, cap, config.max_pending)
        self.sessions: dict[str, Session] = {}
        self.models: dict[str, TrainingModel] = {}
        self.ended: dict[str, str] = {}  # released model id -> why
        self.samplers: dict[str, SamplerSession] = {}
        self._ephemeral = tempfile.TemporaryDirectory(prefix="evaltune-serve-")
        self._ids = itertools.count()
        on = config.jobs_dir is not None and config.job_runner is not None
        self.files = FileStore(config.jobs_dir / "files") if on and config.jobs_dir else None
        self.jobs = (
            Jobs(config.jobs_dir / "jobs", config.job_runner)
            if on and config.jobs_dir and config.job_runner
            else None
        )

    # -- names ------------------------------------------------------------------------------
    @property
    def base_model(self) -> str:
        return self.config.base_model

    @property
    def served_name(self) -> str:
        return self.config.served_model_name or self.config.base_model

    def named_adapters(self) -> dict[str, Path]:
        """The extra adapters by name: those the server was started with
        (``ServerConfig.named_adapters``) and the fine-tuning jobs' models and checkpoints."""
        named = self.config.named_adapters() if self.config.named_adapters else {}
        return {**named, **(self.jobs.adapters() if self.jobs else {})}

    def base_names(self) -> set[str]:
        """Every name that means the base model: as started, as served, its local folder, and
        the built-in alias whose converted folder it is (adapters trained on either load)."""
        folder = Path(self.engine.model_path)
        names = {self.config.base_model, self.served_name, str(folder)}
        cache = default_cache_dir() / "models"
        names |= {alias for alias in BUILTIN_MODELS if folder == cache / alias}
        return names

    def check_base_model(self, name: str | None) -> None:
        if name is not None and name not in self.base_names():
            raise ApiError(
                400,
                f"unknown base model {name!r}; this server (evaltune serve) supports: "
                f"{self.base_model}",
            )

    def check_adapter_base(self, folder: Path, name: str) -> None:
        """An adapter trained on another base model cannot run here: a 400 naming both (every
        route that loads a checkpoint asks this, the OpenAI and the Tinker ones alike)."""
        trained_on = (read_checkpoint_meta(folder) or {}).get("base_model")
        if trained_on and trained_on not in self.base_names():
            raise ApiError(
                400,
                f"{name} is an adapter for {trained_on!r}, not for {self.base_model!r} which "
                f"this server runs; start evaltune serve with --base-model {trained_on}",
            )

    # -- ids --------------------------------------------------------------------------------
    def new_session(self) -> str:
        self.reap_idle()
        session_id = f"s{uuid.uuid4().hex[:10]}"
        self.sessions[session_id] = Session()
        return session_id

    def session(self, session_id: str) -> Session:
        """The live session (marked as seen now); a 404 when the server does not know it."""
        session = self.sessions.get(session_id)
        if session is None:
            raise ApiError(
                404,
                f"no session {session_id!r} on this server (it restarted, or the session was "
                "closed or idle too long); create a new ServiceClient",
            )
        session.seen = time.monotonic()
        return session

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}-{next(self._ids)}"

    def ephemeral_folder(self, model: TrainingModel) -> Path:
        """Where a nameless sampler snapshot goes: a temp folder deleted at shutdown."""
        name = f"{model.model_id.replace(':', '_')}-{next(model.snapshots)}"
        return Path(self._ephemeral.name) / name

    # -- lookups ----------------------------------------------------------------------------
    def model(self, model_id: str) -> TrainingModel:
        model = self.models.get(model_id)
        if model is None:
            why = self.ended.get(model_id, "it does not exist (did the server restart?)")
            raise ApiError(
                404,
                f"no training model {model_id!r} on this server: {why}; continue from a "
                "checkpoint with create_training_client_from_state",
            )
        if session := self.sessions.get(model.session_id):
            session.seen = time.monotonic()
        return model

    def sampler(self, sampler_id: str | None) -> SamplerSession:
        if sampler_id is None or sampler_id not in self.samplers:
            raise ApiError(404, f"no sampling session {sampler_id!r} on this server")
        return self.samplers[sampler_id]

    def add_model(self, model: TrainingModel) -> None:
        if model.model_id in self.models:
            raise ApiError(400, f"model {model.model_id} already exists in this session")
        self.models[model.model_id] = model
        self.session(model.session_id).models.append(model.model_id)

    def add_snapshot(self, model: TrainingModel, sampler: SamplerSession) -> None:
        self.samplers[sampler.sampler_id] = sampler
        self.session(model.session_id).snapshots.append(sampler.sampler_id)

    # -- work -------------------------------------------------------------------------------
    def submit(self, fn: Callable[[], T], encode: Callable[[T], Any]) -> dict[str, str]:
        """Queue ``fn`` on the engine's worker; the SDK's ``UntypedAPIFuture`` for it."""
        return self.track(self.engine.submit(fn), encode)

    def track(self, future: Future[T], encode: Callable[[T], Any]) -> dict[str, str]:
        return {"request_id": self.futures.add(future, encode)}

    def finish_session(self, session_id: str, why: str = "its session was closed") -> None:
        """Free the session's adapters and snapshots (checkpoints stay), after queued work."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        for model_id in session.models:
            model = self.models.pop(model_id, None)
            if model is not None:
                self.ended[model_id] = why
                self.engine.submit(self._release, model, why)
        for sampler_id in session.snapshots:
            sampler = self.samplers.pop(sampler_id, None)
            if sampler is not None and sampler.folder is not None:
                self.engine.submit(shutil.rmtree, sampler.folder, True)

    def reap_idle(self) -> None:
        now = time.monotonic()
        for session_id, session in list(self.sessions.items()):
            if now - session.seen > SESSION_IDLE_S:
                idle = f"its session sent nothing for {SESSION_IDLE_S / 60:.0f} minutes"
                self.finish_session(session_id, idle)

    def _release(self, model: TrainingModel, why: str) -> None:
        if model.slot is not None:
            self.engine.release(model.slot)
            model.slot, model.failed = None, why

    def drain(self) -> None:
        """Shut down within a bound: take no new generations (503), drop work that has not
        started (nobody will fetch it), give running generations ``drain_s``, then stop them.
        A second call (a second signal) stops them at once."""
        if self.generations.closing:
            self.generations.cancel_all()
            return
        if self.jobs is not None:
            self.jobs.close()  # the running job stops at its next step and resumes next start
        self.generations.close()
        self.futures.cancel_queued()
        for ticket in self.generations.live():
            ticket.future.cancel()  # only those not yet decoding: their clients get a 503
        stop = threading.Timer(self.config.drain_s, self.generations.cancel_all)
        stop.daemon = True
        stop.start()

    def start(self) -> None:
        """Once the app runs: resume the unfinished fine-tuning jobs."""
        if self.jobs is not None:
            self.jobs.start()

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.close()
        self.generations.cancel_all()
        self._ephemeral.cleanup()
