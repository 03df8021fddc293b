"""The floor for HTTP: a bare Starlette app that answers ``POST /echo`` with the JSON it was sent.

  python bench/echo_server.py --port 8000

No storage, no validation, no middleware: one JSON parse and one JSON dump per request, under
uvicorn on uvloop and httptools with the access log off, as ``actorq serve`` runs. What an actorq
figure costs beyond this is actorq's own work (routing, validation, the durable write).
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def echo(request: Request) -> Response:
    body = json.loads(await request.body())
    return Response(json.dumps(body), media_type="application/json")


async def healthz(request: Request) -> Response:
    return Response("{}", media_type="application/json")


app = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/healthz", healthz)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    args = ap.parse_args()
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
