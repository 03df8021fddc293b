"""The wire shapes both sides share (``actorq.protocol``): what the clients build is what the
server reads, and what the server answers is what the clients read, without any I/O."""

from __future__ import annotations

import json
import math

import pytest

from actorq import protocol
from actorq.client import _base as b
from actorq.errors import ActorqError, BadRequest, QueueFull
from actorq.results import SendReceipt


def core() -> b.HandleCore:
    return b.HandleCore("inbox", ["main"], "get", "4kq-actor")


def test_a_client_request_is_read_back_by_the_server_model_unchanged() -> None:
    req = core().send_request(
        "tasks",
        {"title": "x"},
        wait=True,
        timeout=5,
        block=False,
        delay=1.5,
        idempotency_key="k1",
        http_timeout=30.0,
    )
    body = req.body()
    assert body is not None
    env = protocol.validate(protocol.SendMessage, json.loads(body), "SendMessage request", max_wait=900)
    assert (env.body, env.wait, env.timeout, env.block, env.delay, env.idempotency_key) == (
        {"title": "x"},
        True,
        5.0,
        False,
        1.5,
        "k1",
    )
    # fields left at their defaults are not sent
    assert set(json.loads(body)) == {"body", "wait", "timeout", "delay", "idempotency_key"}


def test_coalesced_items_make_one_batch_the_server_reads() -> None:
    c = core()
    items = [(c, c.send_item("jobs", {"n": i}, None, None)) for i in range(3)]
    body = b.batch_request(items, None).body()
    assert body is not None
    env = protocol.validate(protocol.SendAny, json.loads(body), "SendAny request")
    assert [(m.actor_id, m.queue, m.body) for m in env.messages] == [
        ("4kq-actor", "jobs", {"n": i}) for i in range(3)
    ]
    keys = {m.idempotency_key for m in env.messages}
    assert len(keys) == 3 and all(k is not None and len(k) == 32 for k in keys)


def test_a_value_the_server_would_refuse_is_refused_before_sending() -> None:
    with pytest.raises(BadRequest) as exc:
        core().send_request(
            "q", 1, wait=False, timeout=None, block=False, delay=-1, idempotency_key=None, http_timeout=None
        )
    assert exc.value.details[0]["loc"] == ["delay"]
    with pytest.raises(BadRequest):
        core().send_item("q", 1, None, "a\x00b")
    with pytest.raises(BadRequest) as frame:
        b.send_frame(2, "q", 1, "yes", None)  # type: ignore[arg-type]
    assert frame.value.message == "invalid send frame"  # as the server says it


def test_non_finite_numbers_in_a_body_go_out_as_the_constants_the_server_refuses() -> None:
    req = core().action_request("act", (math.nan, math.inf), {}, None)
    assert req.body() == b'{"args":[NaN,Infinity]}'


def test_answers_are_read_ignoring_fields_a_newer_server_adds() -> None:
    raw = b'{"id": 7, "status": "accepted", "duplicate": false, "shard": 3}'
    data = b.parse_response(201, raw, protocol.SendAccepted)
    assert data == {"id": 7, "status": "accepted", "duplicate": False}
    assert b.parse_receipt(data, actor_id="a", queue="q") == SendReceipt(7, "a", "q", False)
    result = b.parse_result(
        b.parse_response(200, b'{"id": 1, "status": "pending", "attempt": 0}', protocol.MessageResult),
        actor_id="a",
    )
    assert (result.response, result.error) == (None, None)  # optional fields filled in
    with pytest.raises(ActorqError, match="expected SendAccepted"):
        b.parse_response(200, b'{"id": "seven"}', protocol.SendAccepted)


def test_batch_answers_give_receipts_and_typed_errors_in_order() -> None:
    c = core()
    items = [(c, c.send_item("jobs", i, None, None)) for i in range(2)]
    answer = protocol.BatchResults(
        results=[
            protocol.accepted(SendReceipt(5, "4kq-actor", "jobs", False)),
            protocol.ItemFailed(error=protocol.error_body(QueueFull("full")), status=429),
        ]
    )
    data = b.parse_response(200, json.dumps(answer).encode(), protocol.BatchResults)
    first, second = b.parse_batch(data, items=items)
    assert first == SendReceipt(5, "4kq-actor", "jobs", False)
    assert isinstance(second, QueueFull)


def test_server_frames_are_read_by_their_type() -> None:
    assert protocol.read_frame('{"type": "init", "actor_id": "a"}') == {"type": "init", "actor_id": "a"}
    event = protocol.read_frame('{"type": "event", "name": "progress", "data": {"step": 2}}')
    assert event["type"] == "event" and event["data"] == {"step": 2}
    with pytest.raises(ActorqError):
        protocol.read_frame('{"type": "gossip"}')
