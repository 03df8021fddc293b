"""``vm_fetch``: an HTTP request to a server listening inside a VM, from the host.

The VM's loopback exists only in its network namespace, so the socket is opened on the VM's host
thread (which is in that namespace) and the request then runs over it with ``http.client`` on a
worker thread. Everything that comes back is the VM's and is treated as hostile: bounded in size
and time, and any malformed answer is a typed error.

Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import urllib.parse

from actorq.agent_os.host import VMHost
from actorq.errors import ActorError, BadRequest, MessageTooLarge, NotFound, Unavailable
from actorq.vm_types import FetchResult

MAX_BODY = 64 * 1024 * 1024
TIMEOUT = 60.0
_LOCAL = ("127.0.0.1", "localhost")  # the address vm_fetch connects to, and its name


def _target(port: int, url: str) -> tuple[int, str]:
    """The port and request path of ``vm_fetch(port, url)``: ``url`` is a path, or a full URL
    naming the VM's own loopback (``127.0.0.1`` or ``localhost``) and ``port`` itself."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise BadRequest("port must be 1..65535")
    if not isinstance(url, str) or not url:
        raise BadRequest("url is a path ('/health') or a full http://127.0.0.1:PORT/... URL")
    if url.startswith("/") and not url.startswith("//"):
        path = url
    else:
        # ``//host/...`` would be a path to the VM's server but reads as a URL: refused as unclear
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in _LOCAL or "@" in parts.netloc:
            raise BadRequest("vm_fetch reaches the VM's own loopback only: http://127.0.0.1:PORT/...")
        try:
            url_port = parts.port if parts.port is not None else 80
        except ValueError:
            raise BadRequest("the URL's port is not a number") from None
        if url_port != port:
            raise BadRequest(f"the URL names port {url_port} but port is {port}")
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    if any(ch in path for ch in " \r\n\0"):
        raise BadRequest("the URL path has spaces or control characters; percent-encode them")
    return port, path


def _connect(port: int) -> socket.socket:
    """On the VM's host thread: a TCP connection to its loopback."""
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=10.0)
    except OSError as exc:
        raise NotFound(f"nothing answered on port {port} in the VM: {exc.strerror or exc}") from None


def _exchange(
    sock: socket.socket, port: int, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> FetchResult:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.sock = sock
    sock.settimeout(TIMEOUT)
    try:
        try:
            conn.request(method, path, body=body, headers=headers)
        except (ValueError, http.client.InvalidURL) as exc:
            raise BadRequest(f"vm_fetch request refused: {exc}") from None
        resp = conn.getresponse()
        data = resp.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise MessageTooLarge(f"the VM's answer is larger than {MAX_BODY} bytes")
        out: dict[str, str] = {}
        for k, v in resp.getheaders():
            out[k] = f"{out[k]}, {v}" if k in out else v
        return FetchResult(resp.status, out, data)
    except TimeoutError:
        raise Unavailable(f"the server on port {port} in the VM did not answer within {TIMEOUT:g}s") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise ActorError(
            f"the server on port {port} in the VM sent no valid HTTP answer ({exc!r})"[:300]
        ) from None
    finally:
        conn.close()


async def vm_fetch(
    host: VMHost,
    port: int,
    url: str = "/",
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
) -> FetchResult:
    port, path = _target(port, url)
    if not isinstance(method, str) or not method.isascii() or not method.isalpha():
        raise BadRequest("method is an HTTP method name such as GET or POST")
    if headers is not None and not (
        isinstance(headers, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise BadRequest("headers is an object of string values")
    if body is not None and not isinstance(body, str | bytes):
        raise BadRequest("body is a string or bytes")
    try:
        raw = body.encode() if isinstance(body, str) else body
    except UnicodeEncodeError:
        raise BadRequest("body text must be valid Unicode (no lone surrogates)") from None
    sock = await host.call(_connect, port)
    return await asyncio.to_thread(_exchange, sock, port, method.upper(), path, dict(headers or {}), raw)
