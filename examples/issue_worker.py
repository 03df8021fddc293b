"""Issue worker: a webhook-style action feeds the actor's own durable queue; the pi agent triages
each issue, one at a time, in the worker's VM.

``ingest_issue(title, body)`` is what a GitHub/Linear webhook handler would call: it validates,
enqueues (``c.queue.send``) and returns the message id at once, so the webhook never waits on the
work. The run loop has pi write a triage note per issue to ``/home/user/issues/<id>.md`` and
records it in the actor's persistent state; ``results()`` lists them.

    python examples/issue_worker.py                      # a real server in-process, then main()
    python -m actorq serve examples.issue_worker:registry
    actorq call issues acme/app ingest_issue '"App crashes on start"' '"stack trace attached"'
    actorq call issues acme/app results
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from actorq import ActorContext, ValidationError, actor, queue, setup
from actorq.agent_os import agent_os, software
from actorq.client import AsyncClient

if __name__ == "__main__":  # run as a file: make the `examples` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.llm import configure_pi, network, pi_env


class Issue(TypedDict):
    title: str
    body: str


async def ingest_issue(c: ActorContext, title: str, body: str) -> int:
    if not title.strip():  # types are already checked against the annotations
        raise ValidationError("an issue needs a non-empty title")
    receipt = await c.queue.send("issues", {"title": title.strip(), "body": body})
    return receipt.id


async def work(c: ActorContext) -> None:
    vm = c.actors.vm.get_or_create(["issues", *c.key])
    await configure_pi(vm)
    session = await vm.create_session(
        "pi", env=pi_env(), additional_instructions="You triage issues: bug, feature or question."
    )
    async for message in c.queue.iter("issues"):
        issue: Issue = message.body
        note = f"/home/user/issues/{message.id}.md"
        await vm.send_prompt(
            session.session_id,
            f"Triage this issue and write a triage note to {note}:\n\n# {issue['title']}\n\n{issue['body']}",
        )
        triage = (await vm.read_file(note)).decode()
        c.state["results"].append({"id": message.id, "title": issue["title"], "triage": triage})
        c.broadcast("triaged", {"id": message.id})


async def results(c: ActorContext) -> list[dict[str, Any]]:
    return list(c.state["results"])


issue_worker = actor(
    queues={"issues": queue(Issue)},
    actions={"ingest_issue": ingest_issue, "results": results},
    run=work,
    state=lambda: {"results": []},
)
vm = agent_os(software=[software.common, software.pi], network=network())
registry = setup(use={"issues": issue_worker, "vm": vm})

ISSUES = [("App crashes on start", "stack trace attached"), ("Add dark mode", "please")]


async def main(client: AsyncClient, say: Callable[[str], object] = print) -> list[dict[str, Any]]:
    """Two webhook calls, then wait until both issues are worked; return the recorded results."""
    handle = client.issues.get_or_create(["acme/app"])
    ids = []
    for title, body in ISSUES:
        msg_id = await handle.ingest_issue(title, body)
        ids.append(msg_id)
        say(f"webhook: issue {title!r} queued as message {msg_id}")
    done: list[dict[str, Any]] = []
    for _ in range(1200):  # results are saved with each issue's acknowledgement
        done = [r for r in await handle.results() if r["id"] in ids]
        if len(done) == len(ids):
            break
        await asyncio.sleep(0.1)
    for r in done:
        say(f"  triaged #{r['id']} {r['title']!r}: {r['triage'].splitlines()[0] if r['triage'] else ''}")
    return done


async def standalone() -> None:
    async with registry.test() as client:
        await main(client)


if __name__ == "__main__":
    asyncio.run(standalone())
