"""Which ``Host`` and ``Origin`` a request may carry: no DNS rebinding, no cross-site requests.

A web page can make the user's browser send requests to ``127.0.0.1``: by re-pointing its own
name at 127.0.0.1 (DNS rebinding: the request then says ``Host: evil.example``), or directly
from its own origin (``Origin: http://evil.example``; browsers apply no CORS to WebSockets at
all). So the server answers only requests addressed to a name it is bound to:

* bound to a loopback name (``127.0.0.1``, ``localhost``, ``::1``): ``127.0.0.1``,
  ``localhost`` and ``[::1]``, any port;
* bound to one address: that address;
* bound to every interface (``0.0.0.0``, ``::``) or not known (the app mounted in another):
  any ``Host``;

plus, in every case, the names in ``allowed_hosts`` (``"*"``: any) and the host part of the
address this node advertises to the others of a cluster. With ``allowed_hosts`` given, a
wildcard binding accepts only those names. An ``Origin`` header, when present, must name an
accepted host; where any ``Host`` is accepted it must name the host the request was sent to.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from actorq.errors import Forbidden

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})


def normalize_host(name: str) -> str | None:
    """A host name or IP literal in one canonical form (lower case, no trailing dot, IPv6
    without brackets, compressed); ``None`` if it is not a plausible host name."""
    name = name.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.endswith(".") and name != ".":
        name = name[:-1]
    if not name:
        return None
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        pass
    if ":" in name or not all(c.isalnum() or c in "-._" for c in name):
        return None
    return name


def host_of_header(value: str) -> str | None:
    """The host part of a ``Host`` header (``name``, ``name:port``, ``[v6]``, ``[v6]:port``)."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        rest = value[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return normalize_host(value[: end + 1])
    name, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    return normalize_host(name)


def host_of_origin(value: str) -> str | None:
    """The host of an ``Origin`` header (``scheme://host[:port]``); ``None`` for ``null`` or
    anything that is not an origin."""
    try:
        parts = urlsplit(value.strip())
        hostname = parts.hostname
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if not parts.scheme or not hostname:
        return None
    return normalize_host(hostname)


class HostPolicy:
    """The names a server accepts in ``Host`` and ``Origin`` (see the module docstring)."""

    def __init__(
        self,
        bound_to: str | None,
        allowed_hosts: Iterable[str] | None = None,
        advertise: str | None = None,
    ) -> None:
        listed = [h.strip() for h in allowed_hosts or () if h.strip()]
        names: set[str] = set()
        for h in listed:
            if h == "*":
                continue
            n = normalize_host(h)
            if n is None:
                raise ValueError(f"allowed host {h!r} is not a host name or IP address")
            names.add(n)
        self.any_host = "*" in listed
        bound = normalize_host(bound_to) if bound_to is not None else None
        if bound_to is None or bound_to.strip() in WILDCARD_BINDS or bound in WILDCARD_BINDS:
            self.any_host = self.any_host or not listed
        elif bound in LOOPBACK_NAMES:
            names |= LOOPBACK_NAMES
        elif bound is not None:
            names.add(bound)
        if advertise:
            adv = host_of_header(advertise)
            if adv is not None and adv not in WILDCARD_BINDS:
                names.add(adv)  # other nodes forward requests to this address
        self.names = frozenset(names)

    def check(self, host: str | None, origin: str | None) -> Forbidden | None:
        """Why a request with these ``Host`` and ``Origin`` headers is refused, if it is."""
        requested = host_of_header(host) if host is not None else None
        if host is not None and not self.any_host and requested not in self.names:
            return Forbidden(
                f"Host {host!r} is not a name this server answers to; start it with "
                "allowed_hosts (--allowed-host) to accept it",
                details={"host": host},
            )
        if origin is None:
            return None
        site = host_of_origin(origin)
        if site is not None and (site in self.names or (self.any_host and site == requested)):
            return None
        return Forbidden(
            f"Origin {origin!r} is not a site this server answers to: requests from web pages "
            "of other sites are refused",
            details={"origin": origin},
        )
