"""The interactive API page at ``/docs``: swagger-ui, vendored in ``static/swagger-ui/`` (it ships
in the wheel, so the page works offline), rendering this server's ``/openapi.json``.

The page and its files are the same for every server and say nothing about this one, so they are
served without the token; the page asks for the token when ``/openapi.json`` answers 401."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from actorq.errors import NotFound

STATIC = Path(__file__).parent / "static"
PAGE = STATIC / "docs.html"

# what /docs/static/{name} serves: a fixed list, nothing else under the package is reachable
FILES: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (STATIC / "swagger-ui" / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (STATIC / "swagger-ui" / "swagger-ui.css", "text/css"),
    "docs.js": (STATIC / "docs.js", "text/javascript"),
    "docs.css": (STATIC / "docs.css", "text/css"),
    "LICENSE": (STATIC / "swagger-ui" / "LICENSE", "text/plain"),
}

# the page loads only from this server and runs only its own scripts
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'"
)


async def docs_page(request: Request) -> Response:
    return FileResponse(PAGE, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": CSP})


async def docs_static(request: Request) -> Response:
    name = request.path_params["name"]
    found = FILES.get(name)
    if found is None:
        raise NotFound(f"no file {name!r} for the API page")
    path, media_type = found
    charset = "" if media_type == "text/plain" and name == "LICENSE" else "; charset=utf-8"
    return FileResponse(path, media_type=media_type + charset, headers={"Cache-Control": "max-age=3600"})
