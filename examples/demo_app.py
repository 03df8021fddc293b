"""The three examples served together, sharing one agent VM type (what ``make demo`` runs)."""

from actorq import setup
from examples.issue_worker import issue_worker
from examples.reviewer import reviewer, vm
from examples.task_runner import runner

registry = setup(use={"runner": runner, "reviewer": reviewer, "issues": issue_worker, "vm": vm})
