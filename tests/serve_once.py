"""One ``evaltune serve`` process per base model for a whole test session.

Starting a server costs a Python process and a model load (seconds on the tiny model); tests
that only need *a* server share one, started on first use on a free loopback port and stopped
at interpreter exit. Its API key is put in an environment variable of its own (``key_env``),
which is how ``evaltune.backends.tinker.make_service_client`` reads keys.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from evaltune.bridge import CheckpointStore
from evaltune.server.launch import ServerProcess, launch_server


@dataclass
class SharedServer:
    process: ServerProcess
    checkpoint_dir: Path
    key_env: str

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def api_key(self) -> str:
        return self.process.api_key

    def folder(self, path: str) -> Path:
        """The PEFT folder behind a checkpoint path the server returned."""
        return CheckpointStore(self.checkpoint_dir).folder(path)


_SERVERS: dict[str, SharedServer] = {}


def serve_once(base_model: Path | str, extra_args: tuple[str, ...] = ()) -> SharedServer:
    key = f"{base_model}|{' '.join(extra_args)}"
    server = _SERVERS.get(key)
    if server is not None and server.process.alive():
        return server
    checkpoint_dir = Path(tempfile.mkdtemp(prefix="evaltune-serve-ckpt-"))
    process = launch_server(str(base_model), checkpoint_dir=checkpoint_dir, extra_args=extra_args)
    key_env = f"EVALTUNE_TEST_SERVE_KEY_{len(_SERVERS)}"
    os.environ[key_env] = process.api_key
    server = SharedServer(process, checkpoint_dir, key_env)
    _SERVERS[key] = server

    def stop() -> None:
        process.stop()
        shutil.rmtree(checkpoint_dir, ignore_errors=True)

    atexit.register(stop)
    return server
