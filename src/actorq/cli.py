"""The ``actorq`` command line (typer + rich): serve a registry, and inspect or poke a server.

Owns argument parsing and table rendering only: ``serve`` hands off to ``actorq.server``, every
other command is a thin shell over the sync client. Must not reach into the runtime or storage.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Annotated

import typer

from actorq.core.registry import Registry

app = typer.Typer(help="actorq: durable actors with queues.", no_args_is_help=True, add_completion=False)


@app.callback()
def _root() -> None:
    """actorq: durable actors with queues."""


def load_registry(target: str) -> Registry:
    """Import ``module:attribute`` (attribute defaults to ``registry``)."""
    module_name, _, attr = target.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    obj = getattr(module, attr or "registry", None)
    if not isinstance(obj, Registry):
        raise typer.BadParameter(f"{target!r} is not an actorq registry (setup(use=...))")
    return obj


@app.command()
def serve(
    target: Annotated[str, typer.Argument(help="module:registry to serve, e.g. examples.reviewer:registry")],
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 6420,
    storage: Annotated[str | None, typer.Option(help="data directory or postgresql:// URL")] = None,
    token: Annotated[
        str | None, typer.Option(envvar="ACTORQ_TOKEN", help="require this bearer token")
    ] = None,
    grace: Annotated[float, typer.Option(help="seconds a running handler may finish on shutdown")] = 10.0,
    log_level: Annotated[str, typer.Option(help="uvicorn/actorq log level")] = "info",
) -> None:
    """Serve a registry over HTTP and WebSocket until SIGINT/SIGTERM."""
    import logging

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    registry = load_registry(target)
    registry.start(host=host, port=port, storage=storage, token=token, grace=grace, log_level=log_level)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
