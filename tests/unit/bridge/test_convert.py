"""``tinker.types`` ↔ engine conversions: AdamParams, optimizers, inputs, forward outputs,
sampling parameters (Tinker's stop rule) and prompt logprobs."""

from __future__ import annotations

import pytest
import torch
from tinker import types

from evaltune.bridge import (
    adam_config,
    check_optimizer,
    forward_items,
    forward_output,
    input_tokens,
    prompt_logprobs,
    sample_response,
    sample_spec,
)
from evaltune.engine import AdamConfig, ForwardResult, Sampled
from evaltune.engine.batcher import SampleOutput
from evaltune.errors import BackendError


def test_adam_params_become_the_engines_adam_config() -> None:
    params = types.AdamParams(
        learning_rate=3e-4, beta1=0.8, beta2=0.99, eps=1e-8, weight_decay=0.1, grad_clip_norm=1.0
    )
    assert adam_config(params) == AdamConfig(3e-4, 0.8, 0.99, 1e-8, 0.1, 1.0)
    defaults = adam_config(types.AdamParams())
    assert defaults == AdamConfig()  # the SDK's defaults are the engine's
    with pytest.raises(BackendError, match="only AdamParams"):
        adam_config(types.DimuonParams(learning_rate=1e-3))


def test_only_adamw_is_accepted() -> None:
    check_optimizer(None)
    check_optimizer(types.AdamOptimizerConfig())
    with pytest.raises(BackendError, match=r"'dimuon' is not supported.*AdamW"):
        check_optimizer(types.DimuonOptimizerConfig())


def test_inputs_are_text_chunks_only() -> None:
    assert input_tokens(types.ModelInput.from_ints([3, 4, 5]), "prompt") == [3, 4, 5]
    image = types.ImageAssetPointerChunk(format="png", location="x.png", expected_tokens=4)
    with pytest.raises(BackendError, match="prompt: ImageAssetPointerChunk inputs"):
        input_tokens(types.ModelInput(chunks=[image]), "prompt")


def test_forward_items_and_output() -> None:
    datum = types.Datum(
        model_input=types.ModelInput.from_ints([1, 2, 3]),
        loss_fn_inputs={"target_tokens": [2, 3, 4], "weights": [0.0, 1.0, 1.0]},
    )
    (item,) = forward_items([datum])
    assert item.tokens == [1, 2, 3]
    assert item.inputs["target_tokens"].tolist() == [2, 3, 4]
    assert item.inputs["weights"].shape == (3,)
    lp, el = torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([0.0, 2.0, 3.0])
    out = forward_output(ForwardResult(5.0, [lp], [el], 3, 2))
    assert out.metrics == {"loss:sum": 5.0}
    assert out.loss_fn_outputs[0]["logprobs"].tolist() == [-1.0, -2.0, -3.0]
    assert out.loss_fn_outputs[0]["elementwise_loss"].tolist() == [0.0, 2.0, 3.0]


def test_sample_spec_follows_tinker_stop_semantics() -> None:
    params = types.SamplingParams(max_tokens=5, stop=["\n"], seed=3, temperature=0.5)
    spec = sample_spec([1, 2], 3, params)
    assert (spec.stop_strings, spec.stop_tokens, spec.ignore_eos) == (["\n"], [], False)
    assert (spec.num_samples, spec.max_tokens, spec.seed, spec.temperature) == (3, 5, 3, 0.5)
    assert sample_spec([1], 1, types.SamplingParams(stop=[7, 8])).stop_tokens == [7, 8]
    assert sample_spec([1], 1, types.SamplingParams(stop=[])).ignore_eos  # [] disables EOS too
    assert not sample_spec([1], 1, types.SamplingParams()).ignore_eos  # None keeps EOS
    assert sample_spec([1], 1, types.SamplingParams(stop="x")).stop_strings == ["x"]


def test_prompt_logprobs_have_none_first_and_keep_the_last_n() -> None:
    scored = [-1.0, -2.0, -3.0]  # the engine's: one per token after the first
    assert prompt_logprobs(scored) == [None, -1.0, -2.0, -3.0]
    assert prompt_logprobs(scored, 2) == [None, None, -2.0, -3.0]
    assert prompt_logprobs(scored, 0) == [None] * 4
    assert prompt_logprobs(scored, 10) == [None, -1.0, -2.0, -3.0]  # more than there are


def test_sample_response() -> None:
    out = SampleOutput(
        [Sampled([4, 5], [-0.5, -1.5], "stop"), Sampled([9], [-0.25], "length")],
        prompt_logprobs=[-1.0, -2.0],
    )
    res = sample_response(out)
    assert [s.tokens for s in res.sequences] == [[4, 5], [9]]
    assert [s.stop_reason for s in res.sequences] == ["stop", "length"]
    assert res.sequences[1].logprobs == [-0.25]
    assert res.prompt_logprobs == [None, -1.0, -2.0]
    assert sample_response(SampleOutput(out.samples)).prompt_logprobs is None
