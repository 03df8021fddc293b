"""Issue worker: a webhook-style action feeds the actor's own durable queue, worked one issue at a time.

``ingest_issue(title, body)`` is what a GitHub/Linear webhook handler would call: it validates,
enqueues (``c.queue.send``) and returns the message id at once, so the webhook never waits on the
work. The run loop triages each issue (a stand-in for the coding agent, which the agent VM issue
adds) and records the outcome in the actor's persistent state; ``results()`` lists them.

    python examples/issue_worker.py                      # a real server in-process, then main()
    python -m actorq serve examples.issue_worker:registry
    actorq call issues acme/app ingest_issue '"App crashes on start"' '"stack trace attached"'
    actorq call issues acme/app results
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypedDict

from actorq import ActorContext, ValidationError, actor, queue, setup
from actorq.client import AsyncClient


class Issue(TypedDict):
    title: str
    body: str


LABELS = {"crash": "bug", "error": "bug", "slow": "performance", "add": "feature", "support": "feature"}


def triage(issue: Issue) -> str:
    """What the agent will do later: read the issue, decide what it is (and, later, work on it)."""
    text = f"{issue['title']} {issue['body']}".lower()
    return next((label for word, label in LABELS.items() if word in text), "question")


async def ingest_issue(c: ActorContext, title: str, body: str) -> int:
    if not title.strip():  # types are already checked against the annotations
        raise ValidationError("an issue needs a non-empty title")
    receipt = await c.queue.send("issues", {"title": title.strip(), "body": body})
    return receipt.id


async def work(c: ActorContext) -> None:
    async for message in c.queue.iter("issues"):
        label = triage(message.body)
        c.state["results"].append({"id": message.id, "title": message.body["title"], "label": label})
        c.broadcast("triaged", {"id": message.id, "label": label})


async def results(c: ActorContext) -> list[dict[str, Any]]:
    return list(c.state["results"])


issue_worker = actor(
    queues={"issues": queue(Issue)},
    actions={"ingest_issue": ingest_issue, "results": results},
    run=work,
    state=lambda: {"results": []},
)
registry = setup(use={"issues": issue_worker})

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
    for _ in range(500):  # results are saved with each issue's acknowledgement
        done = [r for r in await handle.results() if r["id"] in ids]
        if len(done) == len(ids):
            break
        await asyncio.sleep(0.02)
    for r in done:
        say(f"  triaged #{r['id']} {r['title']!r} -> {r['label']}")
    return done


async def standalone() -> None:
    async with registry.test() as client:
        await main(client)


if __name__ == "__main__":
    asyncio.run(standalone())
