"""Generations under load and abandonment (issue 12b): the per-request token cap, the bounded
queue (429 with Retry-After), and cancellation when the client goes away, checked on a real
uvicorn on 127.0.0.1 with the tiny model: a client that asks for a huge generation and
disconnects (streaming or not, OpenAI or Tinker) stops its decode, and the next small request
is answered."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from evaltune.engine import Engine, SampleSpec
from evaltune.server import ServerConfig, create_app
from evaltune.server.generations import Generations
from evaltune.server.http import ApiError
from evaltune.server.launch import free_port
from evaltune.server.state import ServerState
from tiny import write_tiny_model

KEY = "tml-generations-test"
H = {"Authorization": f"Bearer {KEY}"}
HUGE = 150_000  # tokens: minutes of decoding for the tiny model, were it not cancelled
HANG_S = 60.0  # generous bound: only a hang takes this long


class NeverBatcher:
    """Accepts samples and never runs them (the admission rules, without a model)."""

    def __init__(self) -> None:
        self.specs: list[SampleSpec] = []

    def submit(self, adapter, spec: SampleSpec, prompt_logprobs: bool = False) -> Future:
        self.specs.append(spec)
        return Future()


def test_the_cap_and_the_queue_bound_refuse_clearly() -> None:
    gens = Generations(NeverBatcher(), max_tokens=100, max_pending=2)  # type: ignore[arg-type]
    assert gens.budget(100) == 100 and gens.budget(None) == 100  # below the engine's default
    with pytest.raises(ApiError, match="limit of 100 tokens") as over:
        gens.budget(101)
    assert over.value.status == 400
    spec = SampleSpec(prompt=[5], max_tokens=4)
    first = gens.start(None, [spec, spec])
    with pytest.raises(ApiError, match="busy") as full:
        gens.start(None, [spec])
    assert full.value.status == 429 and full.value.headers == {"Retry-After": "1"}
    with pytest.raises(ApiError, match="at most 2") as too_many:
        gens.start(None, [spec] * 3)
    assert too_many.value.status == 400  # retrying could never help
    first[0].cancel()
    assert first[0].cancelled and first[0].future.cancelled() and len(gens) == 1
    (again,) = gens.start(None, [spec])
    gens.close()
    with pytest.raises(ApiError, match="shutting down") as closing:
        gens.start(None, [spec])
    assert closing.value.status == 503 and "Retry-After" in (closing.value.headers or {})
    gens.cancel_all()
    assert len(gens) == 0 and again.cancelled


@dataclass
class Live:
    base_url: str
    state: ServerState

    def only_generation(self):
        """The one generation in flight, once it has been admitted."""
        deadline = time.monotonic() + HANG_S
        while not self.state.generations.live():
            assert time.monotonic() < deadline, "the long request never arrived"
            time.sleep(0.02)
        (ticket,) = self.state.generations.live()
        return ticket


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    folder = write_tiny_model(tmp_path_factory.mktemp("tiny-long"), context=2 * HUGE)
    engine = Engine(str(folder), device="cpu", dtype="fp32")
    engine.eos_token_ids = []  # nothing ends a sample early: only its budget, or a cancel
    ckpt = tmp_path_factory.mktemp("srv") / "ckpt"
    config_ = ServerConfig(str(folder), KEY, ckpt, served_model_name="tiny", max_tokens=2 * HUGE)
    app = create_app(config_, engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + HANG_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    state = app.state.evaltune
    try:
        yield Live(f"http://127.0.0.1:{port}", state)
    finally:
        state.generations.cancel_all()  # a failed test must not leave the worker decoding
        server.should_exit = True
        thread.join(HANG_S)


def abandon(send: Callable[[httpx.Client], object], live: Live) -> None:
    """Send a request with a short read timeout, so the client hangs up while it generates."""
    timeout = httpx.Timeout(HANG_S, read=1.0)
    with (
        httpx.Client(base_url=live.base_url, headers=H, timeout=timeout) as client,
        pytest.raises(httpx.ReadTimeout),
    ):
        send(client)


def assert_stopped_early_and_serving(live: Live, ticket) -> None:
    assert wait([ticket.future], timeout=HANG_S).done, "the generation ran on"  # a hang fails
    assert ticket.cancelled
    if not ticket.future.cancelled():  # it had started: it stopped within a few steps
        assert len(ticket.future.result().samples[0].tokens) < HUGE
    with httpx.Client(base_url=live.base_url, headers=H, timeout=HANG_S) as client:
        small = {"model": "tiny", "prompt": "The quick", "max_tokens": 4}
        done = client.post("/v1/completions", json=small)
        assert done.status_code == 200, done.text
    assert len(live.state.generations) == 0


COMPLETION = {"model": "tiny", "prompt": "Once upon a time", "max_tokens": HUGE}
CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "go"}], "max_tokens": HUGE}


@pytest.mark.parametrize("stream", [False, True])
def test_a_disconnected_completion_stops_its_generation(live: Live, stream: bool) -> None:
    body = {**COMPLETION, "stream": stream}
    if stream:  # read the first event (it is generating), then hang up mid-stream
        with (
            httpx.Client(base_url=live.base_url, headers=H, timeout=HANG_S) as client,
            client.stream("POST", "/v1/completions", json=body) as response,
        ):
            assert response.status_code == 200
            assert next(response.iter_lines()).startswith("data: ")
            ticket = live.only_generation()  # tokens are arriving: it is in flight
        assert_stopped_early_and_serving(live, ticket)
        return
    grabbed: list = []
    watcher = threading.Thread(target=lambda: grabbed.append(live.only_generation()))
    watcher.start()
    abandon(lambda c: c.post("/v1/completions", json=body), live)
    watcher.join(HANG_S)
    assert_stopped_early_and_serving(live, grabbed[0])


def test_a_cancelled_tinker_sample_stops_its_generation(live: Live) -> None:
    with httpx.Client(base_url=live.base_url, headers=H, timeout=HANG_S) as client:
        dynamic = client.post("/api/v1/client/dynamic_config", json={}).json()
        assert dynamic["sample_cancel_enabled"] is True  # the SDK sends cancel_future
        body = {
            "prompt": {"chunks": [{"type": "encoded_text", "tokens": [5, 6, 7]}]},
            "num_samples": 1,
            "base_model": "tiny",
            "sampling_params": {"max_tokens": HUGE},
        }
        request_id = client.post("/api/v1/asample", json=body).json()["request_id"]
        ticket = live.only_generation()
        assert client.post("/api/v1/cancel_future", json={"request_id": request_id}).is_success
        result = client.post("/api/v1/retrieve_future", json={"request_id": request_id}).json()
        assert "cancelled" in result["error"] and result["category"] == "user"
    assert_stopped_early_and_serving(live, ticket)
