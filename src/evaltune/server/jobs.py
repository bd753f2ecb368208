"""Fine-tuning jobs: OpenAI's job objects, their events and checkpoints, run one at a time by
an injected ``JobRunner`` and kept on disk, so a restarted server resumes what it was doing.

The server does not know how a job trains (it imports no loop, config or data): ``evaltune
serve`` passes a ``JobRunner`` (``cli.finetune``: a run config from the job, then the loop),
tests may pass their own. The runner checks uploads and jobs before they are accepted
(``check_file``, ``check_job``: an ``EvaltuneError`` becomes a 400 naming the problem) and runs
a job (``run``) in the job's own folder, reporting through a ``JobReport``: events, checkpoints,
and ``check_stop``, which raises ``JobStopped`` once the job is cancelled or the server shuts
down. After a restart the runner is called again with the same folder and continues from what
it finds there (the loop's resume never repeats an optimizer step).

On disk, ``<jobs-dir>/jobs/<job-id>/``: ``job.json`` (OpenAI's object, the spec and the
served adapters; rewritten atomically at every change), ``events.jsonl`` and
``checkpoints.jsonl`` (appended, one object a line) and ``work/`` (the runner's).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from evaltune.errors import EvaltuneError
from evaltune.files import write_bytes_atomic
from evaltune.server.http import ApiError

__all__ = ["FINISHED", "JobOutcome", "JobReport", "JobRunner", "JobSpec", "JobStopped", "Jobs"]

log = logging.getLogger("evaltune.server")
FINISHED = ("succeeded", "failed", "cancelled")


class JobStopped(Exception):
    """Raised by ``JobReport.check_stop`` in the runner's thread: the job was cancelled or the
    server is shutting down (then it resumes at the next start)."""


@dataclass(frozen=True)
class JobSpec:
    """What a job asks for, in plain data. Uploaded file ids are already paths here."""

    id: str
    base_model: str  # the model this server runs: what the runner trains
    model: str  # as the client named it
    training_file: Path
    validation_file: Path | None
    seed: int
    hyperparameters: dict[str, Any]  # n_epochs, batch_size, learning_rate_multiplier: "auto"|n
    extension: dict[str, Any] = field(default_factory=dict)  # the request's `evaltune` field
    method: str = "supervised"  # or "dpo" (preference examples in the files)


@dataclass(frozen=True)
class JobOutcome:
    adapter: Path  # the best round's sampler adapter, served as the job's fine_tuned_model
    trained_tokens: int | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # as resolved


class JobReport(Protocol):
    def event(
        self,
        message: str,
        *,
        level: str = "info",
        data: dict[str, Any] | None = None,
        kind: str = "message",
    ) -> None: ...

    def checkpoint(self, step: int, metrics: dict[str, float], adapter: Path) -> None: ...

    def check_stop(self) -> None: ...


class JobRunner(Protocol):
    def check_file(self, path: Path, filename: str) -> None: ...

    def check_job(self, spec: JobSpec) -> None: ...

    def run(self, spec: JobSpec, folder: Path, report: JobReport) -> JobOutcome: ...


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """The objects of a JSONL file; a line cut short by a kill is left out."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        try:
            items.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return items


class _Job:
    """One job's records and files; every change is written through at once."""

    def __init__(self, folder: Path, record: dict[str, Any]) -> None:
        self.folder = folder
        self.record = record  # {"job": OpenAI's object, "spec": ..., "adapter": ..., ...}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    @property
    def job(self) -> dict[str, Any]:
        return self.record["job"]

    def spec(self) -> JobSpec:
        s = dict(self.record["spec"])
        s["training_file"] = Path(s["training_file"])
        s["validation_file"] = Path(s["validation_file"]) if s["validation_file"] else None
        return JobSpec(**s)

    def save(self) -> None:
        write_bytes_atomic(self.folder / "job.json", json.dumps(self.record, indent=1).encode())

    def update(self, **fields: Any) -> None:
        with self.lock:
            self.job.update(fields)
            self.save()

    def append(self, name: str, item: dict[str, Any]) -> None:
        """One line, written in one call; after a kill mid-line the next starts afresh."""
        line = json.dumps(item) + "\n"
        with self.lock, open(self.folder / name, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode("utf-8"))

    def events(self) -> list[dict[str, Any]]:
        return _jsonl(self.folder / "events.jsonl")

    def checkpoints(self) -> list[dict[str, Any]]:
        return _jsonl(self.folder / "checkpoints.jsonl")


class _Report:
    """The ``JobReport`` a runner gets for one job."""

    def __init__(self, job: _Job, closing: threading.Event) -> None:
        self._job = job
        self._closing = closing

    def event(
        self,
        message: str,
        *,
        level: str = "info",
        data: dict[str, Any] | None = None,
        kind: str = "message",
    ) -> None:
        self._job.append(
            "events.jsonl",
            {
                "object": "fine_tuning.job.event",
                "id": f"ftevent-{uuid.uuid4().hex[:24]}",
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "data": data or {},
                "type": kind,
            },
        )

    def checkpoint(self, step: int, metrics: dict[str, float], adapter: Path) -> None:
        job = self._job.job
        self._job.append(
            "checkpoints.jsonl",
            {
                "object": "fine_tuning.job.checkpoint",
                "id": f"ftckpt-{uuid.uuid4().hex[:24]}",
                "created_at": int(time.time()),
                "fine_tuning_job_id": job["id"],
                "fine_tuned_model_checkpoint": f"{_model_name(job)}:ckpt-step-{step}",
                "step_number": step,
                "metrics": {"step": step, **metrics},
                "adapter": str(adapter),
            },
        )

    def check_stop(self) -> None:
        if self._job.stop.is_set() or self._closing.is_set():
            raise JobStopped(self._job.job["id"])


