"""Wire formats, checked against the SDK's own encoders and decoders (not against ourselves)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tinker import types
from tinker.proto.request_conv import forward_backward_request_to_proto
from tinker.proto.response_conv import (
    deserialize_forward_backward_output,
    deserialize_sample_response,
)

from evaltune.engine import ForwardResult, Sampled
from evaltune.engine.batcher import SampleOutput
from evaltune.server.http import ApiError
from evaltune.server.wire import (
    decode_forward_request,
    encode_forward_output,
    encode_sample_response,
)


def sdk_body(data: list[types.Datum], loss_fn: str = "cross_entropy", config=None) -> bytes:
    request = types.ForwardBackwardRequest(
        forward_backward_input=types.ForwardBackwardInput(
            data=data, loss_fn=loss_fn, loss_fn_config=config
        ),
        model_id="s1:train:0",
        seq_id=3,
    )
    return forward_backward_request_to_proto(request).SerializeToString()


def test_forward_request_decodes_tokens_dense_and_sparse_tensors() -> None:
    weights = torch.zeros(2, 3)
    weights[1, 2] = 1.0  # a 2-D tensor the SDK sends as sparse CSR
    data = [
        types.Datum(
            model_input=types.ModelInput.from_ints([5, 6, 7]),
            loss_fn_inputs={"target_tokens": [6, 7, 8], "weights": [0.0, 1.0, 0.5]},
        ),
        types.Datum(
            model_input=types.ModelInput.from_ints([1, 2, 3, 4, 5, 6]),
            loss_fn_inputs={"target_tokens": torch.arange(6), "weights": weights},
        ),
    ]
    req = decode_forward_request(sdk_body(data, "ppo", {"clip_low_threshold": 0.7}))
    assert (req.model_id, req.seq_id, req.loss_fn) == ("s1:train:0", 3, "ppo")
    assert req.loss_fn_config == {"clip_low_threshold": pytest.approx(0.7)}
    first, second = req.items
    assert first.tokens == [5, 6, 7] and second.tokens == [1, 2, 3, 4, 5, 6]
    assert first.inputs["target_tokens"].tolist() == [6, 7, 8]
    assert first.inputs["weights"].tolist() == [0.0, 1.0, 0.5]
    assert second.inputs["weights"].tolist() == weights.reshape(-1).tolist()


@pytest.mark.parametrize("body", [b"\xff\xff\xff", b"", sdk_body([])])
def test_malformed_forward_requests_are_400(body: bytes) -> None:
    with pytest.raises(ApiError) as err:
        decode_forward_request(body)
    assert err.value.status == 400


def test_encoded_forward_output_reads_back_in_the_sdk() -> None:
    result = ForwardResult(
        loss=1.25,
        logprobs=[torch.tensor([-0.5, -1.0]), torch.tensor([-2.0, -0.25, -0.125])],
        elementwise_loss=[torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.25, 0.0])],
        num_tokens=5,
        num_loss_tokens=3,
    )
    out = deserialize_forward_backward_output(encode_forward_output(result))
    assert out.metrics == {"loss:sum": 1.25}
    assert len(out.loss_fn_outputs) == 2
    np.testing.assert_array_equal(
        out.loss_fn_outputs[1]["logprobs"].to_numpy(), [-2, -0.25, -0.125]
    )
    np.testing.assert_array_equal(out.loss_fn_outputs[0]["elementwise_loss"].to_numpy(), [0, 1])


def test_encoded_sample_response_reads_back_in_the_sdk() -> None:
    out = SampleOutput(
        [Sampled([4, 5], [-0.5, -1.5], "stop"), Sampled([9], [-0.25], "length")],
        prompt_logprobs=[-1.0, -2.0, -3.0],
    )
    res = deserialize_sample_response(encode_sample_response(out, prompt_logprobs_last_n=2))
    assert [s.tokens for s in res.sequences] == [[4, 5], [9]]
    assert [s.stop_reason for s in res.sequences] == ["stop", "length"]
    assert res.sequences[0].logprobs == [-0.5, -1.5]
    assert res.prompt_logprobs == [None, None, -2.0, -3.0]  # first: no prefix; then last 2 only
