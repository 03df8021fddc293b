"""The three examples served together (what ``make demo`` runs)."""

from actorq import setup
from examples.issue_worker import issue_worker
from examples.reviewer import reviewer
from examples.task_runner import runner

registry = setup(use={"runner": runner, "reviewer": reviewer, "issues": issue_worker})
