"""How a task's outcome follows from the final statuses of its runs."""

from __future__ import annotations

import pytest

from models.executions import TaskOutcome, task_outcome


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        (["succeeded"], TaskOutcome.succeeded),
        (["diverged", "succeeded", "skipped"], TaskOutcome.succeeded),  # a run not claimed does not count
        (["succeeded", "failed"], TaskOutcome.partial),
        (["diverged", "cancelled"], TaskOutcome.partial),
        (["failed"], TaskOutcome.failed),
        (["failed", "cancelled"], TaskOutcome.failed),
        (["cancelled", "cancelled", "skipped"], TaskOutcome.cancelled),
        (["skipped", "skipped"], TaskOutcome.nothing),
        ([], TaskOutcome.nothing),
    ],
)
def test_task_outcome(statuses: list[str], outcome: TaskOutcome) -> None:
    assert task_outcome(statuses) is outcome
