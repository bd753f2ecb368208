"""API keys travel only in headers (issue 12d): a real ``evaltune serve`` on 127.0.0.1, logging
at uvicorn's most verbose level, refuses a key sent in the URL with a 401 and writes the key to
none of its output."""

from __future__ import annotations

from pathlib import Path

import httpx

from evaltune.server.launch import launch_server


def test_url_keys_are_refused_and_never_logged(tiny_model_dir: Path, tmp_path: Path) -> None:
    with launch_server(
        str(tiny_model_dir), checkpoint_dir=tmp_path, extra_args=("--log-level", "trace")
    ) as server:
        key = server.api_key
        with httpx.Client(base_url=server.base_url, timeout=60) as c:
            header = {"Authorization": f"Bearer {key}"}
            assert c.get("/v1/models", headers=header).status_code == 200
            for url, headers in (
                (f"/v1/models?api_key={key}", {}),
                (f"/v1/models?api_key={key}", header),
                (f"/api/v1/healthz?key={key}", {}),
                (f"/v1/models?x=1&other={key}", {}),
                (f"/v1/models/{key}", {}),
            ):
                response = c.get(url, headers=headers)
                assert response.status_code == 401, (url, response.text)
                assert "header" in response.json()["error"]["message"]
                assert key not in response.text
        log = server.log_path.read_text(errors="replace")
    assert "/v1/models?api_key=***" in log  # the access log ran, and blanked the key
    assert key not in log


def test_serve_flags_set_the_generation_limits(tiny_model_dir: Path, tmp_path: Path) -> None:
    """``--max-tokens`` reaches the server's per-request cap (the other limits travel the same
    way, into ``ServerConfig``)."""
    flags = ("--max-tokens", "8", "--max-pending", "4", "--drain-seconds", "1")
    with (
        launch_server(str(tiny_model_dir), checkpoint_dir=tmp_path, extra_args=flags) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as c,
    ):
        header = {"Authorization": f"Bearer {server.api_key}"}
        model = c.get("/v1/models", headers=header).json()["data"][0]["id"]
        body = {"model": model, "prompt": "hi", "max_tokens": 9}
        response = c.post("/v1/completions", json=body, headers=header)
        assert response.status_code == 400, response.text
        assert "8" in response.json()["error"]["message"]
        body["max_tokens"] = 8
        assert c.post("/v1/completions", json=body, headers=header).status_code == 200
