"""SIGTERM during a generation (issue 12c): a server run as ``evaltune serve`` runs it (under
``uvicorn.run``, in its own process on 127.0.0.1) drains and exits within a bound, instead of
waiting for a generation that would go on for minutes; the generating client gets a 503."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import httpx

from evaltune.server.launch import free_port
from tiny import write_tiny_model

KEY = "tml-shutdown-test"
HUGE = 150_000  # tokens: minutes of decoding for the tiny model, were it not stopped
HANG_S = 60.0  # generous bound: only a hang takes this long

SERVE = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import uvicorn

    from evaltune.engine import Engine
    from evaltune.server import ServerConfig, create_app

    folder, port, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    engine = Engine(folder, device="cpu", dtype="fp32")
    engine.eos_token_ids = []  # only the budget, or a cancel, ends a sample
    config = ServerConfig(
        folder, key, Path(folder) / "ckpt", served_model_name="tiny", max_tokens=10**6,
        drain_s=1.0,
    )
    uvicorn.run(create_app(config, engine), host="127.0.0.1", port=port, log_level="warning")
    """
)


def wait_healthy(base_url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + HANG_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited at start-up"
        try:
            headers = {"X-API-Key": KEY}
            if httpx.get(f"{base_url}/api/v1/healthz", headers=headers, timeout=2).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the server did not come up")


def test_sigterm_during_a_generation_drains_and_exits(tmp_path: Path) -> None:
    folder = write_tiny_model(tmp_path / "tiny-long", context=2 * HUGE)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(folder), str(port), KEY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_healthy(base_url, process)
        answers: list[httpx.Response] = []

        def generate() -> None:
            body = {"model": "tiny", "prompt": "Once upon a time", "max_tokens": HUGE}
            headers = {"Authorization": f"Bearer {KEY}"}
            answers.append(
                httpx.post(f"{base_url}/v1/completions", json=body, headers=headers, timeout=120)
            )

        client = threading.Thread(target=generate)
        client.start()
        time.sleep(2.0)  # let the generation start (not an assertion: SIGTERM must work anyway)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=HANG_S)  # raises on a hang
        client.join(HANG_S)
        assert answers, "the generating client got no answer"
        assert answers[0].status_code == 503, answers[0].text
        assert "shutting down" in answers[0].json()["error"]["message"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    assert "Traceback" not in stderr, stderr
