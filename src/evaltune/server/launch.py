"""Start ``evaltune serve`` as a child process on a free loopback port, and stop it.

For tests, examples and notebooks that need a real server (a real port, a real process
boundary) without a second terminal::

    with launch_server("gemma-3-270m", checkpoint_dir=tmp) as server:
        client = tinker.ServiceClient(base_url=server.base_url, api_key=server.api_key)

The child's output goes to a log file (``server.log_path``), quoted in the error if it fails
to come up and removed when the server is stopped.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from evaltune.errors import EvaltuneError

__all__ = ["ServerProcess", "free_port", "launch_server"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    api_key: str
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its log file."""
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self.log_path.unlink(missing_ok=True)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _healthy(base_url: str, api_key: str) -> bool:
    request = urllib.request.Request(
        f"{base_url}/api/v1/healthz", headers={"Authorization": f"Bearer {api_key}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def launch_server(
    base_model: str,
    *,
    checkpoint_dir: Path,
    api_key: str | None = None,
    port: int | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 300.0,
) -> ServerProcess:
    """Start ``evaltune serve`` on 127.0.0.1 and wait until it answers (the model is loaded)."""
    api_key = api_key or f"tml-evaltune-{secrets.token_urlsafe(16)}"
    port = port or free_port()
    log = Path(tempfile.mkstemp(prefix="evaltune-serve-", suffix=".log")[1])
    command = [
        sys.executable, "-c", "from evaltune.cli import app; app()", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--base-model", base_model,
        "--checkpoint-dir", str(checkpoint_dir), *extra_args,
    ]  # fmt: skip
    child_env = {**os.environ, **(env or {}), "EVALTUNE_SERVE_API_KEY": api_key}
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=child_env)
    server = ServerProcess(process, f"http://127.0.0.1:{port}", api_key, log)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if not server.alive():
            tail = server.log_tail()
            server.stop()
            raise EvaltuneError(f"evaltune serve exited at start-up:\n{tail}")
        if _healthy(server.base_url, api_key):
            return server
        time.sleep(0.25)
    tail = server.log_tail()
    server.stop()
    raise EvaltuneError(f"evaltune serve did not answer within {startup_timeout:.0f}s:\n{tail}")
