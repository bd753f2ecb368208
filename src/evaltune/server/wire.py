"""Tinker's wire formats to and from the engine's plain data.

The SDK sends ``forward_backward`` as a protobuf (``tinker.proto.tinker_public_pb2``, shipped
inside the SDK) and asks for ``ForwardBackwardOutput`` and ``SampleResponse`` results as
protobuf too; every other request and result is JSON in the SDK's own pydantic types. Token
ids travel as packed int32 bytes, tensors as dense bytes or sparse CSR. A message that does not
decode, or decodes to nonsense, is a 400 naming what is wrong. What the types mean (sampling
parameters, prompt tokens, prompt logprobs) is ``evaltune.bridge``'s; this module only encodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError
from tinker import types
from tinker.proto import tinker_public_pb2 as pb

from evaltune.bridge import prompt_logprobs
from evaltune.engine import ForwardItem, ForwardResult
from evaltune.engine.batcher import SampleOutput
from evaltune.server.http import ApiError

__all__ = [
    "ForwardRequest",
    "decode_forward_request",
    "encode_forward_output",
    "encode_sample_response",
]

_DTYPES = {
    pb.DTYPE_FLOAT32: ("float32", np.float32),
    pb.DTYPE_INT64: ("int64", np.int64),
    pb.DTYPE_INT32: ("int64", np.int32),
}


@dataclass
class ForwardRequest:
    model_id: str
    seq_id: int
    loss_fn: str
    loss_fn_config: dict[str, float]
    forward_only: bool
    items: list[ForwardItem]


def _tokens(chunk: pb.Chunk, where: str) -> list[int]:
    kind = chunk.WhichOneof("chunk")
    if kind != "encoded_text":
        raise ApiError(400, f"{where}: {kind or 'empty'} chunks are not supported; only text")
    raw = chunk.encoded_text.tokens
    if len(raw) % 4:
        raise ApiError(400, f"{where}: token bytes are not a whole number of int32 values")
    return np.frombuffer(raw, dtype=np.int32).tolist()


def _tensor(msg: pb.Tensor, where: str) -> types.TensorData:
    if msg.dtype not in _DTYPES:
        raise ApiError(400, f"{where}: unsupported tensor dtype {msg.dtype}")
    name, np_dtype = _DTYPES[msg.dtype]
    shape = list(msg.shape) or None
    if msg.WhichOneof("encoding") == "sparse_csr":
        csr = msg.sparse_csr
        return types.TensorData(
            data=np.frombuffer(csr.values, dtype=np_dtype).astype(name),
            dtype=name,
            shape=shape,
            sparse_crow_indices=np.frombuffer(csr.crow_indices, dtype=np.int64).tolist(),
            sparse_col_indices=np.frombuffer(csr.col_indices, dtype=np.int64).tolist(),
        )
    return types.TensorData(
        data=np.frombuffer(msg.dense, dtype=np_dtype).astype(name), dtype=name, shape=shape
    )


def _config(msg: pb.ForwardBackwardRequest) -> dict[str, float]:
    config = {k: float(v) for k, v in msg.loss_fn_config.items()}
    for key, value in msg.loss_fn_config_v2.items():
        if value.WhichOneof("value") != "number":
            raise ApiError(400, f"loss_fn_config[{key!r}]: only numbers are supported")
        config[key] = float(value.number)
    return config


def decode_forward_request(body: bytes) -> ForwardRequest:
    """A ``forward_backward`` protobuf body as engine inputs (1-D tensors per datum)."""
    msg = pb.ForwardBackwardRequest()
    try:
        msg.ParseFromString(body)
    except DecodeError as exc:
        raise ApiError(400, f"malformed forward_backward protobuf: {exc}") from None
    if not msg.model_id:
        raise ApiError(400, "forward_backward request names no model_id")
    items = []
    for i, datum in enumerate(msg.data):
        where = f"datum {i}"
        tokens = [t for chunk in datum.model_input for t in _tokens(chunk, where)]
        inputs = {}
        for key, tensor in datum.loss_fn_inputs.items():
            try:
                inputs[key] = _tensor(tensor, f"{where}: {key}").to_torch().reshape(-1)
            except (ValueError, RuntimeError, AssertionError) as exc:
                raise ApiError(
                    400, f"{where}: loss_fn_inputs[{key!r}] is malformed: {exc}"
                ) from None
        items.append(ForwardItem(tokens, inputs))
    if not items:
        raise ApiError(400, "forward_backward request has no data")
    return ForwardRequest(
        msg.model_id, msg.seq_id, msg.loss_fn, _config(msg), msg.forward_only, items
    )


def _batched(arrays: Sequence[np.ndarray]) -> pb.BatchedTensor:
    flat = [np.ascontiguousarray(a, dtype=np.float32).reshape(-1) for a in arrays]
    offsets = np.cumsum([0] + [a.nbytes for a in flat], dtype=np.int64)
    return pb.BatchedTensor(
        data=b"".join(a.tobytes() for a in flat),
        offsets=offsets.tobytes(),
        dtype=pb.DTYPE_FLOAT32,
    )


def encode_forward_output(result: ForwardResult) -> bytes:
    """Per-datum ``logprobs`` and ``elementwise_loss``, and ``loss:sum``, as the SDK reads them."""
    record = pb.ArrayRecord(type_tag="ArrayRecord", num_datums=len(result.logprobs))
    record.fields["logprobs"].CopyFrom(_batched([t.numpy() for t in result.logprobs]))
    record.fields["elementwise_loss"].CopyFrom(
        _batched([t.numpy() for t in result.elementwise_loss])
    )
    out = pb.ForwardBackwardOutput(loss_fn_output_type="ArrayRecord", loss_fn_outputs=[record])
    out.metrics["loss:sum"] = result.loss
    return out.SerializeToString()


def encode_sample_response(output: SampleOutput, prompt_logprobs_last_n: int | None) -> bytes:
    msg = pb.SampleResponse()
    for s in output.samples:
        msg.sequences.add(
            stop_reason=pb.STOP_REASON_STOP if s.stop_reason == "stop" else pb.STOP_REASON_LENGTH,
            tokens=np.asarray(s.tokens, dtype=np.int32).tobytes(),
            logprobs=np.asarray(s.logprobs, dtype=np.float32).tobytes(),
        )
    if output.prompt_logprobs is not None:
        lps = prompt_logprobs(output.prompt_logprobs, prompt_logprobs_last_n)
        values = [np.nan if lp is None else lp for lp in lps]  # the wire spells None as NaN
        msg.prompt_logprobs = np.array(values, dtype=np.float32).tobytes()
    return msg.SerializeToString()
