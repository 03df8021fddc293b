"""Signed preview URLs: a VM port served through the actorq server to a browser without the API token.

A preview is a row in the VM's persisted state (``state["previews"]``: id -> port and expiry) plus a
token that names it, signed with a secret of that VM (``state["preview_secret"]``, random, made
on the first preview). The token is ``<actor id, base64url>.<preview id>.<expiry>.<HMAC-SHA256>``
(the signature covers actor id, preview id and expiry): the server reads the actor id from it to
know which actor to ask (and nothing else); the VM then admits the request only if the signature is
its own, the token is the one in its state (expiring a preview deletes the row) and the expiry has
not passed. Everything else is ``Forbidden``, with one
message whatever the reason, and nothing is sent into the VM.

A request admitted goes to ``127.0.0.1:<port>`` inside the VM's network namespace (as ``vm_fetch``
does), and only there: the port comes from the VM's own state, never from the request. The path is
passed as it came (still percent-encoded), hop-by-hop headers and ``Host`` are replaced.

Must not import the core or storage.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import http.client
import secrets
import socket
import time
from collections.abc import Mapping
from typing import Any

from actorq.agent_os.host import VMHost
from actorq.errors import BadGateway, BadRequest, Forbidden, MessageTooLarge, ResourceLimit
from actorq.vm_types import FetchResult, PreviewUrl

PREFIX = "/v1/preview/"  # the server's open route (server/app.py mounts it)
MIN_TTL = 1.0
MAX_TTL = 7 * 24 * 3600.0
MAX_PREVIEWS = 256  # live previews per VM
MAX_BODY = 32 * 1024 * 1024  # bytes of an answer passed back through a preview
TIMEOUT = 60.0
# not forwarded either way: they describe one hop, or would let the caller speak for the server
_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "authorization",  # the actorq API token, if a client sent one, is not the VM's business
    }
)
_DENIED = "this preview URL is not valid (forged, expired or revoked)"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sign(secret: str, actor_id: str, pid: str, expires: int) -> str:
    mac = hmac.new(bytes.fromhex(secret), f"{actor_id}\n{pid}\n{expires}".encode(), hashlib.sha256)
    return _b64(mac.digest())


def _prune(previews: dict[str, Any], now: float) -> None:
    for pid in [p for p, row in previews.items() if row["expires_at"] <= now]:
        del previews[pid]


def _public(pid: str, row: Mapping[str, Any]) -> PreviewUrl:
    return PreviewUrl(id=pid, url=f"{PREFIX}{row['token']}/", port=row["port"], expires_at=row["expires_at"])


def create(state: dict[str, Any], actor_id: str, head: str, port: Any, ttl: Any) -> PreviewUrl:
    """Record a preview of ``port`` for ``ttl`` seconds in ``state`` (the caller saves it);
    ``head`` is how tokens of this actor start (the core's rule: the server reads it)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise BadRequest("port must be 1..65535")
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not MIN_TTL <= ttl <= MAX_TTL:
        raise BadRequest(f"ttl is {MIN_TTL:g} to {MAX_TTL:g} seconds")
    now = time.time()
    previews: dict[str, Any] = state.setdefault("previews", {})
    _prune(previews, now)
    if len(previews) >= MAX_PREVIEWS:
        raise ResourceLimit(f"this VM has {MAX_PREVIEWS} live previews; expire some first")
    secret = state.setdefault("preview_secret", secrets.token_hex(32))
    pid = "prv_" + secrets.token_hex(12)
    expires = int(now + ttl + 0.999)
    token = f"{head}.{pid}.{expires}.{_sign(secret, actor_id, pid, expires)}"
    previews[pid] = {"port": port, "expires_at": float(expires), "token": token}
    return _public(pid, previews[pid])


def listed(state: Mapping[str, Any]) -> list[PreviewUrl]:
    now = time.time()
    return [_public(p, row) for p, row in state.get("previews", {}).items() if row["expires_at"] > now]


def expire(state: dict[str, Any], url_or_id: Any) -> bool:
    """Forget a preview (by id, token or URL); False if there was none. The caller saves."""
    if not isinstance(url_or_id, str) or not url_or_id:
        raise BadRequest("expire_signed_preview_url takes a preview's id or URL")
    previews: dict[str, Any] = state.get("previews", {})
    text = url_or_id
    if PREFIX in text:  # a URL or path: its token is the segment after the prefix
        text = text.split(PREFIX, 1)[1].split("/", 1)[0]
    pid = text.split(".")[1] if text.count(".") == 3 else text
    return previews.pop(pid, None) is not None


def admit(state: Mapping[str, Any], actor_id: str, token: Any) -> int:
    """The port a token opens, or Forbidden: signed by this VM, for this actor, live and unexpired."""
    secret = state.get("preview_secret")
    parts = token.split(".") if isinstance(token, str) else []
    # ASCII digits, short: str.isdigit() also admits what int() refuses ("²", 5,000 digits)
    if (
        secret is None
        or len(parts) != 4
        or not (parts[2].isascii() and parts[2].isdigit())
        or len(parts[2]) > 20
    ):
        raise Forbidden(_DENIED)
    _, pid, expires, sig = parts
    want = _sign(secret, actor_id, pid, int(expires))
    row = state.get("previews", {}).get(pid)
    valid = hmac.compare_digest(sig.encode(), want.encode())
    if not valid or row is None or row["token"] != token or row["expires_at"] <= time.time():
        raise Forbidden(_DENIED)
    return int(row["port"])


def _request(request: Any) -> tuple[str, str, list[tuple[str, str]], bytes]:
    if not isinstance(request, Mapping):
        raise BadRequest("a preview request is an object")
    method, path, headers, body = (request.get(k) for k in ("method", "path", "headers", "body"))
    if not isinstance(method, str) or not method.isascii() or not method.isalpha():
        raise BadRequest("method is an HTTP method name")
    if not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " \r\n\0"):
        raise BadRequest("path is the request target, starting with '/'")
    if not isinstance(headers, list) or not all(
        isinstance(h, list | tuple) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in headers
    ):
        raise BadRequest("headers is a list of [name, value] strings")
    if body is not None and not isinstance(body, bytes):
        raise BadRequest("body is bytes")
    return method.upper(), path, [(k, v) for k, v in headers], body or b""


