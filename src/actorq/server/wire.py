"""Request envelopes of the wire protocol (pydantic models; also the OpenAPI schemas)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.requests import Request

from actorq._typing import pydantic_errors
from actorq.errors import BadRequest, UnsupportedMediaType


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResolveActor(_Envelope):
    name: str = Field(description="actor type, as registered with setup(use=...)")
    key: list[str] = Field(description="the actor's key, e.g. ['main']")
    mode: Literal["get", "create", "get_or_create"] = "get_or_create"


class SendMessage(_Envelope):
    body: Any = Field(default=None, description="validated against the queue's body type")
    wait: bool = Field(default=False, description="wait for completion (request/response)")
    timeout: float | None = Field(
        default=None, ge=0, description="seconds to wait (wait/block); None: max_wait"
    )
    block: bool = Field(default=False, description="wait for room when the queue is full")
    delay: float | None = Field(default=None, ge=0, description="deliver no earlier than this many seconds")
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class BatchItem(_Envelope):
    queue: str
    body: Any = None
    delay: float | None = Field(default=None, ge=0)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)


class SendBatch(_Envelope):
    messages: list[BatchItem] = Field(min_length=1, max_length=1000, description="plain sends, in order")


class AddressedItem(BatchItem):
    actor_id: str = Field(min_length=1, max_length=200, description="the actor this message is for")


class SendAny(_Envelope):
    messages: list[AddressedItem] = Field(
        min_length=1, max_length=1000, description="plain sends to any actors, in order"
    )


class CallAction(_Envelope):
    args: list[Any] = Field(default_factory=list, description="positional arguments after the context")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments")


# -- media types ----------------------------------------------------------------------------------
ACCEPTED_MEDIA_TYPES = ("application/json", "application/*+json")
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_json_media_type(value: str) -> bool:
    """``application/json`` or ``application/<something>+json``, with at most a UTF-8 charset
    (other parameters are ignored; the body is always read as UTF-8)."""
    media, *params = (part.strip() for part in value.split(";"))
    media = media.lower()
    if not (media == "application/json" or (media.startswith("application/") and media.endswith("+json"))):
        return False
    if media == "application/+json":
        return False
    for param in params:
        name, _, val = param.partition("=")
        if name.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def media_type_error(method: str, headers: Iterable[tuple[bytes, bytes]]) -> UnsupportedMediaType | None:
    """Why a request may not reach a JSON route, if it may not: a ``Content-Type`` that is not
    JSON, or a body without one. Requests without a body need no ``Content-Type``."""
    if method in _NO_BODY_METHODS:
        return None
    content_type: bytes | None = None
    has_body = False
    for name, value in headers:
        if name == b"content-type":
            content_type = value
        elif name == b"content-length":
            has_body = has_body or value.strip() != b"0"
        elif name == b"transfer-encoding":
            has_body = True
    accepted = {"accepted": list(ACCEPTED_MEDIA_TYPES)}
    if content_type is None:
        if not has_body:
            return None
        return UnsupportedMediaType(
            "a request body needs Content-Type: application/json", details={"content_type": None, **accepted}
        )
    text = content_type.decode("latin-1")
    if is_json_media_type(text):
        return None
    return UnsupportedMediaType(
        f"Content-Type {text!r} is not JSON: send application/json (UTF-8)",
        details={"content_type": text, **accepted},
    )


def parse_json(raw: bytes) -> Any:
    if not raw:
        raise BadRequest("request body is empty; expected JSON")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not valid UTF-8: {exc.reason}") from None
    except ValueError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("JSON nested too deeply") from None


async def read_envelope(request: Request, model: type[_Envelope], *, optional: bool = False) -> Any:
    raw = await request.body()
    if not raw and optional:
        return model()
    data = parse_json(raw)
    try:
        return model.model_validate(data)
    except PydanticValidationError as exc:
        raise BadRequest(f"invalid {model.__name__} request", details=pydantic_errors(exc)) from None
