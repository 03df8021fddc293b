"""Type adapters for user-declared body, response and argument types (shared by core and clients).

Users write ``typing.TypedDict`` on Python 3.11, which pydantic refuses there; :func:`adapter`
rebuilds such classes (recursively, through generics) as ``typing_extensions.TypedDict`` so
validation works the same on every supported Python. No I/O.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import inspect
import json
import sys
import types
import typing
from typing import Any, Protocol, get_args, get_origin

import typing_extensions
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_jsonable_python
from typing_extensions import TypeVar

from actorq.errors import BadRequest, ValidationError

_NEEDS_REBUILD = sys.version_info < (3, 12)


def _is_typing_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and type(tp).__module__ == "typing" and typing.is_typeddict(tp)


@functools.cache
def _rebuild_typeddict(tp: type) -> Any:
    hints = typing.get_type_hints(tp, include_extras=True)
    required: frozenset[str] = getattr(tp, "__required_keys__", frozenset())
    fields: dict[str, Any] = {}
    for name, hint in hints.items():
        inner = _strip_required(hint)
        inner = normalize(inner)
        fields[name] = (
            typing_extensions.Required[inner] if name in required else typing_extensions.NotRequired[inner]
        )
    rebuilt: Any = typing_extensions.TypedDict(tp.__name__, fields)  # type: ignore[misc]
    rebuilt.__module__ = tp.__module__
    rebuilt.__doc__ = tp.__doc__
    return rebuilt


def _strip_required(hint: Any) -> Any:
    origin = get_origin(hint)
    if origin in (
        typing.Required,
        typing.NotRequired,
        typing_extensions.Required,
        typing_extensions.NotRequired,
    ):
        return get_args(hint)[0]
    return hint


def normalize(tp: Any) -> Any:
    """Return ``tp`` with every ``typing.TypedDict`` inside it made acceptable to pydantic."""
    if not _NEEDS_REBUILD:
        return tp
    if _is_typing_typeddict(tp):
        return _rebuild_typeddict(tp)
    origin = get_origin(tp)
    args = get_args(tp)
    if origin is None or not args:
        return tp
    new_args = tuple(normalize(a) if not isinstance(a, (str, int, float, bytes, bool)) else a for a in args)
    if new_args == args:
        return tp
    if origin is typing.Annotated:
        return typing.Annotated[(new_args[0], *args[1:])]
    if origin is typing.Union or origin is types.UnionType:
        return typing.Union[new_args]  # noqa: UP007
    try:
        return origin[new_args]
    except TypeError:
        generic = getattr(typing, getattr(origin, "__name__", "").capitalize(), None)
        return generic[new_args] if generic is not None else tp


@functools.cache
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(normalize(tp))


def adapter(tp: Any) -> TypeAdapter[Any] | None:
    """A cached :class:`TypeAdapter` for ``tp``, or ``None`` when ``tp`` accepts anything."""
    if tp is Any or tp is object or tp is None:
        return None
    try:
        return _adapter(tp)
    except TypeError:  # unhashable annotation: build it every time (rare)
        return TypeAdapter(normalize(tp))


def pydantic_errors(exc: PydanticValidationError) -> list[dict[str, Any]]:
    """pydantic's field errors as plain JSON (loc, msg, type), safe to send on the wire."""
    return [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors(include_url=False)
    ]


def validate(tp_adapter: TypeAdapter[Any] | None, value: Any, what: str) -> Any:
    """Validate ``value``; raise actorq's :class:`ValidationError` carrying pydantic's errors."""
    if tp_adapter is None:
        return value
    try:
        return tp_adapter.validate_python(value)
    except PydanticValidationError as exc:
        raise ValidationError(f"{what} failed validation", details=pydantic_errors(exc)) from None


def to_json_value(tp_adapter: TypeAdapter[Any] | None, value: Any) -> Any:
    """A JSON-ready (dicts, lists, str, numbers) form of an already-validated value."""
    if tp_adapter is not None:
        return tp_adapter.dump_python(value, mode="json")
    return to_jsonable_python(value)


