"""Every typed error actorq raises, its stable ``code`` and its HTTP status, in one place.

The server turns an :class:`ActorqError` into ``{"error": {"code", "message", "details"}}`` with
``status``; the clients turn that body back into the same class. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any, ClassVar


class ActorqError(Exception):
    """Base of every actorq error. ``code`` is stable and part of the wire protocol."""

    code: ClassVar[str] = "actorq_error"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False  # the clients retry these by themselves (same idempotency key)

    def __init__(self, message: str = "", *, details: Any = None, retry_after: float | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message: str = message or self.__class__.__name__
        self.details = details
        self.retry_after: float | None = retry_after

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            body["details"] = self.details
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        return body


class BadRequest(ActorqError):
    """Malformed JSON, wrong encoding, or a request the protocol does not understand."""

    code = "bad_request"
    status = 400


class Unauthorized(ActorqError):
    """A token is configured on the server and the request did not carry it."""

    code = "unauthorized"
    status = 401


class Forbidden(ActorqError):
    """The request came by a name the server does not answer to (``Host``: DNS rebinding) or
    from a web page of another site (``Origin``); see ``allowed_hosts``."""

    code = "forbidden"
    status = 403


class NotFound(ActorqError):
    """Unknown actor type, actor, queue, action or message."""

    code = "not_found"
    status = 404


class ActorExists(ActorqError):
    """``create`` was asked for a key that already has an actor."""

    code = "actor_exists"
    status = 409


class CompletionError(ActorqError):
    """A completable message was completed twice, or ``next()`` was called while it was open."""

    code = "completion_error"
    status = 409


class MessageTooLarge(ActorqError):
    """The encoded body is larger than the queue's ``max_message_bytes``."""

    code = "message_too_large"
    status = 413


class UnsupportedMediaType(ActorqError):
    """A request body that is not declared JSON (``application/json`` or ``application/*+json``,
    UTF-8), or a body sent without a ``Content-Type``."""

    code = "unsupported_media_type"
    status = 415


class ValidationError(ActorqError):
    """A body, response or action arguments failed validation; ``details`` holds pydantic's errors."""

    code = "validation_error"
    status = 422


class QueueFull(ActorqError):
    """The queue already holds ``max_size`` messages that were not yet received."""

    code = "queue_full"
    status = 429


class ActorError(ActorqError):
    """A user handler (action or ``run``) raised; carries the handler's message."""

    code = "actor_error"
    status = 500


class Unavailable(ActorqError):
    """The server cannot serve this now (shutting down, owner unreachable); retry later."""

    code = "unavailable"
    status = 503
    retryable = True


class LeaseLost(Unavailable):
    """This node no longer owns the actor (its lease expired or another node took it over): the
    write was refused by the lease's fencing epoch and nothing was changed. Clients retry."""

    code = "lease_lost"
    status = 503


class PathOutsideVM(BadRequest):
    """An agent VM path that would escape the VM's root (``..``, absolute escapes, symlinks out)."""

    code = "path_outside_vm"
    status = 400


class SessionClosed(ActorqError):
    """A prompt (or cancel) for an agent session that was closed."""

    code = "session_closed"
    status = 409


class PromptFailed(ActorError):
    """The agent or its LLM failed the prompt; carries the agent's message (never an empty success)."""

    code = "prompt_failed"
    status = 502


class SandboxUnavailable(Unavailable):
    """The sandbox cannot run: bubblewrap or a declared software package is not installed."""

    code = "sandbox_unavailable"
    status = 503
    retryable = False  # an installation problem: retrying cannot fix it


class ResourceLimit(ActorqError):
    """An agent VM is over one of its limits (disk, processes): nothing was done; free some first."""

    code = "resource_limit"
    status = 403


class BadGateway(ActorqError):
    """A server inside an agent VM (the port of a preview URL) did not answer, or not in HTTP."""

    code = "bad_gateway"
    status = 502


class Unsupported(ActorqError):
    """The agent (or the VM) does not offer what was asked, e.g. modes on an agent without them or
    MCP servers for pi: nothing was done. 501: the request is well formed, the feature is absent."""

    code = "unsupported"
    status = 501


ERRORS: dict[str, type[ActorqError]] = {
    cls.code: cls
    for cls in (
        ActorqError,
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        ActorExists,
        CompletionError,
        MessageTooLarge,
        UnsupportedMediaType,
        ValidationError,
        QueueFull,
        ActorError,
        Unavailable,
        LeaseLost,
        PathOutsideVM,
        SessionClosed,
        PromptFailed,
        SandboxUnavailable,
        ResourceLimit,
        BadGateway,
        Unsupported,
    )
}


def error_from_dict(status: int, body: Any) -> ActorqError:
    """Rebuild the typed error the server sent (used by both clients)."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        cls = ERRORS.get(str(err.get("code")), None)
        if cls is None:
            cls = next(
                (c for c in ERRORS.values() if c.status == status and c is not ActorqError), ActorqError
            )
        retry = err.get("retry_after")
        return cls(
            str(err.get("message", "")),
            details=err.get("details"),
            retry_after=float(retry) if retry is not None else None,
        )
    cls = next((c for c in ERRORS.values() if c.status == status and c is not ActorqError), ActorqError)
    return cls(f"HTTP {status}: {str(body)[:200]}")


__all__ = [
    "ActorError",
    "ActorExists",
    "ActorqError",
    "BadRequest",
    "CompletionError",
    "Forbidden",
    "LeaseLost",
    "MessageTooLarge",
    "NotFound",
    "PathOutsideVM",
    "PromptFailed",
    "QueueFull",
    "ResourceLimit",
    "SandboxUnavailable",
    "SessionClosed",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "ValidationError",
    "error_from_dict",
]
