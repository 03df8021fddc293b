"""The web inspector's static files under ``/ui/`` (HTML, ES modules, CSS; docs/inspector.md).

The files are open without the token: they hold no data. The page asks for the token, keeps it in
``sessionStorage`` and sends it on every API call, as any client does; everything it shows comes
from the documented API. Every answer carries a Content-Security-Policy that allows only this
server's own scripts, styles and connections, and no framing (a page of another site cannot put
the inspector's buttons under the user's mouse).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "/ui"
STATIC_DIR = Path(__file__).parent / "static" / "ui"

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),
)


class _Static:
    """StaticFiles for GET/HEAD over HTTP, with the headers above on every answer."""

    def __init__(self) -> None:
        self.files: ASGIApp = StaticFiles(directory=STATIC_DIR, html=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # a WebSocket under /ui/: nothing to serve
            await send({"type": "websocket.close", "code": 4404})
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, v) for k, v in message.get("headers", []) if k not in dict(HEADERS)
                ] + list(HEADERS)
            await send(message)

        await self.files(scope, receive, with_headers)


async def _to_index(request: Request) -> Response:
    root: str = request.scope.get("root_path", "")  # mounted in another app: under its prefix
    return RedirectResponse(root + PREFIX + "/", status_code=308)


def routes() -> list[BaseRoute]:
    """``/ui/...``: the inspector's files; ``/ui`` redirects to ``/ui/``."""
    return [Route(PREFIX, _to_index, methods=["GET", "HEAD"]), Mount(PREFIX, app=_Static(), name="inspector")]


def is_static(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


__all__ = ["PREFIX", "STATIC_DIR", "is_static", "routes"]
