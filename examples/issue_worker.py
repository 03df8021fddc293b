"""Issue worker: a webhook-style action feeds a durable queue worked one issue at a time.

``ingest_issue(title, body)`` is what a GitHub/Linear webhook handler would call; it validates,
enqueues and returns at once. The run loop triages each issue (a stand-in for the agent, which
the agent VM issue adds) and records the outcome in the actor's persistent state.
"""

from __future__ import annotations

from typing import Any, TypedDict

from actorq import ActorContext, ValidationError, actor, queue, setup
from actorq.client import AsyncClient


class Issue(TypedDict):
    title: str
    body: str


LABELS = {"crash": "bug", "error": "bug", "slow": "performance", "add": "feature", "support": "feature"}


def triage(issue: Issue) -> str:
    text = f"{issue['title']} {issue['body']}".lower()
    return next((label for word, label in LABELS.items() if word in text), "question")


async def ingest_issue(c: ActorContext, title: str, body: str) -> int:
    if not title.strip():
        raise ValidationError("an issue needs a title")
    receipt = await c.queue.send("issues", {"title": title, "body": body})
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


async def main(client: AsyncClient, say: Any = print) -> list[dict[str, Any]]:
    import asyncio

    handle = client.issues.get_or_create(["acme/app"])
    for title, body in (("App crashes on start", "stack trace attached"), ("Add dark mode", "please")):
        msg_id = await handle.ingest_issue(title, body)
        say(f"webhook: issue {title!r} queued as message {msg_id}")
    done: list[dict[str, Any]] = []
    for _ in range(200):
        done = await handle.results()
        if len(done) >= 2:
            break
        await asyncio.sleep(0.02)
    for r in done:
        say(f"  triaged #{r['id']} {r['title']!r} -> {r['label']}")
    return done
