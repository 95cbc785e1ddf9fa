"""The Celery app of the workers: ``celery -A workers.celery_app worker`` (or ``lindyn worker``)."""

from __future__ import annotations

from typing import Any

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


#: BLAS threads each pool process of this worker gets (0: leave the BLAS library's default); set when the
#: worker starts, inherited by the processes it forks
blas_threads = 0
_blas_limits: Any = None


@worker_init.connect
def _share_the_cores(sender: Any = None, **_: object) -> None:
    """Before the pool starts: the cores shared out among its processes, ``Settings.blas_threads_per_process``
    (a prefork pool of one process per core: 1 BLAS thread each; a solo or thread pool is one process)."""
    global blas_threads
    concurrency = getattr(sender, "concurrency", None)
    prefork = "prefork" in str(getattr(sender, "pool_cls", "prefork")).lower()
    processes = concurrency if prefork and isinstance(concurrency, int) and concurrency > 0 else 1
    blas_threads = get_settings().blas_threads_per_process(processes)


@worker_process_init.connect
def _fresh_engines(**_: object) -> None:
    """A forked pool process must not share the parent's database connections."""
    dispose_engines(close=False)


@worker_process_init.connect
def _limit_blas_threads(**_: object) -> None:
    """Each pool process runs its BLAS (OpenBLAS, MKL, ...) on ``blas_threads`` threads."""
    global _blas_limits
    if blas_threads > 0:
        from threadpoolctl import threadpool_limits

        _blas_limits = threadpool_limits(limits=blas_threads, user_api="blas")


@worker_process_shutdown.connect
def _close_engines(**_: object) -> None:
    dispose_engines()
