"""A reverse proxy on 127.0.0.1 that injects network faults between a client and a real server.

``FaultProxy(upstream, plan)`` forwards every HTTP request to ``upstream`` unchanged, except
those for which ``plan(n, method, path)`` (``n`` counts requests from 1) returns a fault:

- ``"503"``: answer 503 Service Unavailable, without forwarding (the server never sees it);
- ``"reset"``: drop the connection with a TCP reset, without forwarding or answering;
- ``"lost"``: forward it, then drop the connection with a reset instead of answering (the
  server did the work; the client never hears of it);
- any other status (``"401"``, ``"404"`` …): answer that status with an OpenAI-style error body.

Other faults happen before forwarding, so a client that retries repeats no work the server did.
``injected`` lists the faults sent, as ``(n, fault, path)``.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Plan = Callable[[int, str, str], str | None]
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}


class FaultProxy:
    def __init__(self, upstream: str, plan: Plan) -> None:
        self.upstream = upstream.rstrip("/")
        self.plan = plan
        self.injected: list[tuple[int, str, str]] = []
        self._count = 0
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=600)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with proxy._lock:
                    proxy._count += 1
                    n = proxy._count
                fault = proxy.plan(n, self.command, self.path)
                if fault is not None:
                    proxy.injected.append((n, fault, self.path))
                if fault == "lost":
                    proxy._forward(self, body)
                if fault in ("reset", "lost"):
                    linger = struct.pack("ii", 1, 0)  # close with RST, not FIN
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.close_connection = True
                    return
                if fault is not None:
                    status = int(fault)
                    data = json.dumps({"error": {"message": f"injected {status}"}}).encode()
                    self._send(status, {"content-type": "application/json"}, data)
                    return
                response = proxy._forward(self, body)
                kept = {k: v for k, v in response.headers.items() if k.lower() not in HOP}
                self._send(response.status_code, kept, response.content)

            def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> httpx.Response:
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP}
        return self._client.request(
            handler.command, self.upstream + handler.path, headers=headers, content=body
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
