"""Actor and queue definitions: what a user declares with ``actor(...)`` and ``queue(...)``.

Definitions are immutable descriptions; they validate and encode bodies, responses and action
arguments but never touch storage, the network or running instances.
"""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, overload

from pydantic import TypeAdapter
from typing_extensions import TypeVar

from actorq import _typing as t
from actorq.errors import MessageTooLarge, NotFound, ValidationError

if TYPE_CHECKING:
    from actorq.core.context import ActorContext

RunFn = Callable[["ActorContext"], Awaitable[None]]
ActionFn = Callable[..., Awaitable[Any]]
HookFn = Callable[["ActorContext"], Awaitable[None]]
# (the persisted state, the state_version it was saved at) -> the state at this code's version
MigrateFn = Callable[[Any, int], Any | Awaitable[Any]]

DEFAULT_MAX_SIZE = 1000
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024

B = TypeVar("B", default=Any)
R = TypeVar("R", default=Any)


@dataclass(frozen=True)
class QueueDefinition(Generic[B, R]):
    """One named durable queue of an actor type: body/response types and its bounds.

    ``B`` and ``R`` are the declared body and response types, for the type checker: a handle's
    ``send(q, body)`` checks ``body`` against ``B``, ``c.queue.next(q)`` gives a ``Message[B, R]``.
    ``actor(queues={"review": q})`` binds the queue to its name, so ``q`` can stand for it.
    """

    body_type: Any = Any
    response_type: Any = None
    max_size: int = DEFAULT_MAX_SIZE
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    body_adapter: TypeAdapter[Any] | None = field(default=None, compare=False, repr=False)
    response_adapter: TypeAdapter[Any] | None = field(default=None, compare=False, repr=False)
    # the names actor(queues=...) bound this object to (more than one: refer to it by name)
    bound_names: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def bind(self, name: str) -> None:
        """Record that an actor type declares this queue as ``name`` (the definition stays frozen:
        only which names refer to it grows)."""
        object.__setattr__(self, "bound_names", self.bound_names | {name})

    @property
    def name(self) -> str:
        """The name this queue was declared under; :class:`TypeError` if none or several."""
        if len(self.bound_names) == 1:
            return next(iter(self.bound_names))
        if not self.bound_names:
            raise TypeError("this queue is not declared by any actor yet: pass it to actor(queues={...})")
        raise TypeError(
            f"this queue object is declared under several names ({', '.join(sorted(self.bound_names))}); "
            "send to it by name"
        )

    def dump_body(self, body: B) -> Any:
        """A body validated and in its JSON form (what a client sends); raises ValidationError."""
        return t.to_json_value(self.body_adapter, t.validate(self.body_adapter, body, "message body"))

    def load_response(self, value: Any) -> R:
        """A response (its JSON form) as the declared response type."""
        if self.response_adapter is None or value is None:
            return value  # type: ignore[no-any-return]
        return t.validate(self.response_adapter, value, "response")  # type: ignore[no-any-return]

    def encode_body(self, body: Any) -> str:
        """Validate a body and return its compact JSON; raises ValidationError / MessageTooLarge."""
        value = t.validate(self.body_adapter, body, "message body")
        text = t.dumps(t.to_json_value(self.body_adapter, value))
        size = len(text.encode("utf-8")) if not text.isascii() else len(text)
        if size > self.max_message_bytes:
            raise MessageTooLarge(
                f"message body is {size} bytes; this queue accepts at most {self.max_message_bytes}",
                details={"size": size, "max_message_bytes": self.max_message_bytes},
            )
        return text

    def decode_body(self, value: Any) -> B:
        """Turn a stored JSON body back into the declared type (dataclass, model, dict...)."""
        if self.body_adapter is None:
            return value  # type: ignore[no-any-return]
        return self.body_adapter.validate_python(value)  # type: ignore[no-any-return]

    def encode_response(self, response: Any) -> str:
        value = t.validate(self.response_adapter, response, "response")
        return t.dumps(t.to_json_value(self.response_adapter, value))


