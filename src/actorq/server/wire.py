"""Request envelopes of the wire protocol (pydantic models; also the OpenAPI schemas)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from starlette.requests import Request

from actorq._typing import pydantic_errors
from actorq.errors import BadRequest


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
