"""LLM-as-judge: score parsing, the grader on a deterministic judge, the real HTTP path against
an OpenAI-compatible server started on 127.0.0.1, an in-process httpx transport for error
handling, and a SamplingClient-like judge."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import httpx
import pytest
from tinker import types

from evaltune.data.example import Example, Message
from evaltune.errors import EvalError
from evaltune.evals import (
    EndpointChat,
    JudgeGrader,
    SamplerChat,
    api_key_from_env,
    evaluate_examples,
    make_grader,
    parse_score,
)

EX = Example.single_turn("q1", "What is the capital of Italy?", "Rome")


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Correct and complete.\nSCORE: 9", 9.0),
        ("**Score:** 7/10", 7.0),
        ("Rating: [[4]]", 4.0),
        ("A score of 2 would be harsh. SCORE: 8", 8.0),  # the last one wins
        ("Good answer.\n\n6", 6.0),  # a bare number alone on the last line
        ("score = 3.5", 3.5),
        ("SCORE: 11", None),  # outside the scale
        ("I think it is fine.", None),
        ("", None),
    ],
)
def test_parse_score(reply: str, score: float | None) -> None:
    assert parse_score(reply, 1, 10) == score


class ScriptedJudge:
    """A deterministic judge backend: the reply depends on whether the response says Rome."""

    name = "scripted"

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.prompts: list[str] = []

    def complete_many(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
        self.batches.append(len(conversations))
        replies = []
        for conversation in conversations:
            prompt = conversation[-1].content
            self.prompts.append(prompt)
            answer = prompt.split("[Response to grade]\n", 1)[1]
            good = "rome" in answer.lower()
            replies.append("It names Rome.\nSCORE: 10" if good else "Wrong city.\nSCORE: 2")
        return replies


def test_judge_grader_scores_normalises_and_keeps_reasoning() -> None:
    judge = ScriptedJudge()
    grader = JudgeGrader(judge, rubric="correctness", pass_score=8)
    grades = grader.grade_batch([("Rome.", "Rome", EX), ("Milan.", "Rome", EX), ("", "Rome", EX)])
    assert judge.batches == [2]  # one batch; the empty response is never sent
    assert [g.score for g in grades] == [1.0, pytest.approx(1 / 9), 0.0]
    assert [g.correct for g in grades] == [True, False, None]
    assert grades[0].metrics == {"judge_score": 10.0}
    assert grades[0].detail == "judge 10/10: It names Rome"
    assert grades[2].detail == "empty response"
    prompt = judge.prompts[0]
    assert "Rubric: Is the response correct and complete" in prompt
    assert "[Question]\nWhat is the capital of Italy?" in prompt
    assert "[Reference answer]\nRome" in prompt
    assert '"SCORE: <n>" where <n> is an integer from 1 to 10' in prompt


def test_judge_without_a_score_scores_zero_and_says_so() -> None:
    class Rambling:
        name = "rambler"

        def complete_many(self, conversations: Sequence[Sequence[Message]]) -> list[str]:
            return ["I would rather not say." for _ in conversations]

    grade = JudgeGrader(Rambling())("Rome", "Rome", EX)
    assert grade.score == 0.0 and "judge (rambler) gave no score" in grade.detail


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"min_score": 5, "max_score": 5}, "must exceed min_score"),
        ({"pass_score": 11}, "outside 1..10"),
        ({"rubric": "  "}, "the rubric is empty"),
    ],
)
def test_judge_options_are_checked(options: dict, match: str) -> None:
    with pytest.raises(EvalError, match=match):
        JudgeGrader(ScriptedJudge(), **options)


def test_judge_accuracy_is_the_pass_rate_in_an_evaluation() -> None:
    from evaltune.evals.generation import grade_responses

    examples = [EX, Example.single_turn("q2", "Capital of France?", "Paris")]
    grader = make_grader("judge", backend=ScriptedJudge(), pass_score=8)
    records = grade_responses(examples, ["Rome", "Lyon"], grader)
    assert [r.correct for r in records] == [True, False]
    assert records[0].metrics == {"judge_score": 10.0}


# -- the real path: an OpenAI-compatible endpoint on 127.0.0.1 ----------------------------------
class _ChatHandler(BaseHTTPRequestHandler):
    """/v1/chat/completions: a deterministic judge that wants a key and counts requests."""

    requests: ClassVar[list[dict[str, Any]]] = []
    fail_first: ClassVar[list[int]] = [0]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"),
                                    "body": body})  # fmt: skip
        if self.path != "/v1/chat/completions":
            return self._send(404, {"error": {"type": "not_found", "message": "no route"}})
        if self.headers.get("Authorization") != "Bearer sk-test":
            return self._send(401, {"error": {"type": "auth", "message": "bad key"}})
        if type(self).fail_first[0] > 0:
            type(self).fail_first[0] -= 1
            return self._send(503, {"error": {"type": "busy", "message": "try again"}})
        prompt = body["messages"][-1]["content"]
        answer = prompt.split("[Response to grade]\n", 1)[1].split("\n\nExplain", 1)[0]
        score = 9 if re.search(r"\brome\b", answer, re.I) else 1
        content = f"The response {'is' if score == 9 else 'is not'} right.\nSCORE: {score}"
        self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}]})  # fmt: skip

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    _ChatHandler.requests = []
    _ChatHandler.fail_first = [0]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_judge_through_a_real_openai_compatible_endpoint(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    chat = EndpointChat(endpoint, "judge-model", api_key_from_env("JUDGE_KEY", "judge"))
    grader = make_grader("judge", backend=chat, rubric="helpfulness", pass_score=7)
    responses = ["Rome.", "Milan, I think.", "It's Rome!", "Naples."]
    grades = grader.grade_batch([(r, "Rome", EX) for r in responses])
    chat.close()
    assert [g.correct for g in grades] == [True, False, True, False]
    assert [g.metrics["judge_score"] for g in grades] == [9.0, 1.0, 9.0, 1.0]
    assert grades[0].detail == "judge 9/10: The response is right"
    sent = _ChatHandler.requests
    assert len(sent) == 4 and {r["auth"] for r in sent} == {"Bearer sk-test"}
    assert sent[0]["body"]["model"] == "judge-model" and sent[0]["body"]["temperature"] == 0.0
    assert (
        "Rubric: Does the response answer the question helpfully"
        in (sent[0]["body"]["messages"][0]["content"])
    )


def test_endpoint_retries_a_busy_server_then_reports_errors(endpoint: str) -> None:
    _ChatHandler.fail_first = [1]
    chat = EndpointChat(endpoint, "m", "sk-test", retries=2)
    assert "SCORE: 9" in chat.complete([Message("user", "[Response to grade]\nRome")])
    with pytest.raises(EvalError, match=r"answered 401: \{'type': 'auth', 'message': 'bad key'\}"):
        EndpointChat(endpoint, "m", "wrong").complete([Message("user", "x")])
    with pytest.raises(EvalError, match="unreachable"):
        EndpointChat("http://127.0.0.1:9/v1", "m", retries=0).complete([Message("user", "x")])


def test_endpoint_with_an_in_process_transport() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if b"malformed" in request.content:
            return httpx.Response(200, json={"choices": []})
        return httpx.Response(200, json={"choices": [{"message": {"content": "SCORE: 5"}}]})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    chat = EndpointChat("http://judge.test/v1", "m", client=client)
    assert chat.complete_many([[Message("user", "a")], [Message("user", "b")]]) == ["SCORE: 5"] * 2
    with pytest.raises(EvalError, match=r"sent no choices\[0\].message.content"):
        chat.complete([Message("user", "malformed")])


def test_api_key_env_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(EvalError, match="environment variable NOPE_KEY is not set"):
        api_key_from_env("NOPE_KEY", "judge")
    assert api_key_from_env(None, "judge") is None


# -- a SamplingClient-like judge -----------------------------------------------------------------
class _TextRenderer:
    """Renders a conversation to character codes; parses them back (for a fake sampler)."""

    name = "text"
    stop_sequences: ClassVar[list[str | int]] = []

    def render_prompt(self, messages: Sequence[Message]) -> list[int]:
        return [ord(c) for c in messages[-1].content]

    def parse_response(self, tokens: Sequence[int]) -> str:
        return "".join(chr(t) for t in tokens)


class _Future:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> Any:
        return self.value


class _JudgeSampler:
    def __init__(self) -> None:
        self.submitted = 0

    def sample(self, prompt: types.ModelInput, num_samples: int,
               sampling_params: types.SamplingParams) -> _Future:  # fmt: skip
        self.submitted += 1
        text = "".join(chr(t) for t in prompt.to_ints())
        reply = "SCORE: 10" if "Rome" in text.split("[Response to grade]")[-1] else "SCORE: 1"
        tokens = [ord(c) for c in reply]
        seq = types.SampledSequence(stop_reason="stop", sequence_id="s", _tokens_list=tokens)
        return _Future(types.SampleResponse(sequences=[seq]))


def test_judge_on_a_sampling_client() -> None:
    sampler = _JudgeSampler()
    chat = SamplerChat(sampler, _TextRenderer(), label="tiny judge")
    grades = JudgeGrader(chat).grade_batch([("Rome", "Rome", EX), ("Oslo", "Rome", EX)])
    assert sampler.submitted == 2
    assert [g.score for g in grades] == [1.0, 0.0]


def test_judge_grader_inside_evaluate_examples() -> None:
    """The judge runs as a batch grader at the end of an evaluation on a fake policy model."""
    policy = _JudgeSampler()  # answers "SCORE: 10"/"SCORE: 1": any text will do as a response
    judge = ScriptedJudge()
    result = evaluate_examples(
        policy, [EX, EX.__class__.single_turn("q2", "x", "Rome")], _TextRenderer(),
        JudgeGrader(judge), suite="judged", max_tokens=8,
    )  # fmt: skip
    assert judge.batches == [2]
    assert result.metrics["n"] == 2 and "judge_score" in result.metrics
