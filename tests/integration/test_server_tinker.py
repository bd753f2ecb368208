"""The Tinker backend against a real ``evaltune serve`` process, beyond the contract suite:
the same numbers as the local backend, checkpoint listings, keys and model checks.

Tolerance: losses and logprobs through the server equal the local backend's to rel 1e-4 (both
run the same engine code in fp32 on CPU; the wire carries float32, so only the last bits of a
float32 may differ).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tinker
from tinker import types
from typer.testing import CliRunner

from evaltune.backends.local import ServiceClient as LocalService
from evaltune.backends.local import checkpoint_folder
from evaltune.backends.tinker import make_service_client
from evaltune.cli import app
from evaltune.errors import BackendError
from serve_once import serve_once

TEXT = "Question: What is two plus two? Answer: four."
TOLERANCE = 1e-4


def datum(tok) -> types.Datum:
    ids = tok(TEXT).input_ids
    return types.Datum(
        model_input=types.ModelInput.from_ints(ids[:-1]),
        loss_fn_inputs={"target_tokens": ids[1:], "weights": [0.0] * 6 + [1.0] * (len(ids) - 7)},
    )


def run(service, base_model: str) -> tuple[list[float], list[int], object]:
    tc = service.create_lora_training_client(base_model, rank=8, seed=5).result()
    data = [datum(tc.get_tokenizer())]
    losses = []
    for _ in range(5):
        fb = tc.forward_backward(data, "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=1e-2)).result()
        losses.append(fb.result().metrics["loss:sum"])
    sampler = tc.save_weights_and_get_sampling_client().result()
    prompt = types.ModelInput.from_ints(tc.get_tokenizer()("Question:").input_ids)
    params = types.SamplingParams(max_tokens=8, temperature=0.0)
    tokens = sampler.sample(prompt, 1, params).result().sequences[0].tokens
    return losses, tokens, tc


def test_same_losses_and_samples_as_the_local_backend(tiny_model_dir: Path, tmp_path: Path):
    server = serve_once(tiny_model_dir)
    remote, remote_tokens, _ = run(
        make_service_client(server.base_url, server.key_env), str(tiny_model_dir)
    )
    local, local_tokens, _ = run(LocalService(checkpoint_dir=tmp_path), str(tiny_model_dir))
    assert remote == pytest.approx(local, rel=TOLERANCE)
    assert remote[-1] < remote[0]
    assert remote_tokens == local_tokens


def test_checkpoints_are_listed_and_load_locally(tiny_model_dir: Path, tmp_path: Path) -> None:
    server = serve_once(tiny_model_dir)
    service = make_service_client(server.base_url, server.key_env)
    losses, _, tc = run(service, str(tiny_model_dir))
    state = tc.save_state("listed", user_metadata={"note": "hi"}).result().path
    sampler = tc.save_weights_for_sampler("listed").result().path
    rest = tinker.RestClient(base_url=server.base_url, api_key=server.api_key)
    listed = rest.list_checkpoints(tc.model_id).result().checkpoints
    assert {c.tinker_path for c in listed} >= {state, sampler}
    assert next(c for c in listed if c.tinker_path == state).user_metadata == {"note": "hi"}
    run_info = rest.get_training_run(tc.model_id).result()
    assert run_info.base_model == str(tiny_model_dir) and run_info.lora_rank == 8
    assert rest.get_training_run_by_tinker_path(sampler).result().training_run_id == tc.model_id
    assert {c.tinker_path for c in rest.list_user_checkpoints().result().checkpoints} >= {sampler}
    # The server's folders are the local backend's layout: the local backend resumes them.
    resumed = LocalService(checkpoint_dir=server.checkpoint_dir)
    assert checkpoint_folder(state, server.checkpoint_dir).is_dir()
    tc2 = resumed.create_training_client_from_state_with_optimizer(state).result()
    loss = tc2.forward([datum(tc2.get_tokenizer())], "cross_entropy").result().metrics["loss:sum"]
    assert loss < losses[0]


def test_keys_and_models_are_checked_up_front(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve_once(tiny_model_dir)
    monkeypatch.setenv("WRONG_KEY", "tml-wrong")
    with pytest.raises(BackendError, match="refused the API key"):
        make_service_client(server.base_url, "WRONG_KEY")
    service = make_service_client(server.base_url, server.key_env)
    assert service.list_models() == [str(tiny_model_dir)]
    with pytest.raises(BackendError, match=f"supports: {tiny_model_dir}"):
        service.create_lora_training_client("gemma-3-27b", rank=4)
    # The SDK alone gets the server's own 400 with the same list.
    sdk = tinker.ServiceClient(base_url=server.base_url, api_key=server.api_key)
    with pytest.raises(tinker.BadRequestError, match="unknown base model"):
        sdk.create_lora_training_client("gemma-3-27b", rank=4).result()


def test_serve_refuses_keys_the_sdk_would_refuse() -> None:
    result = CliRunner().invoke(app, ["serve", "--api-key", "secret-123"])
    assert result.exit_code == 2
    assert "must start with 'tml-'" in result.output and "secret-123" not in result.output
