"""The local ``ServiceClient`` surface: checkpoint paths and names, client futures, load_state,
prompt logprobs, stop lists and the requests it must refuse.

Each test gets its own engine (the process-wide engine cache is swapped for an empty one), so
adapters left by one test never change what another sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tinker import types

import evaltune.engine.engine as engine_mod
from evaltune.backends.local import ServiceClient, checkpoint_folder
from evaltune.errors import BackendError, EngineError

# Releasing the active adapter makes PEFT pick another one and say so; expected here.
pytestmark = pytest.mark.filterwarnings("ignore:Adapter .* was active which is now deleted")

PROMPT = "The quick brown fox jumps over the lazy dog."
TEXT = "Question: What is two plus two? Answer: four."


@pytest.fixture(autouse=True)
def _fresh_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod, "_ENGINES", {})


@pytest.fixture
def service(tmp_path: Path) -> ServiceClient:
    return ServiceClient(checkpoint_dir=tmp_path / "ckpt")


@pytest.fixture
def base_model(tiny_model_dir: Path) -> str:
    return str(tiny_model_dir)


def _datum(tokenizer, text: str = TEXT) -> types.Datum:
    ids = tokenizer(text).input_ids
    return types.Datum(
        model_input=types.ModelInput.from_ints(ids[:-1]),
        loss_fn_inputs={"target_tokens": ids[1:]},
    )


def _logprobs(tc, datum: types.Datum) -> np.ndarray:
    out = tc.forward([datum], "cross_entropy").result()
    return np.asarray(out.loss_fn_outputs[0]["logprobs"].to_numpy())


def _train(tc, datum: types.Datum, steps: int) -> None:
    for _ in range(steps):
        tc.forward_backward([datum], "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=2e-2)).result()


def _prompt(client, text: str = PROMPT) -> types.ModelInput:
    return types.ModelInput.from_ints(client.get_tokenizer()(text).input_ids)


# -- checkpoint paths (the rules themselves: tests/unit/bridge/test_checkpoints.py) ------------
def test_checkpoint_folder_takes_uris_and_plain_folders(tmp_path: Path) -> None:
    folder = tmp_path / "local-abc" / "weights" / "step-1"
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text("{}")
    assert checkpoint_folder("tinker://local-abc/weights/step-1", tmp_path) == folder
    assert checkpoint_folder(str(folder), tmp_path / "elsewhere") == folder  # plain paths too
    with pytest.raises(BackendError, match="malformed checkpoint path"):
        checkpoint_folder("tinker://local-abc/weights", tmp_path)
    with pytest.raises(BackendError, match="not found"):
        checkpoint_folder("tinker://m1/weights/nope", tmp_path)
    with pytest.raises(BackendError, match="not found"):
        checkpoint_folder(str(tmp_path / "no-such-folder"), tmp_path)


def test_save_state_lands_where_the_uri_says(service, base_model) -> None:
    tc = service.create_lora_training_client(base_model, rank=4, seed=0).result()
    path = tc.save_state("first").result().path
    assert path == f"tinker://{tc.model_id}/weights/first"
    folder = checkpoint_folder(path, service.checkpoint_dir)
    assert folder == service.checkpoint_dir / tc.model_id / "weights" / "first"
    names = {p.name for p in folder.iterdir()}
    assert {
        "adapter_model.safetensors",
        "adapter_config.json",
        "optimizer.pt",
        "evaltune_checkpoint.json",
    } <= names
    sampler = tc.save_weights_for_sampler("first").result().path
    assert sampler == f"tinker://{tc.model_id}/sampler_weights/first"
    sampler_folder = checkpoint_folder(sampler, service.checkpoint_dir)
    assert sampler_folder == service.checkpoint_dir / tc.model_id / "sampler_weights" / "first"
    assert not (sampler_folder / "optimizer.pt").exists()


# -- checkpoint names ------------------------------------------------------------------------
def test_save_state_refuses_an_existing_name(service, base_model) -> None:
    tc = service.create_lora_training_client(base_model, rank=4, seed=0).result()
    datum = _datum(tc.get_tokenizer())
    path = tc.save_state("ckpt").result().path
    with pytest.raises(BackendError, match="already exists") as err:
        tc.save_state("ckpt")
    assert "overwrite=True" in str(err.value)

    _train(tc, datum, 2)
    trained = _logprobs(tc, datum)
    assert tc.save_state("ckpt", overwrite=True).result().path == path
    fresh = service.create_training_client_from_state(path).result()
    np.testing.assert_allclose(_logprobs(fresh, datum), trained, atol=1e-6)


@pytest.mark.parametrize("name", ["../x", "", ".hidden", "a/b", "a b", "x" * 129, "..", "-"])
def test_bad_checkpoint_names_are_rejected(service, base_model, name: str) -> None:
    tc = service.create_lora_training_client(base_model, rank=4, seed=0).result()
    with pytest.raises(BackendError, match="is not allowed"):
        tc.save_state(name)
    with pytest.raises(BackendError, match="is not allowed"):
        tc.save_weights_for_sampler(name)
    assert not (service.checkpoint_dir / tc.model_id).exists()


def test_checkpoint_name_with_trailing_newline_is_rejected(service, base_model) -> None:
    tc = service.create_lora_training_client(base_model, rank=4, seed=0).result()
    with pytest.raises(BackendError, match="is not allowed"):
        tc.save_state("ckpt\n")


# -- clients and their futures ---------------------------------------------------------------
def test_create_sampling_client_needs_a_model(service) -> None:
    with pytest.raises(BackendError, match="needs model_path or base_model"):
        service.create_sampling_client()


def test_sampling_client_on_a_folder_without_base_model(service, base_model, tmp_path) -> None:
    tc = service.create_lora_training_client(base_model, rank=4, seed=0).result()
    path = tc.save_weights_for_sampler("s").result().path
    folder = checkpoint_folder(path, service.checkpoint_dir)
    (folder / "evaltune_checkpoint.json").unlink()
    with pytest.raises(BackendError, match="pass base_model= as well"):
        service.create_sampling_client(model_path=path)
    sc = service.create_sampling_client(model_path=path, base_model=base_model).result()
    assert sc.get_base_model() == base_model


def test_client_futures_work_both_ways(service, base_model) -> None:
    fut = service.create_lora_training_client(base_model, rank=4, seed=0)
    tc = fut.result()
    # The future answers the client's own methods (the SDK's back-compat style) ...
    assert fut.model_id == tc.model_id
    assert fut.get_info().lora_rank == 4
    datum = _datum(fut.get_tokenizer())
    np.testing.assert_allclose(
        fut.forward([datum]).result().loss_fn_outputs[0]["logprobs"].to_numpy(),
        _logprobs(tc, datum),
    )
    # ... and can be awaited.
    assert asyncio.run(_awaited(fut)) is tc

    sfut = service.create_sampling_client(base_model=base_model)
    sc = sfut.result()
    assert sfut.get_base_model() == base_model
    params = types.SamplingParams(max_tokens=4, temperature=0.0)
    assert (
        sfut.sample(_prompt(sc), 1, params).result().sequences[0].tokens
        == sc.sample(_prompt(sc), 1, params).result().sequences[0].tokens
    )

    snap = tc.save_weights_and_get_sampling_client()
    assert snap.model_path.startswith(f"tinker://{tc.model_id}/sampler_weights/")
    assert snap.result().compute_logprobs(_prompt(sc)).result() == pytest.approx(
        snap.compute_logprobs(_prompt(sc)).result(), abs=0
    )


async def _awaited(fut):
    return await fut


def test_server_capabilities_list_the_builtin_model(service) -> None:
    names = [m.model_name for m in service.get_server_capabilities().supported_models]
    assert "gemma-3-270m" in names


# -- load_state ------------------------------------------------------------------------------
def test_load_state_swaps_weights(service, base_model) -> None:
    # A second client keeps another adapter on the engine.
    service.create_lora_training_client(base_model, rank=4, seed=1).result()
    tc = service.create_lora_training_client(base_model, rank=4, seed=0).result()
    datum = _datum(tc.get_tokenizer())
    _train(tc, datum, 2)
    saved = _logprobs(tc, datum)
    path = tc.save_state("mid").result().path
    _train(tc, datum, 2)
    assert np.abs(_logprobs(tc, datum) - saved).max() > 1e-3

    assert tc.load_state(path).result().path == path
    np.testing.assert_allclose(_logprobs(tc, datum), saved, atol=1e-6)
    model_id = tc.model_id
    _train(tc, datum, 1)  # still trainable after the swap
    assert tc.model_id == model_id
    assert np.abs(_logprobs(tc, datum) - saved).max() > 1e-4


def test_load_state_on_the_only_adapter(service, base_model) -> None:
    tc = service.create_lora_training_client(base_model, rank=4, seed=0).result()
    datum = _datum(tc.get_tokenizer())
    _train(tc, datum, 1)
    saved = _logprobs(tc, datum)
    path = tc.save_state("only").result().path
    tc.load_state(path).result()
    np.testing.assert_allclose(_logprobs(tc, datum), saved, atol=1e-6)


def test_failed_load_keeps_the_current_weights(service, base_model) -> None:
    service.create_lora_training_client(base_model, rank=4, seed=1).result()  # see above
    tc = service.create_lora_training_client(base_model, rank=4, seed=0).result()
    datum = _datum(tc.get_tokenizer())
    _train(tc, datum, 1)
    before = _logprobs(tc, datum)
    sampler_path = tc.save_weights_for_sampler("s").result().path
    with pytest.raises(EngineError, match="save_state"):
        tc.load_state_with_optimizer(sampler_path).result()
    np.testing.assert_allclose(_logprobs(tc, datum), before, atol=1e-6)


def test_load_state_of_a_missing_checkpoint(service, base_model) -> None:
    tc = service.create_lora_training_client(base_model, rank=4, seed=0).result()
    with pytest.raises(BackendError, match="not found"):
        tc.load_state(f"tinker://{tc.model_id}/weights/never-saved")


# -- sampling surface ------------------------------------------------------------------------
def test_prompt_logprobs_match_compute_logprobs(service, base_model) -> None:
    tc = service.create_lora_training_client(base_model, rank=4, seed=0).result()
    _train(tc, _datum(tc.get_tokenizer()), 2)
    sc = tc.save_weights_and_get_sampling_client("s").result()
    prompt = _prompt(sc, TEXT)
    params = types.SamplingParams(max_tokens=3, temperature=0.0)

    scored = sc.compute_logprobs(prompt).result()
    assert len(scored) == prompt.length and scored[0] is None
    res = sc.sample(prompt, 2, params, include_prompt_logprobs=True).result()
    assert len(res.sequences) == 2
    assert res.prompt_logprobs[0] is None
    np.testing.assert_allclose(res.prompt_logprobs[1:], scored[1:], atol=1e-5)
    assert sc.sample(prompt, 1, params).result().prompt_logprobs is None
    # The adapter is really in use: the base model scores the prompt differently.
    base = service.create_sampling_client(base_model=base_model).result()
    assert np.abs(np.array(base.compute_logprobs(prompt).result()[1:]) - scored[1:]).max() > 1e-3


def test_compute_logprobs_last_n(service, base_model) -> None:
    sc = service.create_sampling_client(base_model=base_model).result()
    prompt = _prompt(sc, TEXT)
    full = sc.compute_logprobs(prompt).result()
    last2 = sc.compute_logprobs(prompt, prompt_logprobs_last_n=2).result()
    n = prompt.length
    assert len(last2) == n
    assert last2[: n - 2] == [None] * (n - 2)
    assert last2[n - 2 :] == pytest.approx(full[n - 2 :], abs=0)
    assert all(lp is not None for lp in last2[n - 2 :])


def test_stop_as_a_list_of_strings(service, base_model) -> None:
    sc = service.create_sampling_client(base_model=base_model).result()
    tok = sc.get_tokenizer()
    prompt = _prompt(sc)
    free = sc.sample(prompt, 1, types.SamplingParams(max_tokens=16, temperature=0.0)).result()
    tokens = free.sequences[0].tokens
    assert len(tokens) == 16
    late, early = tok.decode(tokens[:12])[-3:], tok.decode(tokens[:5])[-2:]
    params = types.SamplingParams(max_tokens=16, temperature=0.0, stop=[late, early])
    seq = sc.sample(prompt, 1, params).result().sequences[0]
    text = tok.decode(seq.tokens)
    assert seq.stop_reason == "stop" and len(seq.tokens) < 16
    assert seq.tokens == tokens[: len(seq.tokens)]
    assert early in text or late in text
    shorter = tok.decode(seq.tokens[:-1])
    assert early not in shorter and late not in shorter  # stopped at the first hit


def test_stop_none_keeps_eos(service, base_model, monkeypatch) -> None:
    sc = service.create_sampling_client(base_model=base_model).result()
    engine = sc._engine
    prompt = _prompt(sc)
    tokens = sc.sample(prompt, 1, types.SamplingParams(max_tokens=8, temperature=0.0)).result()
    eos = tokens.sequences[0].tokens[2]
    monkeypatch.setattr(engine, "eos_token_ids", [eos])
    seq = sc.sample(prompt, 1, types.SamplingParams(max_tokens=8, temperature=0.0)).result()
    assert seq.sequences[0].stop_reason == "stop"
    assert seq.sequences[0].tokens[-1] == eos and len(seq.sequences[0].tokens) <= 3


def test_empty_stop_list_disables_eos(service, base_model, monkeypatch) -> None:
    sc = service.create_sampling_client(base_model=base_model).result()
    prompt = _prompt(sc)
    tokens = sc.sample(prompt, 1, types.SamplingParams(max_tokens=8, temperature=0.0)).result()
    monkeypatch.setattr(sc._engine, "eos_token_ids", [tokens.sequences[0].tokens[2]])
    params = types.SamplingParams(max_tokens=8, temperature=0.0, stop=[])
    seq = sc.sample(prompt, 1, params).result().sequences[0]
    assert seq.stop_reason == "length" and len(seq.tokens) == 8


@pytest.mark.parametrize("kw", [{"topk_prompt_logprobs": 3}, {"topk_sample_logprobs": 1}])
def test_topk_logprobs_are_refused(service, base_model, kw: dict) -> None:
    sc = service.create_sampling_client(base_model=base_model).result()
    with pytest.raises(BackendError, match="top-k logprobs are not supported"):
        sc.sample(_prompt(sc), 1, types.SamplingParams(max_tokens=2), **kw)


@contextlib.contextmanager
def _worker_held(engine) -> Iterator[None]:
    """Keep the engine's worker busy so the requests made inside coalesce into one batch."""
    release = threading.Event()
    engine.submit(release.wait)
    try:
        yield
    finally:
        release.set()


