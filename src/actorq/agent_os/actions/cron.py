"""The VM's cron actions, and the firing of its jobs (the internal ``cron_tick`` action).

Jobs live in the VM's persisted state (``c.state["cron"]``); each firing is one of the core's
durable scheduled action rows calling ``cron_tick`` with the time it was due, which re-arms the next
firing before it runs the job. ``rearm`` (on wake) schedules again what was missed while the server
was down. Validation and the schedule arithmetic are ``cron.py``'s.
"""

from __future__ import annotations

import time
from typing import Any

from actorq.agent_os import cron
from actorq.agent_os.host import HOME
from actorq.agent_os.machine import emit, running, under_cap
from actorq.core import ActorContext
from actorq.errors import ActorqError, BadRequest
from actorq.vm_types import CronJob


async def schedule_cron(c: ActorContext, schedule: str, action: dict[str, Any]) -> CronJob:
    job_id, job = cron.new_job(schedule, action)
    jobs = c.state.setdefault("cron", {})
    if len(jobs) >= cron.MAX_JOBS:
        raise BadRequest(f"a VM holds at most {cron.MAX_JOBS} cron jobs; cancel one first")
    jobs[job_id] = job
    await c.save_state()
    await c.schedule.at(job["next_run"], "cron_tick", job_id, job["next_run"])
    return cron.public(job_id, job)


async def list_cron_jobs(c: ActorContext) -> list[CronJob]:
    return [cron.public(i, j) for i, j in c.state.get("cron", {}).items()]


async def cancel_cron_job(c: ActorContext, job_id: str) -> bool:
    return c.state.get("cron", {}).pop(job_id, None) is not None


async def cron_tick(c: ActorContext, job_id: str, due: float) -> None:
    """Internal: one firing of a cron job (scheduled by the VM itself)."""
    job = c.state.get("cron", {}).get(job_id)
    if job is None or job["next_run"] != due or job["last_fired_for"] == due:
        return  # cancelled, or a stale / duplicate tick
    job["last_fired_for"] = due
    nxt = cron.next_after(job["schedule"], max(time.time(), due))
    job["next_run"] = nxt
    await c.save_state()
    await c.schedule.at(nxt, "cron_tick", job_id, nxt)
    action = job["action"]
    result: Any
    try:
        if action["type"] == "exec":
            table = (await under_cap(c)).processes
            cwd = await running(c).files.cwd(action.get("cwd", HOME))
            r = await table.exec(action["command"], cwd=cwd)
            result = {"exit_code": r.exit_code, "stdout": r.stdout[-4096:], "stderr": r.stderr[-4096:]}
        else:
            p = await (await under_cap(c)).sessions.prompt(action["session_id"], action["prompt"], None)
            running(c).disk.touched()
            result = {"stop_reason": p.stop_reason, "text": p.text[-4096:]}
    except ActorqError as exc:
        result = {"error": exc.to_dict()}
    job["last_run"] = time.time()
    job["last_result"] = result
    job["runs"] += 1
    emit(c, "cron_fired", {"id": job_id, "due": due, "result": result})


async def rearm(c: ActorContext) -> None:
    """On wake: fire once what was due while the VM's server was down (or its chain was cut by a
    crash between a tick and the next one's row)."""
    c.state.setdefault("cron", {})
    now = time.time()
    for job_id, job in c.state["cron"].items():
        if job["next_run"] < now - 2.0:
            await c.schedule.at(job["next_run"], "cron_tick", job_id, job["next_run"])