def _connect(port: int) -> socket.socket:
    """On the VM's host thread: a TCP connection to its loopback."""
    try:
        return socket.create_connection(("127.0.0.1", port), timeout=10.0)
    except OSError as exc:
        raise BadGateway(
            f"nothing answered on the preview's port {port} in the VM: {exc.strerror or exc}"
        ) from None


def _exchange(
    sock: socket.socket, port: int, method: str, path: str, headers: list[tuple[str, str]], body: bytes
) -> FetchResult:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.sock = sock
    sock.settimeout(TIMEOUT)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", f"127.0.0.1:{port}")
        for name, value in headers:
            if name.lower() not in _HOP:
                conn.putheader(name, value)
        if body or method not in ("GET", "HEAD", "DELETE", "OPTIONS"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        resp = conn.getresponse()
        data = resp.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise MessageTooLarge(f"the VM's answer is larger than {MAX_BODY} bytes")
        out: dict[str, str] = {}
        for k, v in resp.getheaders():
            if k.lower() not in _HOP and k.lower() != "set-cookie":  # see server/preview.py
                out[k] = f"{out[k]}, {v}" if k in out else v
        return FetchResult(resp.status, out, data)
    except ValueError as exc:  # a header http.client refuses (control characters)
        raise BadRequest(f"preview request refused: {exc}"[:300]) from None
    except TimeoutError:
        raise BadGateway(f"the server on port {port} in the VM did not answer within {TIMEOUT:g}s") from None
    except (http.client.HTTPException, ConnectionError) as exc:
        raise BadGateway(
            f"the server on port {port} in the VM sent no valid HTTP answer ({exc!r})"[:300]
        ) from None
    finally:
        conn.close()


async def forward(host: VMHost, port: int, request: Any) -> FetchResult:
    """Send an admitted preview request to the VM's port and return its answer."""
    method, path, headers, body = _request(request)
    sock = await host.call(_connect, port)
    return await asyncio.to_thread(_exchange, sock, port, method, path, headers, body)


async def tunnel(host: VMHost, port: int, request: Any) -> Any:
    """An admitted WebSocket request: a WebSocket client connection to the VM's port (the
    ``websockets`` package, over a socket opened in the VM's namespace), for the server to relay."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidHandshake, InvalidURI

    _, path, headers, _ = _request({**request, "method": "GET"})
    offered = [p.strip() for k, v in headers if k.lower() == "sec-websocket-protocol" for p in v.split(",")]
    sock = await host.call(_connect, port)
    try:
        return await connect(
            f"ws://127.0.0.1:{port}{path}",
            sock=sock,
            subprotocols=[p for p in offered if p] or None,  # type: ignore[misc]
            open_timeout=10,
            max_size=MAX_BODY,
            compression=None,
        )
    except (InvalidHandshake, InvalidURI, OSError, TimeoutError) as exc:
        sock.close()
        raise BadGateway(f"the server on port {port} in the VM refused the WebSocket ({exc})"[:300]) from None


__all__ = ["MAX_TTL", "MIN_TTL", "PREFIX", "admit", "create", "expire", "forward", "listed", "tunnel"]
