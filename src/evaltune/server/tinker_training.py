"""Tinker protocol, training side: create a LoRA model, ``forward_backward``, ``optim_step``,
``save_state``, ``save_weights_for_sampler``, ``load_weights`` and ``get_info``.

Each handler checks what it can at once (a 400 or 404 before anything is queued), then queues
the work on the engine's worker and answers with a request id; the result, or the engine's
error, comes back through ``/api/v1/retrieve_future``. Model ids follow the SDK's own scheme,
``<session_id>:train:<model_seq_id>``, because ``create_training_client_from_state`` computes
the id on the client side. The conversions, ``get_info``, the ``load_weights`` swap and the
checkpoint store are ``evaltune.bridge``'s (shared with the local backend); this module keeps
the requests, their checks and the queueing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from functools import partial

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse
from tinker import types

from evaltune.bridge import adam_config, check_optimizer, replace_slot, training_info
from evaltune.engine import ForwardResult, LoraSpec, checkpoint_spec
from evaltune.server.http import ApiError, read_body, read_model
from evaltune.server.state import SamplerSession, ServerState, TrainingModel
from evaltune.server.wire import decode_forward_request, encode_forward_output

__all__ = ["training_router"]

PROTOBUF = "application/x-protobuf"


def _dump(model: object) -> dict:
    return model.model_dump(mode="json")  # type: ignore[attr-defined]


def _run_record(state: ServerState, model: TrainingModel, user_metadata: dict | None) -> None:
    state.checkpoints.write_run(
        model.model_id,
        {
            "base_model": state.base_model,
            "lora": asdict(model.spec),
            "user_metadata": {str(k): str(v) for k, v in (user_metadata or {}).items()},
        },
    )


def training_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    engine = state.engine
    limit = state.config.max_body_bytes

    def start(
        model: TrainingModel, make_slot: Callable[[], str], response: dict, metadata: dict | None
    ) -> dict:
        """Register ``model`` now and fill in its slot on the worker."""
        state.add_model(model)
        _run_record(state, model, metadata)

        def run() -> dict:
            try:
                model.slot = make_slot()
            except Exception as exc:
                model.failed = str(exc)
                raise
            return response

        return state.submit(run, lambda r: r)

    @router.post("/create_model")
    async def create_model(request: Request) -> dict:
        req = await read_model(request, types.CreateModelRequest, limit)
        state.session(req.session_id)
        state.check_base_model(req.base_model)
        check_optimizer(req.optimizer_config)
        if req.lora_config is None:
            raise ApiError(
                400, "full fine-tuning is not supported by evaltune serve; pass a LoRA config"
            )
        lc = req.lora_config
        spec = LoraSpec(lc.rank, lc.train_mlp, lc.train_attn, lc.train_unembed, lc.seed)
        spec.validate()  # a bad rank or no targets: a 400 now, not a failed future later
        model = TrainingModel(f"{req.session_id}:train:{req.model_seq_id}", req.session_id, spec)
        reply = _dump(types.CreateModelResponse(model_id=model.model_id))
        return start(model, partial(engine.create_training_slot, spec), reply, req.user_metadata)

    @router.post("/get_info")
    async def get_info(request: Request) -> JSONResponse:
        req = await read_model(request, types.GetInfoRequest, limit)
        model = state.model(req.model_id)
        info = training_info(engine, model.model_id, model.spec, state.base_model)
        return JSONResponse(_dump(info))

    @router.post("/forward_backward")
    async def forward_backward(request: Request) -> dict:
        if PROTOBUF not in request.headers.get("content-type", ""):
            raise ApiError(415, f"forward_backward takes a protobuf body ({PROTOBUF})")
        req = decode_forward_request(await read_body(request, limit))
        model = state.model(req.model_id)

        def run() -> ForwardResult:
            slot = model.require_slot()
            return engine.forward(
                slot, req.items, req.loss_fn, req.loss_fn_config, not req.forward_only
            )

        return model.once("forward", req.seq_id, lambda: state.submit(run, encode_forward_output))

    @router.post("/optim_step")
    async def optim_step(request: Request) -> dict:
        req = await read_model(request, types.OptimStepRequest, limit)
        model = state.model(req.model_id)
        adam = adam_config(req.optim_params)

        def run() -> dict:
            metrics = engine.optim_step(model.require_slot(), adam)
            return _dump(types.OptimStepResponse(metrics=metrics))

        return model.once("optim_step", req.seq_id, lambda: state.submit(run, lambda r: r))

    @router.post("/save_weights")
    async def save_weights(request: Request) -> dict:
        req = await read_model(request, types.SaveWeightsRequest, limit)
        model = state.model(req.model_id)
        name = req.path or f"state-{next(model.snapshots):04d}"
        folder, uri = state.checkpoints.new_folder(model.model_id, "weights", name, req.overwrite)

        def run() -> dict:
            engine.save_state(model.require_slot(), folder)
            state.checkpoints.write_user_metadata(folder, req.user_metadata)
            return _dump(types.SaveWeightsResponse(path=uri, type="save_weights"))

        return state.submit(run, lambda r: r)

    @router.post("/save_weights_for_sampler")
    async def save_weights_for_sampler(request: Request) -> dict:
        req = await read_model(request, types.SaveWeightsForSamplerRequest, limit)
        model = state.model(req.model_id)
        if req.path is not None:
            folder, uri = state.checkpoints.new_folder(
                model.model_id, "sampler_weights", req.path, overwrite=True
            )
            reply = types.SaveWeightsForSamplerResponseInternal(path=uri)
        else:
            if req.kind != "snapshot":
                raise ApiError(
                    400, f"sampling client kind {req.kind!r} is not supported; use 'snapshot'"
                )
            folder = state.ephemeral_folder(model)
            sampler = SamplerSession(state.new_id("sampler"), folder, None)
            state.add_snapshot(model, sampler)
            reply = types.SaveWeightsForSamplerResponseInternal(
                sampling_session_id=sampler.sampler_id
            )

        def run() -> dict:
            engine.save_sampler(model.require_slot(), folder)
            state.checkpoints.write_user_metadata(folder, req.user_metadata)
            return _dump(reply)

        return state.submit(run, lambda r: r)

    @router.post("/load_weights")
    async def load_weights(request: Request) -> dict:
        req = await read_model(request, types.LoadWeightsRequest, limit)
        folder = state.checkpoints.folder(req.path)
        state.check_base_model(req.base_model)
        state.check_adapter_base(folder, f"checkpoint {req.path}")
        if req.session_id is not None:  # create_training_client_from_state(_with_optimizer)
            state.session(req.session_id)
            check_optimizer(req.optimizer_config)
            model_id = f"{req.session_id}:train:{req.model_seq_id}"
            model = TrainingModel(model_id, req.session_id, checkpoint_spec(folder))
            reply = _dump(types.LoadWeightsResponse(path=req.path, model_id=model_id))
            load = partial(engine.load_training_slot, folder, req.optimizer)
            return start(model, load, reply, req.user_metadata)
        if req.model_id is None:
            raise ApiError(400, "load_weights needs model_id, or session_id and model_seq_id")
        model = state.model(req.model_id)

        def run() -> dict:
            model.slot = replace_slot(engine, model.slot, folder, req.optimizer)
            model.failed = None
            return _dump(types.LoadWeightsResponse(path=req.path, model_id=model.model_id))

        return state.submit(run, lambda r: r)

    return router
