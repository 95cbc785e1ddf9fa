"""The service's side of the job queue: a Celery producer that sends run ids to the right queue."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from celery import Celery

from core import Settings
from core.jobs import SIMULATE_BATCH_TASK, SIMULATE_RUN_TASK, celery_config, ensure_broker_folders, queue_for
from models import Run


class RunQueue:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.celery = Celery("lindyn-api")
        self.celery.conf.update(celery_config(settings))

    def enqueue(self, run: Run) -> None:
        """Send the run's id (only its id: the request is in the database) to its queue."""
        self._send(SIMULATE_RUN_TASK, str(run.id), backend=run.backend_requested)

    def enqueue_batch(self, run_ids: Sequence[uuid.UUID], backend: str) -> None:
        """Send the ids of runs that one task runs as one stacked batch (one batch key, one backend)."""
        self._send(SIMULATE_BATCH_TASK, [str(r) for r in run_ids], backend=backend)

    def _send(self, task: str, arg: object, *, backend: str) -> None:
        ensure_broker_folders(self.settings)
        self.celery.send_task(
            task,
            args=[arg],
            queue=queue_for(backend),
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
        )

    def check(self) -> str | None:
        """None when the broker is reachable, else the reason."""
        folder = self.settings.broker_folder
        if self.settings.broker.startswith("filesystem://"):
            queue_dir = folder / "queue"
            if not queue_dir.is_dir():
                return f"broker folder {queue_dir} does not exist"
            try:
                probe = queue_dir / ".health"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                return f"broker folder {queue_dir} is not writable: {exc}"
            return None
        try:
            with self.celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
        except Exception as exc:  # noqa: BLE001 - any failure is a reason to report
            return f"{type(exc).__name__}: {exc}"
        return None
