"""The ``actorq`` command line (typer + rich): serve a registry, and inspect or poke a server.

Owns argument parsing and table rendering only: ``serve`` hands off to ``actorq.server``, every
other command is a thin shell over the sync client. Must not reach into the runtime or storage.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from actorq.app import App
from actorq.client import SyncActorHandle, SyncClient, create_sync_client
from actorq.errors import ActorqError

app = typer.Typer(help="actorq: durable actors with queues.", no_args_is_help=True, add_completion=False)


def _console(stderr: bool = False) -> Console:
    # built per use, not at import, so COLUMNS and redirections seen at run time apply
    return Console(stderr=stderr)


DEFAULT_URL = "http://127.0.0.1:6420"
# Global options (before the command) read the environment; the same options after a command
# override them for that command only, so both `actorq --url U queue ...` and `actorq queue ... --url U` work.
GlobalUrl = Annotated[str, typer.Option("--url", envvar="ACTORQ_URL", help="server URL")]
GlobalToken = Annotated[
    str | None,
    typer.Option("--token", envvar="ACTORQ_TOKEN", help="bearer token (the server's ACTORQ_TOKEN)"),
]
Url = Annotated[str | None, typer.Option("--url", help="server URL (default: the global --url, $ACTORQ_URL)")]
Token = Annotated[
    str | None, typer.Option("--token", help="bearer token (default: the global --token, $ACTORQ_TOKEN)")
]
Key = Annotated[str, typer.Argument(help='actor key: main, a,b or a JSON list \'["a", "b"]\'')]
ActorName = Annotated[str, typer.Argument(help="actor type, as named in setup(use=...)")]


@dataclass(frozen=True)
class Target:
    url: str
    token: str | None


@app.callback()
def _root(ctx: typer.Context, url: GlobalUrl = DEFAULT_URL, token: GlobalToken = None) -> None:
    """actorq: durable actors with queues."""
    ctx.obj = Target(url, token)


def where_to(ctx: typer.Context, url: str | None, token: str | None) -> Target:
    root = ctx.find_object(Target) or Target(DEFAULT_URL, None)
    return Target(url or root.url, token or root.token)


def load_registry(target: str) -> App:
    """Import ``module:attribute`` (attribute defaults to ``registry``)."""
    module_name, _, attr = target.partition(":")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise typer.BadParameter(f"cannot import {module_name!r}: {exc}") from exc
    obj = getattr(module, attr or "registry", None)
    if not isinstance(obj, App):
        raise typer.BadParameter(f"{target!r} is not an actorq registry (setup(use=...))")
    return obj


def parse_key(key: str) -> list[str]:
    """``main`` or ``a,b`` or a JSON list ``["a", "b"]``."""
    if key.startswith("["):
        value = parse_json(key, "key")
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            raise typer.BadParameter("a JSON key must be a list of strings")
        return value
    return key.split(",")


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{what} is not valid JSON: {exc}") from exc


@contextmanager
def session(ctx: typer.Context, url: str | None, token: str | None) -> Iterator[SyncClient]:
    """A client whose typed errors become a red line and an exit code (2 for 4xx, 1 otherwise)."""
    where = where_to(ctx, url, token)
    client = create_sync_client(where.url, where.token, retry_for=5.0)
    try:
        yield client
    except ActorqError as exc:
        # Text, not markup: a server message may hold brackets that rich would take for tags
        line = Text.assemble((exc.code, "bold red"), (f" ({exc.status}): {exc.message}", "red"))
        _console(stderr=True).print(line, highlight=False)
        if exc.details:
            _console(stderr=True).print(
                json.dumps(exc.details, indent=2, default=str), style="red", markup=False, highlight=False
            )
        raise typer.Exit(2 if 400 <= exc.status < 500 else 1) from None
    finally:
        client.close()


def handle(client: SyncClient, actor: str, key: str) -> SyncActorHandle:
    return client.actor(actor).get(parse_key(key))


def print_json(value: Any) -> None:
    _console().print_json(json.dumps(value, default=str))


def exit_unless_completed(status: str) -> None:
    """After a wait, a script must be able to tell "done" from "failed" or "not yet" by the exit code."""
    if status != "completed":
        _console(stderr=True).print(f"[red]message {status}[/]")
        raise typer.Exit(1)


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


@app.command()
def serve(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="module:registry to serve, e.g. examples.reviewer:registry")],
    host: Annotated[str, typer.Option(help="interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 6420,
    storage: Annotated[str | None, typer.Option(help="data directory or postgresql:// URL")] = None,
    token: Token = None,
    grace: Annotated[float, typer.Option(help="seconds a running handler may finish on shutdown")] = 10.0,
    log_level: Annotated[str, typer.Option(help="uvicorn/actorq log level")] = "info",
    access_log: Annotated[
        bool, typer.Option(help="log every HTTP request (a token in a query string is redacted)")
    ] = False,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            help="also answer requests addressed to this host name (repeatable; '*': any)",
        ),
    ] = None,
) -> None:
    """Serve a registry over HTTP and WebSocket until SIGINT/SIGTERM."""
    from actorq.server.app import resolve_token
    from actorq.server.logs import configure_logging

    # --token after `serve`, else before it, else $ACTORQ_TOKEN read here: click treats an empty
    # variable as unset, and an empty token must refuse to start rather than turn auth off
    root = ctx.find_object(Target)
    chosen = token if token is not None else root.token if root is not None else None
    try:
        chosen = resolve_token(chosen)
    except ValueError as exc:
        _console(stderr=True).print(Text(f"actorq serve: {exc}", style="red"), highlight=False)
        raise typer.Exit(2) from None
    try:
        configure_logging(log_level)
    except ValueError as exc:
        _console(stderr=True).print(Text(f"actorq serve: {exc}", style="red"), highlight=False)
        raise typer.Exit(2) from None
    registry = load_registry(target)
    registry.start(
        host=host,
        port=port,
        storage=storage,
        token=chosen,
        grace=grace,
        log_level=log_level,
        access_log=access_log,
        allowed_hosts=allowed_host or None,
    )


@app.command()
def send(
    ctx: typer.Context,
    actor: ActorName,
    key: Key,
    queue: Annotated[str, typer.Argument(help="queue name")],
    body: Annotated[str, typer.Argument(help="message body as JSON")],
    wait: Annotated[bool, typer.Option(help="wait for the message to be completed")] = False,
    timeout: Annotated[float | None, typer.Option(help="seconds to wait")] = None,
    delay: Annotated[float | None, typer.Option(help="deliver no earlier than this many seconds")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="same key, same message")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Send a message (creating the actor if needed); print its id, or its result with --wait."""
    value = parse_json(body, "body")
    with session(ctx, url, token) as client:
        h = client.actor(actor).get_or_create(parse_key(key))
        if wait:
            r = h.send(queue, value, wait=True, timeout=timeout, delay=delay, idempotency_key=idempotency_key)
            print_json({"id": r.id, "status": r.status, "response": r.response, "error": r.error})
            exit_unless_completed(r.status)
            return
        receipt = h.send(queue, value, delay=delay, idempotency_key=idempotency_key)
        print_json({"id": receipt.id, "actor_id": receipt.actor_id, "duplicate": receipt.duplicate})


