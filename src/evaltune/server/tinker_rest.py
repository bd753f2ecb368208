"""Tinker protocol, REST side (``tinker.RestClient``): training runs, checkpoint listings,
checkpoint deletion and weights info, read from the checkpoint folder so they survive a
restart. Checkpoints never expire here: a ``ttl_seconds`` is accepted and ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse
from tinker import types

from evaltune.bridge import CheckpointRef
from evaltune.server.http import ApiError, read_json
from evaltune.server.state import ServerState

__all__ = ["rest_router"]


def _page(items: list[Any], limit: int, offset: int) -> tuple[list[Any], types.Cursor]:
    if limit < 1 or offset < 0:
        raise ApiError(
            400, f"limit must be positive and offset non-negative; got {limit}, {offset}"
        )
    return items[offset : offset + limit], types.Cursor(
        offset=offset, limit=limit, total_count=len(items)
    )


def training_run(state: ServerState, model_id: str) -> types.TrainingRun:
    record = state.checkpoints.read_run(model_id)
    checkpoints = state.checkpoints.checkpoints(model_id)
    if record is None and not checkpoints:
        raise ApiError(404, f"no training run {model_id!r} on this server")
    record = record or {}

    def latest(kind: str) -> types.Checkpoint | None:
        return next((c for c in checkpoints if c.checkpoint_type == kind), None)

    times = [c.time for c in checkpoints]
    if record.get("created"):
        times.append(datetime.fromisoformat(record["created"]))
    return types.TrainingRun(
        training_run_id=model_id,
        base_model=record.get("base_model", state.base_model),
        model_owner="evaltune-serve",
        is_lora=True,
        lora_rank=record.get("lora", {}).get("rank"),
        last_request_time=max(times, default=datetime.now(UTC)),
        last_checkpoint=latest("training"),
        last_sampler_checkpoint=latest("sampler"),
        user_metadata=record.get("user_metadata") or None,
    )


def rest_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    store = state.checkpoints

    @router.get("/training_runs")
    async def list_training_runs(limit: int = 20, offset: int = 0) -> JSONResponse:
        runs, cursor = _page(store.run_ids(), limit, offset)
        response = types.TrainingRunsResponse(
            training_runs=[training_run(state, r) for r in runs], cursor=cursor
        )
        return JSONResponse(response.model_dump(mode="json"))

    @router.get("/training_runs/{model_id}")
    async def get_training_run(model_id: str) -> JSONResponse:
        return JSONResponse(training_run(state, model_id).model_dump(mode="json"))

    @router.get("/training_runs/{model_id}/checkpoints")
    async def list_checkpoints(model_id: str) -> JSONResponse:
        response = types.CheckpointsListResponse(checkpoints=store.checkpoints(model_id))
        return JSONResponse(response.model_dump(mode="json"))

    @router.delete("/training_runs/{model_id}/checkpoints/{checkpoint_id:path}")
    async def delete_checkpoint(model_id: str, checkpoint_id: str) -> JSONResponse:
        store.delete(model_id, checkpoint_id)
        return JSONResponse(None)

    @router.get("/checkpoints")
    async def list_user_checkpoints(limit: int = 100, offset: int = 0) -> JSONResponse:
        page, cursor = _page(store.all_checkpoints(), limit, offset)
        response = types.CheckpointsListResponse(checkpoints=page, cursor=cursor)
        return JSONResponse(response.model_dump(mode="json"))

    @router.post("/weights_info")
    async def weights_info(request: Request) -> JSONResponse:
        body = await read_json(request, state.config.max_body_bytes)
        path = body.get("tinker_path")
        if not isinstance(path, str):
            raise ApiError(400, "weights_info needs a string tinker_path")
        model_id = CheckpointRef.parse(path).model_id
        store.folder(path)  # 404 if it does not exist
        lora = (store.read_run(model_id) or {}).get("lora", {})
        info = types.WeightsInfoResponse(
            base_model=state.base_model,
            is_lora=True,
            lora_rank=lora.get("rank"),
            train_mlp=lora.get("train_mlp"),
            train_attn=lora.get("train_attn"),
            train_unembed=lora.get("train_unembed"),
        )
        return JSONResponse(info.model_dump(mode="json"))

    @router.get("/sessions/{session_id}")
    async def get_session(session_id: str) -> JSONResponse:
        session = state.session(session_id)
        response = types.GetSessionResponse(
            training_run_ids=list(session.models), sampler_ids=list(session.snapshots)
        )
        return JSONResponse(response.model_dump(mode="json"))

    return router