def test_concurrent_samples_coalesce_and_keep_their_own_results(service, base_model) -> None:
    sc = service.create_sampling_client(base_model=base_model).result()
    prompts = [_prompt(sc, PROMPT), _prompt(sc, TEXT)]
    params = types.SamplingParams(max_tokens=5, temperature=0.0)
    alone = [sc.sample(p, 1, params, include_prompt_logprobs=True).result() for p in prompts]
    runs = sc._engine.batcher.batches_run
    with _worker_held(sc._engine):
        futures = [
            sc.sample(prompts[0], 1, params),
            sc.sample(prompts[1], 1, params, include_prompt_logprobs=True),
            sc.sample(prompts[0], 1, params, include_prompt_logprobs=True),
        ]
    results = [f.result() for f in futures]
    assert sc._engine.batcher.batches_run == runs + 1
    assert results[0].prompt_logprobs is None
    for got, want in zip(results, [alone[0], alone[1], alone[0]], strict=True):
        assert got.sequences[0].tokens == want.sequences[0].tokens
    for got, want in ((results[1], alone[1]), (results[2], alone[0])):
        assert len(got.prompt_logprobs) == len(want.prompt_logprobs)
        np.testing.assert_allclose(got.prompt_logprobs[1:], want.prompt_logprobs[1:], atol=1e-5)


def test_bad_sampling_request_fails_only_its_future(service, base_model) -> None:
    sc = service.create_sampling_client(base_model=base_model).result()
    prompt = _prompt(sc)
    with _worker_held(sc._engine):  # both land in one batch
        bad = sc.sample(prompt, 1, types.SamplingParams(max_tokens=2, temperature=-1.0))
        good = sc.sample(prompt, 1, types.SamplingParams(max_tokens=2, temperature=0.0))
    with pytest.raises(EngineError, match="temperature must be >= 0"):
        bad.result()
    assert len(good.result().sequences[0].tokens) == 2
