"""The Celery app of the workers: ``celery -A workers.celery_app worker`` (or ``lindyn worker``)."""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_init, worker_process_init, worker_process_shutdown
from kombu import Exchange, Queue

from core import dispose_engines, get_settings
from core.jobs import QUEUES, celery_config, ensure_broker_folders


def create_celery_app() -> Celery:
    app = Celery("lindyn", include=["workers.tasks", "workers.reliability"])  # reliability: heartbeat, reaper
    app.conf.update(celery_config(get_settings()))
    app.conf.task_queues = [Queue(q, Exchange(q, type="direct"), routing_key=q) for q in QUEUES]
    return app


celery_app = create_celery_app()


@worker_init.connect
def _broker_folders(**_: object) -> None:
    """The filesystem broker's folders, created when a worker starts (not when this module is imported)."""
    ensure_broker_folders(get_settings())


@worker_process_init.connect
def _fresh_engines(**_: object) -> None:
    """A forked pool process must not share the parent's database connections."""
    dispose_engines(close=False)


@worker_process_shutdown.connect
def _close_engines(**_: object) -> None:
    dispose_engines()
