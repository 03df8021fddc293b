"""The ``actorq`` command line (typer + rich): serve a registry, and inspect or poke a server.

Owns argument parsing and table rendering only: ``serve`` hands off to ``actorq.server``, every
other command is a thin shell over the sync client. Must not reach into the runtime or storage.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from actorq._version import __version__
from actorq.app import App
from actorq.client import SyncActorHandle, SyncClient, create_sync_client
from actorq.errors import ActorqError
from actorq.results import SendResult

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


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"actorq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    url: GlobalUrl = DEFAULT_URL,
    token: GlobalToken = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
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
        fail(exc)
    finally:
        client.close()


def fail(exc: ActorqError) -> NoReturn:
    """A typed error as a red line (and its details), then exit 2 for a 4xx, 1 otherwise."""
    # Text, not markup: a server message may hold brackets that rich would take for tags
    line = Text.assemble((exc.code, "bold red"), (f" ({exc.status}): {exc.message}", "red"))
    _console(stderr=True).print(line, highlight=False)
    if exc.details:
        _console(stderr=True).print(
            json.dumps(exc.details, indent=2, default=str), style="red", markup=False, highlight=False
        )
    raise typer.Exit(2 if 400 <= exc.status < 500 else 1) from None


def handle(client: SyncClient, actor: str, key: str) -> SyncActorHandle:
    return client.actor(actor).get(parse_key(key))


def _plain(value: Any) -> Any:
    # an agent VM's typed result (ExecResult, Session...) prints as its fields, not its repr
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def print_json(value: Any) -> None:
    _console().print_json(json.dumps(value, default=_plain))


def result_json(r: SendResult) -> dict[str, Any]:
    """A waited send and a look-up print the same fields (``attempt``: deliveries so far)."""
    return {"id": r.id, "status": r.status, "response": r.response, "error": r.error, "attempt": r.attempt}


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
    try:
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
    except ActorqError as exc:  # the port or the data directory is taken: one line, no traceback
        _console(stderr=True).print(
            Text(f"actorq serve: {exc.message}", style="red"), highlight=False, soft_wrap=True
        )
        raise typer.Exit(1) from None


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
            # progress on stderr only (and only on a terminal): stdout stays the JSON result
            limit = f", up to {timeout:g} s" if timeout is not None else ""
            waiting = Text(f"waiting for the {queue!r} message of {actor} {key}{limit}")  # text, not markup
            with _console(stderr=True).status(waiting):
                r = h.send(
                    queue, value, wait=True, timeout=timeout, delay=delay, idempotency_key=idempotency_key
                )
            print_json(result_json(r))
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
    args: Annotated[list[str] | None, typer.Argument(help="positional arguments, each as JSON")] = None,
    kw: Annotated[
        list[str] | None,
        typer.Option("--kw", help="a keyword argument NAME=JSON (repeatable): --kw limit=5"),
    ] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Call an action and print its JSON result."""
    values = [parse_json(a, f"argument {i}") for i, a in enumerate(args or [])]
    kwargs = parse_kwargs(kw or [])
    with session(ctx, url, token) as client:
        print_json(client.actor(actor).get_or_create(parse_key(key)).action(action, *values, **kwargs))


def parse_kwargs(items: list[str]) -> dict[str, Any]:
    """``--kw name=JSON`` options as keyword arguments; a name given twice is an error."""
    out: dict[str, Any] = {}
    for item in items:
        name, eq, text = item.partition("=")
        if not eq or not name.isidentifier():
            raise typer.BadParameter(f"--kw {item!r}: expected NAME=JSON, e.g. --kw limit=5")
        if name in out:
            raise typer.BadParameter(f"--kw {name} given twice")
        out[name] = parse_json(text, f"--kw {name}")
    return out


@app.command()
def watch(
    ctx: typer.Context,
    actor: ActorName,
    key: Key,
    count: Annotated[int | None, typer.Option(help="stop after this many events", min=1)] = None,
    url: Url = None,
    token: Token = None,
) -> None:
    """Stream an actor's events (its broadcasts), one JSON object per line, until Ctrl-C."""
    import asyncio

    where = where_to(ctx, url, token)
    try:
        asyncio.run(_watch(where, actor, parse_key(key), count))
    except ActorqError as exc:
        fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


async def _watch(where: Target, actor: str, key: list[str], count: int | None) -> None:
    from actorq.client import create_client

    async with create_client(where.url, where.token, retry_for=5.0) as client:
        h = client.actor(actor).get(key)
        async with await h.connect() as conn:
            _console(stderr=True).print(
                Text(f"watching {actor} {json.dumps(key)} ({conn.actor_id}); Ctrl-C to stop", style="dim"),
                highlight=False,
                soft_wrap=True,
            )
            seen = 0
            async for event in conn:
                # one line per event, flushed: `actorq watch ... | jq` sees each as it comes
                line = {"name": event.name, "data": event.data, **event.extra}
                sys.stdout.write(json.dumps(line, default=str) + "\n")
                sys.stdout.flush()
                seen += 1
                if count is not None and seen >= count:
                    return


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
    print_json(result_json(r))
    if wait:
        exit_unless_completed(r.status)


software_app = typer.Typer(help="Software for agent VMs (npm packages cached once, mounted read-only).")
app.add_typer(software_app, name="software")


@software_app.command("install")
def software_install(
    names: Annotated[list[str] | None, typer.Argument(help="packages to install (default: pi)")] = None,
) -> None:
    """Install agent VM software into the cache ($ACTORQ_SOFTWARE or ~/.cache/actorq/software)."""
    from actorq._extras import MissingDependency

    try:
        from actorq.agent_os.software import BUILTIN, install
    except MissingDependency as exc:  # agent VMs are the `agents` extra
        _console(stderr=True).print(Text(str(exc), style="red"), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None

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