@app.command()
def call(
    ctx: typer.Context,
    actor: ActorName,
    key: Key,
    action: Annotated[str, typer.Argument(help="action name")],
    args: Annotated[list[str] | None, typer.Argument(help="arguments, each as JSON")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Call an action and print its JSON result."""
    values = [parse_json(a, f"argument {i}") for i, a in enumerate(args or [])]
    with session(ctx, url, token) as client:
        print_json(client.actor(actor).get_or_create(parse_key(key)).action(action, *values))


@app.command()
def actors(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="only this actor type")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    url: Url = None,
    token: Token = None,
) -> None:
    """List actors."""
    with session(ctx, url, token) as client:
        rows = client.list_actors(name, limit=limit)
    table = Table("actor id", "type", "key", title=f"{len(rows)} actor(s)")
    for a in rows:
        table.add_row(a.actor_id, a.name, json.dumps(a.key))
    _console().print(table)


@app.command("queue")
def queue_cmd(
    ctx: typer.Context,
    actor: ActorName,
    key: Key,
    url: Url = None,
    token: Token = None,
) -> None:
    """Queue depths of one actor, its in-flight and next pending messages, and its dead letters."""
    with session(ctx, url, token) as client:
        h = handle(client, actor, key)
        depths = h.queues()
        letters = h.dead_letters()
        waiting = [("in flight", m) for m in h.messages("in_flight", 20)]
        waiting += [("pending", m) for m in h.messages("pending", 20)]
    table = Table(
        "queue",
        "pending",
        "delayed",
        "in flight",
        "completed",
        "dead",
        "max size",
        title=f"{actor} {json.dumps(parse_key(key))} ({h.actor_id})",
    )
    for q in depths:
        table.add_row(
            q.queue, *(str(v) for v in (q.pending, q.delayed, q.in_flight, q.completed, q.dead, q.max_size))
        )
    _console().print(table)
    if waiting:
        pt = Table("id", "queue", "status", "attempt", "created", "available", title="messages (first 20)")
        for status, m in waiting[:20]:
            pt.add_row(
                str(m["id"]),
                m["queue"],
                status,
                str(m["attempt"]),
                when(m["created_at"]),
                when(m["available_at"]),
            )
        _console().print(pt)
    if letters:
        dt = Table("id", "queue", "attempts", "failed at", "error", "body", title="dead letters")
        for d in letters:
            dt.add_row(
                str(d.id), d.queue, str(d.attempt), when(d.failed_at), d.error or "", json.dumps(d.body)[:60]
            )
        _console().print(dt)


@app.command("dead-letters")
def dead_letters(
    ctx: typer.Context,
    actor: ActorName,
    key: Key,
    retry: Annotated[int | None, typer.Option(help="put this dead letter back in its queue")] = None,
    delete: Annotated[int | None, typer.Option(help="delete this dead letter")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """List dead letters, or retry / delete one."""
    with session(ctx, url, token) as client:
        h = handle(client, actor, key)
        action: Callable[[int], None] | None = None
        if retry is not None:
            action, target, verb = h.retry_dead_letter, retry, "retried"
        elif delete is not None:
            action, target, verb = h.delete_dead_letter, delete, "deleted"
        if action is not None:
            action(target)
            _console().print(f"dead letter {target} {verb}")
            return
        letters = h.dead_letters()
    table = Table(
        "id", "queue", "attempts", "failed at", "error", "body", title=f"{len(letters)} dead letter(s)"
    )
    for d in letters:
        table.add_row(
            str(d.id), d.queue, str(d.attempt), when(d.failed_at), d.error or "", json.dumps(d.body)[:80]
        )
    _console().print(table)


@app.command()
def result(
    ctx: typer.Context,
    actor: ActorName,
    key: Key,
    message_id: Annotated[int, typer.Argument(help="message id")],
    wait: Annotated[bool, typer.Option(help="wait until it is completed or failed")] = False,
    timeout: Annotated[float | None, typer.Option(help="seconds to wait")] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Look up a message's status and response by id."""
    with session(ctx, url, token) as client:
        r = handle(client, actor, key).result(message_id, wait=wait, timeout=timeout)
    print_json(
        {"id": r.id, "status": r.status, "response": r.response, "error": r.error, "attempt": r.attempt}
    )
    if wait:
        exit_unless_completed(r.status)


software_app = typer.Typer(help="Software for agent VMs (npm packages cached once, mounted read-only).")
app.add_typer(software_app, name="software")


@software_app.command("install")
def software_install(
    names: Annotated[list[str] | None, typer.Argument(help="packages to install (default: pi)")] = None,
) -> None:
    """Install agent VM software into the cache ($ACTORQ_SOFTWARE or ~/.cache/actorq/software)."""
    from actorq.agent_os.software import BUILTIN, install

    wanted = names or ["pi"]
    for n in wanted:
        sw = BUILTIN.get(n)
        if sw is None:
            _console().print(f"[red]unknown software {n!r}[/red]; known: {', '.join(sorted(BUILTIN))}")
            raise typer.Exit(2)
        if sw.installed():
            _console().print(f"{n}: already installed at {sw.install_dir}")
            continue
        _console().print(f"{n}: installing {sw.npm[0] if sw.npm else n} ...")
        install([n])
        _console().print(f"{n}: installed at {sw.install_dir}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