def dumps(value: Any) -> str:
    """Compact JSON; non-JSON values are a 400 for the caller, never a 500."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        try:
            return json.dumps(
                to_jsonable_python(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False
            )
        except Exception:
            raise BadRequest(f"value is not JSON-serialisable: {exc}") from None


# Action arguments and results may hold bytes (an agent VM's read_file); JSON has none, so on the
# wire a bytes value is the object {"$bytes": "<base64>"} in either direction.
BYTES_KEY = "$bytes"
# exact types that need nothing done: checked first, since large answers (a VM's event history)
# are mostly these, and one set lookup is cheaper than the isinstance chain below
_PLAIN = frozenset({str, int, float, bool, type(None)})


def encode_bytes(value: Any) -> Any:
    """``value`` as JSON-ready data, with every ``bytes`` tagged (dataclasses and models too)."""
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {k: v if type(v) in _PLAIN else encode_bytes(v) for k, v in value.items()}
    if kind is list:
        return [v if type(v) in _PLAIN else encode_bytes(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {BYTES_KEY: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {k: encode_bytes(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_bytes(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_bytes(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, BaseModel):
        return encode_bytes(value.model_dump(mode="python"))
    return to_jsonable_python(value)


def decode_bytes(value: Any) -> Any:
    """Undo :func:`encode_bytes`: ``{"$bytes": "..."}`` objects become ``bytes`` again."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, dict):
        if len(value) == 1 and BYTES_KEY in value and isinstance(value[BYTES_KEY], str):
            try:
                return base64.b64decode(value[BYTES_KEY], validate=True)
            except ValueError:
                raise BadRequest(f"{BYTES_KEY} must hold base64") from None
        return {k: v if type(v) in _PLAIN else decode_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _PLAIN else decode_bytes(v) for v in value]
    return value


# -- typed references: queues and actions named by the object that declares them ----------------
B = TypeVar("B", default=Any)  # invariant: a send's body is checked against it, not inferred
R_co = TypeVar("R_co", covariant=True, default=Any)


class QueueRef(Protocol[B, R_co]):
    """A queue declared with ``queue(Body, Response)`` and bound to a name by ``actor(queues=...)``.

    What a handle needs to send by reference: the queue's name, its body's JSON form (validated on
    the sender's side, as the server would) and back, and its response rebuilt as the declared type.
    ``QueueDefinition`` is one; the clients see only this.
    """

    @property
    def name(self) -> str: ...

    def dump_body(self, body: B) -> Any: ...

    def decode_body(self, value: Any) -> B: ...

    def load_response(self, value: Any) -> R_co: ...


def queue_name(queue: str | QueueRef[Any, Any]) -> str:
    """A queue given by name or by reference (``queue(...)`` bound by ``actor(queues=...)``)."""
    return queue if isinstance(queue, str) else queue.name


ACTION_NAMES_ATTR = "__actorq_action_names__"


def bind_action_name(fn: Any, name: str) -> None:
    """Record on ``fn`` that ``actor(actions={name: fn})`` declared it (names add up)."""
    target = getattr(fn, "__func__", fn)  # a bound method: record it on its function
    try:
        names: frozenset[str] = getattr(target, ACTION_NAMES_ATTR, frozenset())
        setattr(target, ACTION_NAMES_ATTR, names | {name})
    except (AttributeError, TypeError):
        pass  # a callable that takes no attributes can still be called by name


def action_name(fn: Any) -> str:
    """The name ``fn`` was declared under; :class:`TypeError` if it never was, or under several."""
    if isinstance(fn, str):
        return fn
    names: frozenset[str] = getattr(getattr(fn, "__func__", fn), ACTION_NAMES_ATTR, frozenset())
    what = getattr(fn, "__qualname__", repr(fn))
    if not names:
        raise TypeError(
            f"{what} is not an action: declare it with actor(actions={{'name': {what}}}) or call by name"
        )
    if len(names) > 1:
        raise TypeError(
            f"{what} is declared as several actions ({', '.join(sorted(names))}); call it by name"
        )
    return next(iter(names))


@functools.cache
def _return_adapter(fn: Any) -> TypeAdapter[Any] | None:
    # only the return annotation: the context's (``c: ActorContext``) may be under TYPE_CHECKING
    raw: Any = inspect.get_annotations(fn).get("return", inspect.Signature.empty)
    if raw is inspect.Signature.empty:
        return None
    try:
        tp = eval(raw, getattr(fn, "__globals__", {})) if isinstance(raw, str) else raw
        return adapter(tp)
    except Exception:  # an annotation that does not evaluate here: the value stays as it came
        return None


def load_action_result(fn: Any, value: Any) -> Any:
    """An action's result rebuilt as ``fn``'s declared return type (a dataclass, a model...);
    one that does not fit is returned as it came (the action's own code decides what it returns)."""
    target = getattr(fn, "__func__", fn)
    try:
        ad = _return_adapter(target)
    except TypeError:  # unhashable callable
        return value
    if ad is None:
        return value
    try:
        return ad.validate_python(value)
    except PydanticValidationError:
        return value
