"""Tinker protocol, session side: client config, sessions and heartbeats, capabilities,
telemetry, sampling sessions, ``asample`` and future retrieval.

The client config this server returns keeps the SDK on its simplest paths: plain API-key auth
(no JWT exchange), the httpx transport, uncompressed protobuf, one ``forward_backward`` chunk
after another, and per-request future polling; its dynamic config turns on the SDK's sample
cancellation, so an abandoned ``sample`` future sends ``cancel_future`` and its decode stops
(``server.generations``). Heartbeats and telemetry are answered and otherwise ignored.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from tinker import types

from evaltune.bridge import input_tokens, sample_spec
from evaltune.engine.batcher import SampleOutput
from evaltune.engine.sampling import SEED_MAX, SEED_MIN
from evaltune.errors import EngineError
from evaltune.server.http import ApiError, read_json, read_model
from evaltune.server.state import SamplerSession, ServerState
from evaltune.server.wire import encode_sample_response

__all__ = ["service_router"]

MAX_SAMPLES = 256
CLIENT_CONFIG = types.ClientConfigResponse(
    pjwt_auth_enabled=False,
    use_pyqwest_transport=False,
    proto_compress_fwdbwd=False,
    parallel_fwdbwd_chunks=False,
    sample_use_retrieve_futures=False,
    custom_loss_server_side=False,
    sample_join_sampling_session=False,
)


def _json(model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"))


def capabilities(state: ServerState) -> types.GetServerCapabilitiesResponse:
    config = getattr(state.engine.model, "config", None)
    context = getattr(getattr(config, "text_config", config), "max_position_embeddings", None)
    model = types.SupportedModel(
        model_name=state.base_model, max_context_length=context, trainable=True, sampleable=True
    )
    return types.GetServerCapabilitiesResponse(supported_models=[model])


def _check_sample_request(req: types.SampleRequest) -> None:
    unsupported = {
        "topk_prompt_logprobs": req.topk_prompt_logprobs,
        "topk_sample_logprobs": req.topk_sample_logprobs,
        "target_prompt_logprobs": req.target_prompt_logprobs,
        "prompt_alt_tokens_k": req.prompt_alt_tokens_k,
        "record_stability_info": req.record_stability_info,
    }
    used = [name for name, value in unsupported.items() if value]
    if used:
        raise ApiError(400, f"{', '.join(used)} is not supported by evaltune serve")
    if not 1 <= req.num_samples <= MAX_SAMPLES:
        raise ApiError(
            400, f"num_samples must be between 1 and {MAX_SAMPLES}; got {req.num_samples}"
        )
    seed = req.sampling_params.seed
    if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
        raise ApiError(400, f"sampling_params.seed must be from -2**63 to 2**64-1; got {seed}")


def service_router(state: ServerState) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    limit = state.config.max_body_bytes

    @router.post("/client/config")
    async def client_config() -> JSONResponse:
        return _json(CLIENT_CONFIG)

    @router.post("/client/dynamic_config")
    async def client_dynamic_config() -> JSONResponse:
        return _json(types.ClientDynamicConfigResponse(sample_cancel_enabled=True))

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/get_server_capabilities")
    async def get_server_capabilities() -> JSONResponse:
        return _json(capabilities(state))

    @router.post("/create_session")
    async def create_session(request: Request) -> JSONResponse:
        await read_model(request, types.CreateSessionRequest, limit)
        return _json(types.CreateSessionResponse(session_id=state.new_session()))

    @router.post("/session_heartbeat")
    async def session_heartbeat(request: Request) -> JSONResponse:
        req = await read_model(request, types.SessionHeartbeatRequest, limit)
        if req.session_id in state.sessions:
            state.session(req.session_id)
        state.reap_idle()
        return _json(types.SessionHeartbeatResponse())

    @router.post("/sessions/{session_id}/finish")
    async def finish_session(session_id: str) -> JSONResponse:
        state.finish_session(session_id)
        return JSONResponse(None)

    @router.post("/telemetry")
    async def telemetry() -> dict[str, str]:
        return {"status": "accepted"}

    @router.post("/cancel_future")
    async def cancel_future(request: Request) -> JSONResponse:
        """Stop a sample's generation (the SDK cancels only samples; other work is left be)."""
        request_id = (await read_json(request, limit)).get("request_id")
        future = state.futures.future(request_id) if isinstance(request_id, str) else None
        if future is not None:
            state.generations.cancel(future)
        return JSONResponse(None)

    @router.post("/retrieve_future")
    async def retrieve_future(request: Request) -> Response:
        req = await read_model(request, types.FutureRetrieveRequest, limit)
        return await state.futures.retrieve(req.request_id)

    @router.post("/create_sampling_session")
    async def create_sampling_session(request: Request) -> JSONResponse:
        req = await read_model(request, types.CreateSamplingSessionRequest, limit)
        folder = None
        if req.model_path:
            folder = state.checkpoints.folder(req.model_path)
            state.check_adapter_base(folder, f"checkpoint {req.model_path}")
        elif req.base_model:
            state.check_base_model(req.base_model)
        else:
            raise ApiError(400, "create_sampling_session needs model_path or base_model")
        sampler_id = state.new_id("sampler")
        state.samplers[sampler_id] = SamplerSession(sampler_id, folder, req.model_path)
        return _json(types.CreateSamplingSessionResponse(sampling_session_id=sampler_id))

    @router.post("/join_sampling_session")
    async def join_sampling_session(request: Request) -> JSONResponse:
        req = await read_model(request, types.JoinSamplingSessionRequest, limit)
        counter = next(state.sampler(req.sampling_session_id).clients)
        return _json(types.JoinSamplingSessionResponse(client_counter=counter))

    @router.get("/samplers/{sampler_id}")
    async def get_sampler(sampler_id: str) -> JSONResponse:
        sampler = state.sampler(sampler_id)
        return _json(
            types.GetSamplerResponse(
                sampler_id=sampler_id, base_model=state.base_model, model_path=sampler.model_path
            )
        )

    @router.post("/asample")
    async def asample(request: Request) -> dict:
        req = await read_model(request, types.SampleRequest, limit)
        _check_sample_request(req)
        if req.sampling_session_id is not None:
            folder = state.sampler(req.sampling_session_id).folder
        elif req.model_path:
            folder = state.checkpoints.folder(req.model_path)
        else:
            state.check_base_model(req.base_model)
            folder = None
        params = req.sampling_params
        spec = sample_spec(input_tokens(req.prompt, "prompt"), req.num_samples, params)
        spec.max_tokens = state.generations.budget(params.max_tokens, "sampling_params.max_tokens")
        (ticket,) = state.generations.start(folder, [spec], bool(req.prompt_logprobs))
        last_n = req.prompt_logprobs_last_n

        def encode(out: SampleOutput) -> bytes:
            if ticket.cancelled:
                raise EngineError("the sample was cancelled (by its client, or at shutdown)")
            return encode_sample_response(out, last_n)

        ids = [uuid.uuid4().hex for _ in range(req.num_samples)]
        return {**state.track(ticket.future, encode), "sample_sequence_ids": ids}

    return router
