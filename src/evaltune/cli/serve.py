"""``evaltune serve``: run the local engine behind the Tinker protocol and an OpenAI API.

Imports nothing heavy at module level (the CLI imports this to register the command); the
engine, FastAPI and uvicorn load only when the command runs.
"""

from __future__ import annotations

import functools
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from evaltune.cli.console import console, guarded, out
from evaltune.errors import ConfigError

__all__ = ["serve"]

KEY_ENV = "EVALTUNE_SERVE_API_KEY"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _api_key(given: str | None) -> tuple[str, str]:
    """The key and where it came from; a new random one when none is given."""
    if given:
        source = f"from {KEY_ENV}" if given == os.environ.get(KEY_ENV) else "from --api-key"
        if not given.startswith("tml-"):
            raise ConfigError(
                f"the API key ({source}) must start with 'tml-': the tinker SDK refuses any "
                "other key; e.g. tml-my-secret"
            )
        return given, source
    return f"tml-evaltune-{secrets.token_urlsafe(24)}", "generated"


def serve(
    base_model: Annotated[
        str, typer.Option(help="Model to serve: built-in alias, local HF folder or hub id.")
    ] = "gemma-3-270m",
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(envvar=KEY_ENV, help=f"Key clients must send (tml-...); or set {KEY_ENV}."),
    ] = None,
    checkpoint_dir: Annotated[
        Path | None,
        typer.Option(help="Where tinker:// checkpoints live (default: the local backend's)."),
    ] = None,
    served_model_name: Annotated[
        str | None, typer.Option(help="Extra name for the base model on the OpenAI routes.")
    ] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N (default: auto).")] = None,
    dtype: Annotated[str | None, typer.Option(help="fp32 or bf16 (default: auto).")] = None,
    max_body_mb: Annotated[
        int, typer.Option(min=1, help="Largest request body accepted, in MiB.")
    ] = 64,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            min=1, help="Most tokens one request may generate (default: 1024 on CPU, 4096 on GPU)."
        ),
    ] = None,
    max_pending: Annotated[
        int,
        typer.Option(min=1, help="Generations queued or running before new ones get a 429."),
    ] = 256,
    drain_seconds: Annotated[
        float,
        typer.Option(min=0, help="After SIGTERM/Ctrl-C: how long running generations may finish."),
    ] = 10.0,
    jobs_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where OpenAI fine-tuning files and jobs are kept (default: beside the local "
            "backend's checkpoints); unfinished jobs there resume at start."
        ),
    ] = None,
    runs: Annotated[
        Path | None,
        typer.Option(
            help="A workspace whose finished runs are served too: each run's best round as "
            "<run-id>, every round as <run-id>/round-<k>."
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "warning",
) -> None:
    """Serve a model over the Tinker protocol (SDK, cookbook) and OpenAI-compatible /v1 routes."""

    def go() -> None:
        import uvicorn

        from evaltune.backends.local import default_checkpoint_dir
        from evaltune.cli.finetune import LoopJobRunner
        from evaltune.server import ServerConfig, create_app

        key, source = _api_key(api_key)
        folder = checkpoint_dir or default_checkpoint_dir()
        jobs = jobs_dir or default_checkpoint_dir().parent / "jobs"
        # Fine-tuning jobs run the loop in this process: the same device and dtype find the
        # engine already loaded instead of loading the model a second time.
        for name, value in (("EVALTUNE_DEVICE", device), ("EVALTUNE_DTYPE", dtype)):
            if value:
                os.environ[name] = value
        named = None
        if runs is not None:
            from evaltune.export import run_adapters

            if not (runs / "runs").is_dir():
                raise ConfigError(
                    f"--runs {runs}: no runs/ folder in it; give the workspace that holds "
                    "runs/<run-id> folders (where evaltune run was started, or output.workspace)"
                )
            named = functools.partial(run_adapters, runs)
        config = ServerConfig(
            base_model=base_model,
            api_key=key,
            checkpoint_dir=folder,
            served_model_name=served_model_name,
            max_body_bytes=max_body_mb * 1024 * 1024,
            device=device,
            dtype=dtype,
            max_tokens=max_tokens,
            max_pending=max_pending,
            drain_s=drain_seconds,
            named_adapters=named,
            jobs_dir=jobs,
            job_runner=LoopJobRunner(),
        )
        console.print(f"loading {base_model} …")
        app = create_app(config)
        engine = app.state.evaltune.engine
        url = f"http://{host}:{port}"
        out.print(f"evaltune serve: {base_model} on {url} ({engine.device}, {engine.dtype})")
        out.print(f"  checkpoints: {folder}")
        out.print(f"  fine-tuning files and jobs: {jobs}")
        if named is not None:
            out.print(f"  runs: {runs / 'runs'} ({len(named())} adapters now; new runs join)")
        if source == "generated":
            out.print(f"  API key (generated; set {KEY_ENV} to choose one): {key}")
        else:
            out.print(f"  API key: {source}")
        out.print(f"  Tinker SDK: TINKER_BASE_URL={url} TINKER_API_KEY=<key>")
        out.print(f"  OpenAI:     base_url={url}/v1 api_key=<key>")
        if host not in LOOPBACK:
            console.print(
                Text.assemble(
                    ("warning", "yellow"),
                    f": listening on {host}, reachable from other machines; the API key is the "
                    "only protection and traffic is not encrypted (no TLS)",
                )
            )
        uvicorn.run(app, host=host, port=port, log_level=log_level)

    guarded(go)
