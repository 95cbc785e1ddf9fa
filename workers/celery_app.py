"""The Celery app of the workers: ``celery -A workers.celery_app worker`` (or ``lindyn worker``)."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
#: this worker's pool processes now inside ``task_blas_threads`` (shared memory made before the pool forks)
_busy: BusyProcesses | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's (a reused pid)
        return True
    return True


class BusyProcesses:
    """The pool processes of this worker running a task: a shared array of pids (0: a free slot), made before
    the pool forks. A process killed inside a task leaves its pid behind; a pid that is no longer alive
    counts as free, so a killed process never keeps a core from a large run."""

    def __init__(self, slots: int) -> None:
        self.pids = multiprocessing.get_context("fork").Array("i", max(1, slots))

    def enter(self, pid: int | None = None) -> None:
        """Mark ``pid`` (this process) busy, in a free slot or one a dead process left; none free: not counted."""
        pid = os.getpid() if pid is None else pid
        with self.pids.get_lock():
            for i, held in enumerate(self.pids[:]):
                if held == 0 or held == pid or not _alive(held):
                    self.pids[i] = pid
                    return

    def leave(self, pid: int | None = None) -> None:
        pid = os.getpid() if pid is None else pid
        with self.pids.get_lock():
            for i, held in enumerate(self.pids[:]):
                if held == pid:
                    self.pids[i] = 0

    def __len__(self) -> int:
        """How many processes are busy (live pids)."""
        return self.others(pid=0)

    def others(self, pid: int | None = None) -> int:
        """How many other processes are busy (live pids other than ``pid``, this process)."""
        pid = os.getpid() if pid is None else pid
        with self.pids.get_lock():
            held = [p for p in self.pids[:] if p not in (0, pid)]
        return sum(_alive(p) for p in held)


@worker_init.connect
def _share_the_cores(sender: Any = None, **_: object) -> None:
    """Before the pool starts: the cores shared out among its processes, ``Settings.blas_threads_per_process``
    (a prefork pool of one process per core: 1 BLAS thread each; a solo or thread pool is one process)."""
    global blas_threads, _busy
    concurrency = getattr(sender, "concurrency", None)
    prefork = "prefork" in str(getattr(sender, "pool_cls", "prefork")).lower()
    processes = concurrency if prefork and isinstance(concurrency, int) and concurrency > 0 else 1
    _busy = BusyProcesses(2 * processes + 8) if hasattr(os, "fork") else None  # room for replaced processes
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


def large_run_threads(base: int, cores: int, others_busy: int, load: float) -> int:
    """BLAS threads of a large single run: the cores nothing else uses, at least ``base`` (the process's own).

    Free cores = cores - ``others_busy`` (this worker's other processes running a task) - the machine's other
    work (its 1-minute ``load`` average beyond this worker's busy processes, this one included), rounded up.
    """
    others_load = max(0.0, load - others_busy - 1)
    return max(base, cores - others_busy - int(-(-others_load // 1)))


class TaskThreads:
    """The BLAS threads of one task (the per-run rule, README "CPU cores"): ``blas_threads``, except for a task
    that is one run with d >= ``Settings.large_run_d``, which takes the cores the others leave free
    (:func:`large_run_threads`), looked at again at most every ``recheck_s`` from the step loop's checkpoint,
    so a process of this worker that starts a task meanwhile gets its core back within a step. BLAS's threads
    change the order of its sums: the run's numbers agree with a one-thread run's to round-off (about 1e-15
    relative, tests/dynamics/test_simulate.py; python -m bench.large_run_threads)."""

    def __init__(self, large: bool, recheck_s: float = 1.0) -> None:
        from core.settings import cpu_cores

        self.large, self.recheck_s, self.cores = large, recheck_s, cpu_cores()
        self.threads = blas_threads
        self._limits: Any = None
        self._checked = 0.0

    def _others_busy(self) -> int:
        return _busy.others() if _busy is not None else 0

    def adjust(self) -> None:
        """Set the BLAS threads from the rule now (a large run only), at most every ``recheck_s``."""
        now = time.monotonic()
        if not self.large or now - self._checked < self.recheck_s:
            return
        self._checked = now
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        threads = large_run_threads(max(1, blas_threads), self.cores, self._others_busy(), load)
        if threads != self.threads:
            from threadpoolctl import threadpool_limits

            self.threads = threads
            self._limits = threadpool_limits(limits=threads, user_api="blas")

    def checkpoint(self, inner: Callable[[], None] | None = None) -> Callable[[], None]:
        """A checkpoint for the step loop: ``inner()`` (e.g. the cancel watch), then :meth:`adjust`."""

        def check() -> None:
            if inner is not None:
                inner()
            self.adjust()

        return check


@contextmanager
def task_blas_threads(ds: Sequence[int], backends: Sequence[str]) -> Iterator[TaskThreads]:
    """Count this process busy for the block; a task of one NumPy run with d >= ``large_run_d`` may take more
    BLAS threads (:class:`TaskThreads`); the process's own limit is restored afterwards."""
    from threadpoolctl import threadpool_limits

    large_d = get_settings().large_run_d
    large = len(ds) == 1 and 0 < large_d <= ds[0] and backends[0] != "cupy" and blas_threads > 0
    if _busy is not None:
        _busy.enter()
    threads = TaskThreads(large)
    try:
        with threadpool_limits(limits=None, user_api="blas"):  # restores the limits the block started with
            threads.adjust()
            yield threads
    finally:
        if _busy is not None:
            _busy.leave()


@worker_process_shutdown.connect
def _close_engines(**_: object) -> None:
    dispose_engines()
