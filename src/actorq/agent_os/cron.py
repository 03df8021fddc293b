"""Durable cron jobs of a VM, on top of the core's durable scheduled actions.

A job lives in the VM's persisted state; each firing is a ``c.schedule.at`` row calling the VM's
``cron_tick`` action with the time it was due, so jobs survive sleep and restart (agentOS keeps
them in memory and loses them). A tick whose due time no longer matches the job (cancelled,
rescheduled, or a duplicate re-armed on wake) does nothing, so a job fires at most once per due time.
Runs missed while the server was down fire once on recovery, not once per missed slot.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from croniter import croniter

from actorq.errors import BadRequest, ValidationError
from actorq.vm_types import CronJob

_ACTIONS = ("exec", "prompt")
MAX_JOBS = 100  # per VM: each lives in the VM's persisted state


def next_after(schedule: str, after: float) -> float:
    return float(croniter(schedule, after).get_next(float))


def new_job(schedule: str, action: Any, now: float | None = None) -> tuple[str, dict[str, Any]]:
    """Validate a schedule (5 fields, or 6 with seconds last) and action; return (id, job)."""
    if not isinstance(schedule, str) or not croniter.is_valid(schedule):
        raise ValidationError(
            f"invalid cron schedule {schedule!r}",
            details=[{"loc": ["schedule"], "msg": "5 cron fields (or 6, seconds last)", "type": "cron"}],
        )
    if not isinstance(action, dict) or action.get("type") not in _ACTIONS:
        raise ValidationError(
            "cron action must be {'type': 'exec', 'command': ...} or "
            "{'type': 'prompt', 'session_id': ..., 'prompt': ...}",
            details=[{"loc": ["action", "type"], "msg": f"one of {list(_ACTIONS)}", "type": "literal"}],
        )
    if action["type"] == "exec" and not (isinstance(action.get("command"), str) and action["command"]):
        raise BadRequest("an exec cron action needs 'command' (a shell command line)")
    if action["type"] == "prompt" and not (
        isinstance(action.get("session_id"), str) and isinstance(action.get("prompt"), str)
    ):
        raise BadRequest("a prompt cron action needs 'session_id' and 'prompt' (strings)")
    now = time.time() if now is None else now
    job = {
        "schedule": schedule,
        "action": action,
        "created_at": now,
        "next_run": next_after(schedule, now),
        "last_fired_for": None,
        "last_run": None,
        "last_result": None,
        "runs": 0,
    }
    return "cron_" + uuid.uuid4().hex[:12], job


def public(job_id: str, job: dict[str, Any]) -> CronJob:
    return CronJob(id=job_id, **{k: v for k, v in job.items() if k != "last_fired_for"})
