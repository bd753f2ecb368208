"""``evaltune serve``: the local engine behind Tinker's wire protocol and an OpenAI-compatible API.

The unmodified ``tinker`` SDK (and so tinker-cookbook recipes and ``backend: tinker``) trains
and samples through the Tinker routes under ``/api/v1``; any OpenAI client queries the base
model or a saved adapter through ``/v1``. Both share one engine, one checkpoint folder and one
API key. This package sits on ``evaltune.bridge`` (the Tinker ↔ engine conversions and the
checkpoint store, shared with the local backend) and the engine, never on backends, loop or
CLI; it keeps sessions, routes and the wire encoding. See docs/serving.md.
"""

from evaltune.server.asgi import create_app
from evaltune.server.launch import ServerProcess, launch_server
from evaltune.server.state import ServerConfig

__all__ = ["ServerConfig", "ServerProcess", "create_app", "launch_server"]
