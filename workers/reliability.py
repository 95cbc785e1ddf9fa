"""The workers' side of surviving faults (the design is in models/reaper.py):

- every task that runs writes its runs' heartbeat from a thread of its own while it runs (Celery's
  ``task_prerun``/``task_postrun`` signals, so every task, present and future, is covered);
- every worker's main process runs the reaper: once when it is ready and every LINDYN_REAPER_INTERVAL_S,
  it queues again the runs whose worker stopped beating (on the filesystem broker of the embedded mode,
  which never delivers an unacknowledged message again, this is what brings a run back), and deletes the
  records of tasks older than LINDYN_TASK_HISTORY_DAYS (models/executions.py), and starts the refinement
  rounds whose start was lost (a worker died between storing a round's last run and starting the next).
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_ready, worker_shutdown

from core import Settings, get_sessionmaker, get_settings
from core.db import in_transaction
from core.jobs import SIMULATE_RUN_TASK, queue_for
from models.executions import prune_task_executions
from models.reaper import beat, reap
from workers.refinement import recover_rounds

log = logging.getLogger(__name__)


def _run_ids(args: Any) -> list[uuid.UUID]:
    """The run ids a task was given: one id, or a list of ids."""
    if not args:
        return []
    first = args[0]
    try:
        if isinstance(first, str):
            return [uuid.UUID(first)]
        if isinstance(first, list | tuple):
            return [uuid.UUID(str(x)) for x in first]
    except ValueError:
        pass
    return []


class Heartbeat:
    """A daemon thread writing the runs' heartbeat every ``interval_s`` until stopped."""

    def __init__(self, settings: Settings, run_ids: list[uuid.UUID]) -> None:
        self.factory = get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)
        self.run_ids = run_ids
        self.interval_s = settings.heartbeat_interval_s
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="lindyn-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _loop(self) -> None:
        while not self.stopped.wait(self.interval_s):
            try:
                in_transaction(self.factory, lambda s: beat(s, self.run_ids), delays=(0.2, 1.0))
            except Exception:  # noqa: BLE001 - a missed beat is not fatal; the next one tries again
                log.warning("heartbeat of %d run(s) failed", len(self.run_ids), exc_info=True)


_BEATING: dict[str, Heartbeat] = {}


@task_prerun.connect
def _start_heartbeat(task_id: str | None = None, args: Any = None, **_: Any) -> None:
    ids = _run_ids(args)
    if ids and task_id is not None:
        _BEATING[task_id] = Heartbeat(get_settings(), ids).start()


@task_postrun.connect
def _stop_heartbeat(task_id: str | None = None, **_: Any) -> None:
    hb = _BEATING.pop(task_id or "", None)
    if hb is not None:
        hb.stop()


class Reaper:
    """The periodic requeue of stale runs and pruning of old task records, a daemon thread of the worker's main
    process."""

    def __init__(self, settings: Settings, app: Any, queues: set[str] | None = None) -> None:
        self.settings = settings
        self.app = app
        self.queues = queues  # the queues this worker takes: only their stranded runs are sent again
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="lindyn-reaper", daemon=True)

    def send(self, run_id: uuid.UUID, backend: str) -> None:
        self.app.send_task(SIMULATE_RUN_TASK, args=[str(run_id)], queue=queue_for(backend))

    def once(self) -> int:
        """One round: requeue the stale runs (how many), then prune the task records."""
        factory = get_sessionmaker(self.settings.db_url, self.settings.sqlite_busy_timeout_ms)
        n = reap(factory, self.settings.stale_after_s, self.send, queues=self.queues)
        n += recover_rounds(self.settings, self.app)  # a refinement round whose start was lost
        if keep_days := self.settings.task_history_days:
            in_transaction(factory, lambda s: prune_task_executions(s, keep_days))
        return n

    def _loop(self) -> None:
        while True:
            try:
                n = self.once()
                if n:
                    log.warning("reaper: %d stale run(s) queued again", n)
            except Exception:  # noqa: BLE001 - the database may be away for a while; try again later
                log.warning("reaper round failed", exc_info=True)
            if self.stopped.wait(self.settings.reaper_interval_s):
                return


_REAPER: list[Reaper] = []


def _consumed_queues(consumer: Any) -> set[str] | None:
    """The names of the queues the worker takes (``--queues``); None when they cannot be told."""
    try:
        return set(consumer.app.amqp.queues.consume_from) or None
    except AttributeError:
        return None


@worker_ready.connect
def _start_reaper(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    if settings.reaper_interval_s <= 0:
        return
    from workers.celery_app import celery_app

    reaper = Reaper(settings, celery_app, _consumed_queues(sender))
    reaper.thread.start()
    _REAPER.append(reaper)


@worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    while _REAPER:
        _REAPER.pop().stopped.set()
