"""``EndpointClient`` and ``evaluate_endpoint`` on an in-process httpx transport: request bodies,
retries, and the messages a wrong URL, key or model gives (``evaltune bench`` against a real
``evaltune serve`` is tests/integration/test_bench.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from evaltune import faults
from evaltune.data import Message
from evaltune.errors import ConfigError, EvalError
from evaltune.evals import EndpointClient, evaluate_endpoint, load_suite
from evaltune.evals.endpoint import completion_prompt, normalize_base_url

Handler = Callable[[httpx.Request], httpx.Response]


def chat_reply(text: str, finish: str = "stop", tokens: int = 3) -> httpx.Response:
    body = {
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"completion_tokens": tokens},
    }
    return httpx.Response(200, json=body)


def client(handler: Handler, **kw) -> EndpointClient:
    kw.setdefault("retries", 0)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return EndpointClient("http://srv:8000/v1", "m", client=http, **kw)


def test_base_urls_are_normalised() -> None:
    assert normalize_base_url("http://h:8000") == "http://h:8000/v1"
    assert normalize_base_url("http://h:8000/v1/") == "http://h:8000/v1"
    assert normalize_base_url("https://api.x.com/v1/chat/completions") == "https://api.x.com/v1"
    assert normalize_base_url("http://h:11434/api/openai") == "http://h:11434/api/openai"
    with pytest.raises(ConfigError, match="'localhost:8000' is not an http\\(s\\) URL"):
        normalize_base_url("localhost:8000")


def test_chat_and_completions_requests(tmp_path: Path) -> None:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append({"url": str(request.url), **json.loads(request.content)})
        if request.url.path.endswith("/chat/completions"):
            return chat_reply(" Paris ", finish="length", tokens=5)
        return httpx.Response(200, json={"choices": [{"text": "Rome", "finish_reason": "stop"}]})

    messages = [Message("system", "Be brief."), Message("user", "Capital of France?")]
    reply = client(handler).complete(messages, {"max_tokens": 5, "temperature": 0.0})
    assert (reply.text, reply.stop_reason, reply.num_tokens) == ("Paris", "length", 5)
    assert seen[0]["url"] == "http://srv:8000/v1/chat/completions"
    assert seen[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert seen[0]["model"] == "m" and seen[0]["max_tokens"] == 5

    reply = client(handler, api="completions").complete(messages, {"max_tokens": 5})
    assert (reply.text, reply.num_tokens) == ("Rome", 0)
    assert seen[1]["prompt"] == completion_prompt(messages)
    assert seen[1]["prompt"] == "System: Be brief.\n\nUser: Capital of France?\n\nAssistant:"
    assert seen[1]["stop"] == ["\n\nUser:"]


def test_busy_servers_are_retried() -> None:
    answers = iter([httpx.Response(503), httpx.Response(429, headers={"retry-after": "0"})])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers, None) or chat_reply("ok")

    faults.drain()
    endpoint = client(handler, retries=2)
    assert endpoint.complete([Message("user", "hi")], {}).text == "ok"
    base = endpoint.base_url
    counted = {k: n for k, n in faults.drain().items() if k.startswith(base)}  # per process
    assert counted == {f"{base}: HTTP 503": 1, f"{base}: HTTP 429": 1}
    with pytest.raises(EvalError, match="answered 503"):
        client(lambda r: httpx.Response(503, text="busy")).complete([Message("user", "x")], {})


def test_errors_name_the_url_and_the_fix() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(EvalError, match=r"cannot connect to http://srv:8000/v1/chat/completions"):
        client(refuse).complete([Message("user", "x")], {})

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out")

    with pytest.raises(EvalError, match=r"sent no answer within 120 s; raise --timeout"):
        client(slow).complete([Message("user", "x")], {})

    unauthorized = lambda r: httpx.Response(401, json={"error": {"message": "bad key"}})  # noqa: E731
    with pytest.raises(EvalError, match=r"answered 401: bad key; the key from \$K was refused"):
        client(unauthorized, api_key="sk-x", key_source="$K").complete([Message("user", "x")], {})
    with pytest.raises(EvalError, match=r"no API key was sent: put it in \$K"):
        client(unauthorized, key_source="$K").complete([Message("user", "x")], {})

    def not_found(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"data": [{"id": "llama"}, {"id": "qwen"}]})
        return httpx.Response(404, json={"error": {"message": "no such model"}})

    with pytest.raises(EvalError, match=r"model 'm' is not served there; it serves: llama, qwen"):
        client(not_found).complete([Message("user", "x")], {})
    with pytest.raises(EvalError, match=r"is --endpoint the API base"):
        client(lambda r: httpx.Response(404, text="Not Found")).complete([Message("user", "x")], {})
    with pytest.raises(EvalError, match="sent no choices"):
        client(lambda r: httpx.Response(200, json={"x": 1})).complete([Message("user", "x")], {})


def test_a_suite_on_an_endpoint_is_an_eval_result(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "prompt": "2+2?", "completion": "4", "tags": ["math"]},
        {"id": "b", "prompt": "Capital of Italy?", "completion": "Rome", "tags": ["geo"]},
        {"id": "c", "prompt": "3+3?", "completion": "6", "tags": ["math"]},
    ]
    (tmp_path / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = {"2+2?": "4", "Capital of Italy?": "Milan", "3+3?": "6"}
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        question = json.loads(request.content)["messages"][-1]["content"]
        calls.append(question)
        return chat_reply(answers[question])

    suite = load_suite("s", file=str(tmp_path / "s.jsonl"), renderer="endpoint-chat")
    progress: list[int] = []
    result = evaluate_endpoint(
        suite, client(handler), seed=3, progress=lambda done, total: progress.append(done)
    )
    assert [r.id for r in result.records] == ["a", "b", "c"]
    assert [r.correct for r in result.records] == [True, False, True]
    assert result.per_tag["math"]["accuracy"] == 1.0 and result.per_tag["geo"]["accuracy"] == 0.0
    assert result.model_path == "m" and result.suite_hash == suite.suite_hash
    assert result.sampling["endpoint"] == "http://srv:8000/v1" and result.sampling["seed"] == 3
    assert result.provenance["endpoint"] == "http://srv:8000/v1"
    assert calls[0] == "2+2?" and sorted(calls) == sorted(answers)  # the first goes alone
    assert progress[-1] == 3

    failing = client(lambda r: httpx.Response(500, text="boom"))
    with pytest.raises(EvalError, match="answered 500: boom"):
        evaluate_endpoint(suite, failing)
