"""OpenAI-compatible clients against a real ``evaltune serve``: the ``openai`` package and
Inspect's built-in ``openai-api`` provider, on the base model and on a trained adapter."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest
from tinker import types

from evaltune.backends.tinker import make_service_client
from serve_once import SharedServer, serve_once
from tiny import CHAT_TEMPLATE, write_tiny_model


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> SharedServer:
    """The tiny model with a chat template, served as ``tiny``."""
    folder = write_tiny_model(tmp_path_factory.mktemp("tiny-chat"), chat_template=CHAT_TEMPLATE)
    return serve_once(folder, ("--served-model-name", "tiny"))


@pytest.fixture(scope="module")
def client(server: SharedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)


@pytest.fixture(scope="module")
def adapter(server: SharedServer) -> str:
    """A sampler checkpoint trained through the Tinker SDK, by its OpenAI name."""
    service = make_service_client(server.base_url, server.key_env)
    base = service.list_models()[0]
    tc = service.create_lora_training_client(base, rank=4, seed=0).result()
    ids = tc.get_tokenizer()("user: hello there!\nmodel: hi, how can I help you today?").input_ids
    datum = types.Datum(
        model_input=types.ModelInput.from_ints(ids[:-1]),
        loss_fn_inputs={"target_tokens": ids[1:], "weights": [1.0] * (len(ids) - 1)},
    )
    for _ in range(8):
        tc.forward_backward([datum], "cross_entropy")
        tc.optim_step(types.AdamParams(learning_rate=2e-2))
    path = tc.save_weights_for_sampler("chatty").result().path
    return f"{tc.model_id}/chatty", path


def test_openai_client_completes_and_chats(client: openai.OpenAI) -> None:
    assert "tiny" in [m.id for m in client.models.list().data]
    done = client.completions.create(model="tiny", prompt="The quick brown", max_tokens=6)
    assert isinstance(done.choices[0].text, str) and done.usage.completion_tokens >= 1
    chat = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello there!"}],
        max_tokens=8,
        temperature=0,
        n=2,
    )
    assert [c.index for c in chat.choices] == [0, 1]
    assert chat.choices[0].message.content == chat.choices[1].message.content  # greedy
    stream = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
    )
    parts = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert parts


def test_adapters_are_served_by_name(client: openai.OpenAI, adapter) -> None:
    name, tinker_path = adapter
    listed = {m.id for m in client.models.list().data}
    assert name in listed
    messages = [{"role": "user", "content": "hello there!"}]
    tuned = client.chat.completions.create(
        model=name, messages=messages, max_tokens=10, temperature=0
    )
    by_path = client.chat.completions.create(
        model=tinker_path, messages=messages, max_tokens=10, temperature=0
    )
    base = client.chat.completions.create(
        model="tiny", messages=messages, max_tokens=10, temperature=0
    )
    assert tuned.choices[0].message.content == by_path.choices[0].message.content
    assert tuned.choices[0].message.content != base.choices[0].message.content
    assert "hi" in tuned.choices[0].message.content


def test_openai_errors_are_raised_as_openai_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="/v1/models"):
        client.completions.create(model="gpt-4o", prompt="x")
    with pytest.raises(openai.BadRequestError, match="temperature"):
        client.completions.create(model="tiny", prompt="x", temperature=9)
    bad_key = openai.OpenAI(base_url=client.base_url, api_key="tml-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad_key.models.list()


def test_inspect_openai_api_provider_gets_answers(
    server: SharedServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import Sample
    from inspect_ai.scorer import includes
    from inspect_ai.solver import generate

    monkeypatch.setenv("EVALTUNE_API_KEY", server.api_key)
    monkeypatch.setenv("EVALTUNE_BASE_URL", f"{server.base_url}/v1")
    task = Task(
        dataset=[Sample(input="hello there!", target="hi"), Sample(input="2 plus 2?", target="4")],
        solver=generate(),
        scorer=includes(),
    )
    (log,) = inspect_eval(
        task,
        model="openai-api/evaltune/tiny",
        log_dir=str(tmp_path),
        display="none",
        max_tokens=8,
        temperature=0,
    )
    assert log.status == "success", log.error
    assert len(log.samples) == 2
    assert all(isinstance(s.output.completion, str) for s in log.samples)
    usage = next(iter(log.stats.model_usage.values()))
    assert usage.output_tokens > 0


@pytest.mark.parametrize("stop", [None, ["ow"], [" the", "!"]])
def test_streams_arrive_token_by_token_and_add_up_to_the_answer(
    client: openai.OpenAI, adapter, stop: list[str] | None
) -> None:
    name, _ = adapter
    messages = [{"role": "user", "content": "hello there!"}]
    common = {"model": name, "max_tokens": 12, "temperature": 0, "stop": stop}
    whole = client.chat.completions.create(messages=messages, **common)
    chunks = list(
        client.chat.completions.create(
            messages=messages, stream=True, stream_options={"include_usage": True}, **common
        )
    )
    parts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    answer = whole.choices[0].message.content
    assert "".join(parts) == answer
    if stop is None:
        assert len(parts) >= 3  # incremental, not one chunk
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == (
        whole.choices[0].finish_reason
    )
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    done = client.completions.create(model=name, prompt="The quick", max_tokens=10, temperature=0)
    streamed = client.completions.create(
        model=name, prompt="The quick", max_tokens=10, temperature=0, stream=True
    )
    texts = [c.choices[0].text for c in streamed if c.choices]
    assert "".join(texts) == done.choices[0].text and len([t for t in texts if t]) >= 2