@overload
def queue(
    *, max_size: int = DEFAULT_MAX_SIZE, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> QueueDefinition[Any, None]: ...


@overload
def queue(
    body_type: type[B],
    response_type: None = None,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> QueueDefinition[B, None]: ...


@overload
def queue(
    body_type: type[B],
    response_type: type[R],
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> QueueDefinition[B, R]: ...


@overload
def queue(
    body_type: Any,
    response_type: Any = None,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> QueueDefinition[Any, Any]: ...


def queue(
    body_type: Any = Any,
    response_type: Any = None,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> QueueDefinition[Any, Any]:
    """Declare a durable queue. Bodies are validated against ``body_type`` on send.

    Typed as ``QueueDefinition[Body, Response]`` when both are classes (a TypedDict, dataclass,
    pydantic model, ``int``...); a union or other type form gives ``QueueDefinition[Any, Any]``."""
    if max_size < 1:
        raise ValueError("max_size must be at least 1")
    if max_message_bytes < 2:
        raise ValueError("max_message_bytes must be at least 2")
    return QueueDefinition(
        body_type=body_type,
        response_type=response_type,
        max_size=max_size,
        max_message_bytes=max_message_bytes,
        body_adapter=t.adapter(body_type),
        response_adapter=t.adapter(response_type),
    )


@dataclass(frozen=True)
class ActionDefinition:
    """An action (RPC method): ``async def f(c, *args, **kwargs)`` with optional annotations."""

    name: str
    fn: ActionFn
    signature: inspect.Signature
    param_adapters: Mapping[str, TypeAdapter[Any]]
    # from the return annotation (``-> None``: null); ``None`` when unannotated or ``Any``.
    # It describes the result (the OpenAPI document); results are not validated against it.
    result_adapter: TypeAdapter[Any] | None = field(default=None, compare=False, repr=False)

    def bind(
        self, args: list[Any], kwargs: Mapping[str, Any] | None = None
    ) -> tuple[list[Any], dict[str, Any]]:
        """Check arity and validate annotated arguments; raise ValidationError (422) on mismatch."""
        params = list(self.signature.parameters.values())[1:]
        try:
            bound = self.signature.bind(None, *args, **(kwargs or {}))
        except TypeError as exc:
            details: dict[str, Any] = {"expected": [p.name for p in params], "got": len(args)}
            if kwargs:
                details["kwargs"] = sorted(kwargs)
            raise ValidationError(
                f"action {self.name!r} called with wrong arguments: {exc}", details=details
            ) from None
        for name, value in list(bound.arguments.items())[1:]:
            ad = self.param_adapters.get(name)
            if ad is None:
                continue
            kind = self.signature.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL or kind is inspect.Parameter.VAR_KEYWORD:
                continue
            index = list(self.signature.parameters).index(name) - 1
            what = f"argument {index} ({name!r}) of action {self.name!r}"
            bound.arguments[name] = t.validate(ad, value, what)
        return list(bound.args[1:]), dict(bound.kwargs)


def _action(name: str, fn: ActionFn) -> ActionDefinition:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"action {name!r} must be an async function taking the context first")
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if not params:
        raise TypeError(f"action {name!r} must take the actor context as its first parameter")
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception:
        hints = {}
    adapters: dict[str, TypeAdapter[Any]] = {}
    for p in params[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name not in hints:
            continue
        ad = t.adapter(hints[p.name])
        if ad is not None:
            adapters[p.name] = ad
    result_adapter = None
    if "return" in hints:
        returns = hints["return"]
        try:
            result_adapter = t.adapter(type(None) if returns is None else returns)
        except Exception:  # a return type pydantic cannot handle: an undescribed result
            result_adapter = None
    return ActionDefinition(
        name=name, fn=fn, signature=sig, param_adapters=adapters, result_adapter=result_adapter
    )


@dataclass(frozen=True)
class ActorOptions:
    """Per-actor-type runtime options (``actor(..., **options)``)."""

    max_attempts: int = 5
    sleep_timeout: float = 60.0
    retry_backoff: float = 0.1
    retry_backoff_max: float = 5.0
    # the action that answers HTTP requests under the server's open /v1/preview/{token}/ route:
    # called with (token, request) and trusted to check the token itself (see Runtime.call_http)
    http_action: str | None = None


@dataclass(frozen=True)
class ActorDefinition:
    """An actor type: its queues, actions, run loop, initial state and options."""

    queues: Mapping[str, QueueDefinition]
    actions: Mapping[str, ActionDefinition]
    run: RunFn | None
    state: Any
    options: ActorOptions
    vars: Callable[[], Any] | None = None
    on_wake: HookFn | None = None
    on_sleep: HookFn | None = None
    state_version: int = 1
    migrate_state: MigrateFn | None = None

    def get_queue(self, name: str) -> QueueDefinition:
        q = self.queues.get(name)
        if q is None:
            raise NotFound(f"unknown queue {name!r}", details={"queues": sorted(self.queues)})
        return q

    def get_action(self, name: str) -> ActionDefinition:
        a = self.actions.get(name)
        if a is None:
            raise NotFound(f"unknown action {name!r}", details={"actions": sorted(self.actions)})
        return a

    def initial_state(self) -> Any:
        if callable(self.state):
            return self.state()
        return copy.deepcopy(self.state)


def actor(
    *,
    queues: Mapping[str, QueueDefinition] | None = None,
    actions: Mapping[str, ActionFn] | None = None,
    run: RunFn | None = None,
    state: Any = None,
    vars: Callable[[], Any] | None = None,
    on_wake: HookFn | None = None,
    on_sleep: HookFn | None = None,
    state_version: int = 1,
    migrate_state: MigrateFn | None = None,
    **options: Any,
) -> ActorDefinition:
    """Declare an actor type. Options: ``max_attempts``, ``sleep_timeout``, ``retry_backoff``.

    ``vars`` builds ``c.vars``, per-wake memory that is never persisted (processes, sockets);
    ``on_wake(c)`` runs before ``run`` or any action each time the actor wakes, ``on_sleep(c)`` after
    its run loop stopped when it goes to sleep or the server shuts down (as RivetKit's hooks).
    ``state_version`` (default 1) is saved with the state; a state saved at an older version is
    passed to ``migrate_state(old_state, from_version)`` (sync or async) on wake, before ``run``
    or any action sees it, and what it returns is the state at ``state_version``.
    """
    known = set(ActorOptions.__dataclass_fields__)
    unknown = set(options) - known
    if unknown:
        raise TypeError(
            f"unknown actor option(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    opts = ActorOptions(**options)
    if opts.max_attempts < 1 or not math.isfinite(opts.sleep_timeout) or opts.sleep_timeout <= 0:
        raise ValueError("max_attempts must be >= 1 and sleep_timeout a positive number")
    if opts.http_action is not None and opts.http_action not in (actions or {}):
        raise ValueError(f"http_action {opts.http_action!r} is not one of the actor's actions")
    qs = dict(queues or {})
    for qname, q in qs.items():
        if not isinstance(q, QueueDefinition):
            raise TypeError(f"queue {qname!r} must be declared with queue(...)")
    if not isinstance(state_version, int) or isinstance(state_version, bool):
        raise TypeError("state_version must be an int")
    if state_version < 1:
        raise ValueError("state_version must be at least 1")
    if migrate_state is not None and not callable(migrate_state):
        raise TypeError("migrate_state must be a function (old_state, from_version) -> new_state")
    if state_version > 1 and migrate_state is None:
        raise TypeError(
            f"state_version={state_version} needs migrate_state=fn(old_state, from_version) to bring "
            "states saved at older versions up to it"
        )
    for hook_name, hook in (("run", run), ("on_wake", on_wake), ("on_sleep", on_sleep)):
        if hook is not None and not inspect.iscoroutinefunction(hook):
            raise TypeError(f"{hook_name} must be an async function taking the actor context")
    definition = ActorDefinition(
        queues=qs,
        actions={n: _action(n, f) for n, f in (actions or {}).items()},
        run=run,
        state=state,
        options=opts,
        vars=vars,
        on_wake=on_wake,
        on_sleep=on_sleep,
        state_version=state_version,
        migrate_state=migrate_state,
    )
    # only a definition that was accepted names its queues and actions
    for qname, q in qs.items():
        q.bind(qname)
    for aname, fn in (actions or {}).items():
        t.bind_action_name(fn, aname)
    return definition