def _model_name(job: dict[str, Any]) -> str:
    """``ft:<base>:<suffix>:<id>``, OpenAI's shape for a fine-tuned model's name."""
    return f"ft:{job['model']}:{job.get('user_provided_suffix') or ''}:{job['id'][6:]}"


class Jobs:
    """Every job under ``folder``; a single worker thread runs them in the order created."""

    def __init__(self, folder: Path, runner: JobRunner) -> None:
        self.folder = folder
        self.runner = runner
        self.jobs: dict[str, _Job] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        for path in sorted(folder.glob("ftjob-*/job.json")):
            record = json.loads(path.read_text())
            self.jobs[record["job"]["id"]] = _Job(path.parent, record)

    def start(self) -> None:
        """Queue the unfinished jobs (a restart resumes them), then start the worker."""
        for job in sorted(self.jobs.values(), key=lambda j: j.job["created_at"]):
            if job.job["status"] not in FINISHED:
                if job.job["status"] == "running":
                    _Report(job, self._closing).event("Resuming after a server restart")
                self._queue.put(job.job["id"])
        self._thread = threading.Thread(target=self._work, name="evaltune-jobs", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the running job at its next step (it stays ``running`` on disk: the next start
        resumes it) and let the worker go."""
        self._closing.set()
        self._queue.put(None)

    def add(self, spec: JobSpec, job: dict[str, Any]) -> dict[str, Any]:
        folder = self.folder / spec.id
        record = {
            "job": job,
            "spec": {
                **asdict(spec),
                "training_file": str(spec.training_file),
                "validation_file": str(spec.validation_file or "") or None,
            },
        }
        entry = self.jobs[spec.id] = _Job(folder, record)
        entry.save()
        _Report(entry, self._closing).event(f"Created fine-tuning job: {spec.id}")
        self._queue.put(spec.id)
        return job

    def get(self, job_id: str) -> _Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(
                404,
                f"no fine-tuning job {job_id!r} on this server; GET "
                "/v1/fine_tuning/jobs lists them",
            )
        return job

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self.get(job_id)
        status = job.job["status"]
        if status in FINISHED:
            raise ApiError(400, f"job {job_id} has already {status}; there is nothing to cancel")
        job.stop.set()  # a running job stops at its next step; a queued one never starts
        job.update(status="cancelled", finished_at=int(time.time()))
        _Report(job, self._closing).event("Job cancelled")
        return job.job

    def adapters(self) -> dict[str, Path]:
        """Every servable name: each succeeded job's model, every checkpoint of every job."""
        found: dict[str, Path] = {}
        for job in self.jobs.values():
            for c in job.checkpoints():
                found[c["fine_tuned_model_checkpoint"]] = Path(c["adapter"])
            if job.job["status"] == "succeeded" and job.record.get("adapter"):
                found[job.job["fine_tuned_model"]] = Path(job.record["adapter"])
        return found

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None:
            job = self.jobs[job_id]
            if job.job["status"] in FINISHED or self._closing.is_set():
                continue
            self._run(job)

    def _run(self, job: _Job) -> None:
        report = _Report(job, self._closing)
        job.update(status="running")
        report.event("Fine-tuning job started")
        try:
            outcome = self.runner.run(job.spec(), job.folder / "work", report)
        except JobStopped:
            return  # cancelled (already marked) or shutting down (stays running: resumes)
        except EvaltuneError as exc:
            self._fail(job, report, "invalid_job", str(exc))
            return
        except Exception as exc:  # a bug, not the user's input: logged with its traceback
            log.exception("fine-tuning job %s failed", job.job["id"])
            self._fail(job, report, "server_error", f"{type(exc).__name__}: {exc}")
            return
        if job.stop.is_set():
            return
        with job.lock:
            job.record["adapter"] = str(outcome.adapter)
        hyper = {**job.job["hyperparameters"], **outcome.hyperparameters}
        kind = (job.job.get("method") or {}).get("type", "supervised")
        job.update(
            status="succeeded",
            fine_tuned_model=_model_name(job.job),
            finished_at=int(time.time()),
            trained_tokens=outcome.trained_tokens,
            hyperparameters=hyper,
            method={"type": kind, kind: {"hyperparameters": hyper}},
        )
        report.event(f"New fine-tuned model created: {job.job['fine_tuned_model']}")
        report.event("The job has successfully completed")

    def _fail(self, job: _Job, report: _Report, code: str, message: str) -> None:
        if job.stop.is_set():
            return  # cancelled while it failed: it stays cancelled
        job.update(
            status="failed",
            finished_at=int(time.time()),
            error={"code": code, "message": message, "param": None},
        )
        report.event(f"Fine-tuning job failed: {message}", level="error")
