"""``vm_fetch``'s target: a path, or a full URL that names the VM's own loopback and the port asked
for, and nothing else (a URL for another host or port is refused with a typed error, unsent)."""

from __future__ import annotations

import pytest

from actorq.agent_os.fetch import _target
from actorq.errors import BadRequest


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("/", "/"),
        ("/index.html?x=1", "/index.html?x=1"),
        ("http://127.0.0.1:8080/a/b?q=2", "/a/b?q=2"),
        ("http://localhost:8080/", "/"),
        ("http://127.0.0.1:8080", "/"),
        ("http://LOCALHOST:8080/x#frag", "/x"),
    ],
)
def test_a_path_or_a_url_of_the_vms_loopback_and_port(url: str, path: str) -> None:
    assert _target(8080, url) == (8080, path)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:8080/",  # another host
        "http://10.0.0.1:8080/",
        "http://127.0.0.2:8080/",  # another loopback address: not the VM's 127.0.0.1
        "http://[::1]:8080/",  # connected to 127.0.0.1 anyway: say so rather than pretend
        "http://127.0.0.1.example.com:8080/",
        "http://127.0.0.1:9090/",  # another port than the one asked for
        "http://127.0.0.1/",  # no port: 80, not 8080
        "http://127.0.0.1:8080@example.com/",  # userinfo: the host is example.com
        "http://user@127.0.0.1:8080/",  # userinfo with the right host: refused all the same
        "https://127.0.0.1:8080/",  # plain HTTP only
        "ftp://127.0.0.1:8080/",
        "//127.0.0.1:8080/",  # scheme-relative
        "127.0.0.1:8080/",
        "http://127.0.0.1:notaport/",
        "",
        "/a b",
        "/a\r\nHost: x",
    ],
)
def test_any_other_url_is_refused(url: str) -> None:
    with pytest.raises(BadRequest):
        _target(8080, url)


@pytest.mark.parametrize("port", [0, 65536, -1, True, "80", 8.0])
def test_the_port_is_a_tcp_port(port: object) -> None:
    with pytest.raises(BadRequest):
        _target(port, "/")  # type: ignore[arg-type]
