"""OpenAI's Files and fine-tuning jobs routes: ``/v1/files`` and ``/v1/fine_tuning/jobs``.

Code written for OpenAI fine-tuning (``client.files.create``, ``client.fine_tuning.jobs.create``,
``retrieve``, ``list``, ``cancel``, ``list_events``, ``checkpoints.list``) runs unchanged
against ``evaltune serve``; each job runs the evaluation-driven loop (``server.jobs`` with the
``JobRunner`` the server was started with) and its ``fine_tuned_model`` is then served by the
OpenAI routes like any adapter. A job request may carry an ``evaltune`` field (``extra_body``
in the ``openai`` client): eval suites, targets and any run setting; an uploaded file's id in
it stands for the file.

Requests are checked before anything is stored or queued: an unknown field, a missing or
wrong-purpose file, a malformed upload (by line and field), a file of the wrong kind for the
method (chat examples for ``supervised``, preference examples for ``dpo``), ``method:
reinforcement`` (not available yet) and a run config the runner refuses are each a 400 that
says what to fix.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import FileResponse

from evaltune.errors import EvaltuneError
from evaltune.server.finetune_schema import JobRequest, job_hyperparameters, job_method, page
from evaltune.server.http import ApiError, read_body, read_model
from evaltune.server.jobs import JobSpec
from evaltune.server.state import ServerState
from evaltune.server.uploads import FILE_ID, PURPOSES, check_chat_jsonl, file_kind

__all__ = ["finetune_router"]


async def _upload(request: Request, limit: int) -> tuple[str, bytes, str]:
    """The multipart upload: file name, content and purpose (body bounded by ``limit``)."""
    body = await read_body(request, limit)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(415, "upload a file as multipart/form-data with fields file and purpose")

    async def chunks() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, chunks(), max_files=1, max_fields=8).parse()
    except MultiPartException as exc:
        raise ApiError(400, f"malformed multipart upload: {exc.message}") from None
    upload, purpose = form.get("file"), form.get("purpose")
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "the upload has no file field")
    if purpose not in PURPOSES:
        raise ApiError(
            400,
            f"purpose {purpose!r} is not supported by evaltune serve; use "
            "fine-tune (training and validation data) or evals (an eval suite)",
        )
    return upload.filename or "upload.jsonl", await upload.read(), str(purpose)


def finetune_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/v1")
    limit = state.config.max_body_bytes

    def enabled() -> Any:
        if state.jobs is None or state.files is None:
            raise ApiError(
                400,
                "fine-tuning is not enabled on this server; `evaltune serve` "
                "enables it (files and jobs under --jobs-dir)",
            )
        return state.jobs, state.files

    def data_file(file_id: str | None, field: str) -> Path | None:
        if file_id is None:
            return None
        _, files = enabled()
        try:
            stored = files.get(file_id, field)
        except ApiError as exc:
            raise ApiError(400, f"{field}: {exc.message}") from None
        if stored.info["purpose"] != "fine-tune":
            raise ApiError(
                400,
                f"{field}: {file_id} was uploaded with purpose "
                f"{stored.info['purpose']!r}; upload it with purpose fine-tune",
            )
        return stored.path

    def check_kind(path: Path | None, field: str, file_id: str | None, method: str) -> None:
        """A supervised job trains on chat examples, a dpo job on preference examples."""
        expected = "preference" if method == "dpo" else "chat"
        found = file_kind(path) if path is not None else expected
        if found != expected:
            raise ApiError(
                400,
                f"{field}: {file_id} holds {found} examples; a {method} job needs {expected} "
                "examples (method supervised: chat, method dpo: preference)",
            )

    def resolve_ids(value: Any, where: str) -> Any:
        """The ``evaltune`` field with every uploaded file's id replaced by its path."""
        if isinstance(value, dict):
            return {k: resolve_ids(v, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [resolve_ids(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) and FILE_ID.fullmatch(value):
            try:
                return str(enabled()[1].get(value).path)
            except ApiError as exc:
                raise ApiError(400, f"{where}: {exc.message}") from None
        return value

    @router.post("/files")
    async def upload_file(request: Request) -> dict[str, Any]:
        jobs, files = enabled()
        filename, data, purpose = await _upload(request, limit)
        if purpose == "fine-tune":  # off the event loop: a large file takes a while to check
            await asyncio.to_thread(check_chat_jsonl, data, filename)
        info = files.add(data, filename, purpose)
        if purpose == "fine-tune":
            try:
                path = files.get(info["id"]).path
                await asyncio.to_thread(jobs.runner.check_file, path, filename)
            except EvaltuneError as exc:
                files.delete(info["id"])
                raise ApiError(400, str(exc)) from None
        return info

    @router.get("/files")
    async def list_files(purpose: str | None = None) -> dict[str, Any]:
        infos = [i for i in enabled()[1].all() if purpose in (None, i["purpose"])]
        return {"object": "list", "data": infos, "has_more": False}

    @router.get("/files/{file_id}")
    async def get_file(file_id: str) -> dict[str, Any]:
        info: dict[str, Any] = enabled()[1].get(file_id).info
        return info

    @router.get("/files/{file_id}/content")
    async def file_content(file_id: str) -> FileResponse:
        return FileResponse(enabled()[1].get(file_id).path, media_type="application/jsonl")

    @router.delete("/files/{file_id}")
    async def delete_file(file_id: str) -> dict[str, Any]:
        enabled()[1].delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    @router.post("/fine_tuning/jobs")
    async def create_job(request: Request) -> dict[str, Any]:
        jobs, _ = enabled()
        req = await read_model(request, JobRequest, limit)
        if req.model not in state.base_names():
            raise ApiError(
                400,
                f"model {req.model!r} cannot be fine-tuned here; this server "
                f"(evaltune serve) fine-tunes {state.served_name}",
            )
        if req.integrations:
            raise ApiError(
                400,
                "integrations are not supported; evaltune records each job's "
                "run in its workspace (MLflow or trackio through the evaltune field)",
            )
        hyper, method = job_hyperparameters(req), job_method(req)
        job_id = f"ftjob-{uuid.uuid4().hex[:24]}"
        training = data_file(req.training_file, "training_file")
        assert training is not None
        validation = data_file(req.validation_file, "validation_file")
        for path, field, file_id in (
            (training, "training_file", req.training_file),
            (validation, "validation_file", req.validation_file),
        ):
            await asyncio.to_thread(check_kind, path, field, file_id, method)
        spec = JobSpec(
            id=job_id,
            base_model=state.base_model,
            model=req.model,
            training_file=training,
            validation_file=validation,
            seed=req.seed if req.seed is not None else random.randrange(2**31),
            hyperparameters=hyper,
            extension=resolve_ids(req.evaltune or {}, "evaltune"),
            method=method,
        )
        try:
            await asyncio.to_thread(jobs.runner.check_job, spec)
        except EvaltuneError as exc:
            raise ApiError(400, str(exc)) from None
        job = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(time.time()),
            "model": req.model,
            "status": "queued",
            "fine_tuned_model": None,
            "finished_at": None,
            "error": None,
            "organization_id": "evaltune",
            "training_file": req.training_file,
            "validation_file": req.validation_file,
            "hyperparameters": hyper,
            "seed": spec.seed,
            "result_files": [],
            "trained_tokens": None,
            "integrations": [],
            "estimated_finish": None,
            "user_provided_suffix": req.suffix,
            "metadata": req.metadata,
            "method": {"type": method, method: {"hyperparameters": hyper}},
        }
        return jobs.add(spec, job)

    @router.get("/fine_tuning/jobs")
    async def list_jobs(after: str | None = None, limit: int = 20) -> dict[str, Any]:
        jobs, _ = enabled()
        every = sorted((j.job for j in jobs.jobs.values()), key=lambda j: j["created_at"])
        return page(every[::-1], after, limit)

    @router.get("/fine_tuning/jobs/{job_id}")
    async def get_job(job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = enabled()[0].get(job_id).job
        return job

    @router.post("/fine_tuning/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = enabled()[0].cancel(job_id)
        return job

    @router.get("/fine_tuning/jobs/{job_id}/events")
    async def job_events(job_id: str, after: str | None = None, limit: int = 20) -> dict[str, Any]:
        return page(enabled()[0].get(job_id).events()[::-1], after, limit)

    @router.get("/fine_tuning/jobs/{job_id}/checkpoints")
    async def job_checkpoints(
        job_id: str, after: str | None = None, limit: int = 10
    ) -> dict[str, Any]:
        shown = [
            {k: v for k, v in c.items() if k != "adapter"}
            for c in enabled()[0].get(job_id).checkpoints()[::-1]
        ]
        listed = page(shown, after, limit)
        listed["first_id"] = listed["data"][0]["id"] if listed["data"] else None
        listed["last_id"] = listed["data"][-1]["id"] if listed["data"] else None
        return listed

    return router
