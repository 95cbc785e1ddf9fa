"""The one settings object of the service and the workers (pydantic-settings, prefix ``LINDYN_``).

It lives in ``core``, which every server process shares (``service`` and ``workers`` depend on it and neither on
the other); importing it pulls in neither FastAPI nor Celery nor SQLAlchemy.

Embedded default (no variable set): a SQLite file and kombu's filesystem broker, both under ``DATA_DIR``.
Production: ``LINDYN_DATABASE_URL=postgresql+psycopg://...`` and ``LINDYN_BROKER_URL=redis://...``.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dynamics import Limits

_DEFAULT_LIMITS = Limits()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINDYN_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="where the embedded database and broker live")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty: sqlite file DATA_DIR/lindyn.db")
    broker_url: str = Field(
        default="", description="Celery broker URL; empty: filesystem broker under DATA_DIR/broker"
    )

    # where `lindyn serve` listens (its --host and --port override these; `make run HOST=... PORT=...`)
    host: str = Field(default="127.0.0.1", description="address `lindyn serve` listens on")
    port: int = Field(default=8000, ge=0, le=65535, description="port `lindyn serve` listens on (0: one the system "
                      "gives, printed)")

    # limits a request is validated against (dynamics.Limits); the same names dynamics reads by default
    max_steps: int = Field(default=_DEFAULT_LIMITS.max_steps, ge=0)
    max_d: int = Field(default=_DEFAULT_LIMITS.max_d, ge=2)
    dense_memory_bytes: int = Field(default=_DEFAULT_LIMITS.dense_memory_bytes, ge=0)
    max_run_bytes: int = Field(
        default=_DEFAULT_LIMITS.max_run_bytes or 8 * 1024**3, ge=0,
        description="largest estimated peak memory of one run (docs/reliability.md); 422 with the estimate above "
        "(0: no limit)",
    )
    max_run_seconds: float = Field(
        default=_DEFAULT_LIMITS.max_run_seconds or 3600.0, ge=0,
        description="longest estimated run (seconds at flops_per_second); 422 with the estimate above (0: no limit)",
    )
    flops_per_second: float = Field(
        default=_DEFAULT_LIMITS.flops_per_second, gt=0,
        description="the float64 rate of a worker that run-time estimates assume (docs/reliability.md)",
    )

    # sweeps: how large a grid may be, how many of its points one task runs as a stacked batch
    max_grid_points: int = Field(default=10_000, ge=1, description="most grid points a sweep may have")
    sweep_chunk_size: int = Field(
        default=64, ge=1, description="grid points per worker task (run together as one stacked batch)"
    )
    tasks_per_process: int = Field(
        default=4, ge=1,
        description="tasks a sweep is dealt into per worker process (at least): a process that finishes early "
        "takes another instead of idling while the slowest task ends",
    )

    # CPU: worker processes share the cores, one BLAS thread each (threads fighting over the cores cost more)
    worker_processes: int = Field(
        default=0, ge=0,
        description="worker processes of `lindyn worker` and of the embedded worker of `lindyn serve` (0: one per "
        "CPU core); the API cuts a sweep into at least this many tasks so that every process gets work",
    )
    blas_threads: int = Field(
        default=0, ge=0,
        description="BLAS threads of each worker process (0: the cores shared out, max(1, cores // processes): "
        "1 when there are as many processes as cores)",
    )
    large_run_d: int = Field(
        default=400, ge=0,
        description="a worker task that is ONE run of d at or above this uses more BLAS threads: the cores no other "
        "process is using (this worker's busy processes, the machine's load average); 0: never "
        "(python -m bench.large_run_threads measures the crossover)",
    )

    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated API keys; when any key is configured, writes need one"
    )

    auth_reads: bool = Field(default=False, description="reads need an API key too (when any key is configured)")
    max_body_bytes: int = Field(default=1_048_576, ge=1, description="largest request body accepted (413 above)")
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="a request body not all received this long after the request began is "
        "answered 408 and its connection closed (a Content-Length above what is sent)",
    )
    max_result_bytes: int = Field(
        default=_DEFAULT_LIMITS.max_result_bytes or 1024**3, ge=0,
        description="largest estimated result (weights, metrics, spectra) of one run; 422 above"
    )

    # faults: a run's worker proves it is alive by a heartbeat; a reaper requeues runs whose heartbeat stopped
    visibility_timeout_s: int = Field(
        default=3600, ge=1, description="Redis: an unacknowledged task is delivered again after this long"
    )
    heartbeat_interval_s: float = Field(default=10.0, gt=0, description="a running task writes its heartbeat so often")
    stale_after_s: float = Field(default=120.0, gt=0, description="a running run with no heartbeat so long is requeued")
    reaper_interval_s: float = Field(
        default=30.0, ge=0, description="how often each worker looks for stale runs (0: never, not even at start)"
    )
    task_history_days: float = Field(
        default=30.0, ge=0,
        description="the reaper deletes the records of tasks (task_executions) older than this (0: keep them all)",
    )

    db_pool_size: int = Field(
        default=20, ge=1,
        description="database connections the API keeps open; requests beyond it open and close their own "
        "(costly: a PostgreSQL connection is a new server process), so size it to the concurrent requests",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, ge=0, description="how long a SQLite writer waits for the lock"
    )
    progress_interval_s: float = Field(default=0.5, ge=0, description="a worker writes progress at most this often")
    live_rows: bool = Field(
        default=True, description="a worker stores a run's trajectory rows with each progress write (readable "
        "while it runs: GET .../trajectory, .../events); false: only at the end"
    )
    cancel_poll_interval_s: float = Field(
        default=1.0, gt=0, description="a running task looks this often whether its runs were cancelled (it stops "
        "at its next step once it sees it)"
    )
    task_time_limit_s: float = Field(
        default=6 * 3600.0, ge=0,
        description="a task running longer is stopped and its runs failed (0: no limit); it is killed "
        "TASK_KILL_GRACE_S later if a long array operation keeps it from stopping",
    )
    max_attempts: int = Field(
        default=3, ge=1,
        description="a run whose worker was lost this many times (killed by the hard time limit, out of memory) is "
        "failed when it comes back instead of being started again",
    )
    broker_polling_interval_s: float = Field(default=0.1, gt=0, description="polling interval of the filesystem broker")
    events_poll_interval_s: float = Field(
        default=0.5, gt=0, description="an event stream (GET .../events) reads the run or sweep again this often "
        "(a session per read, none held between)"
    )
    events_heartbeat_s: float = Field(
        default=15.0, gt=0, description="an event stream sends a comment line after this long without an event "
        "(so proxies keep the connection)"
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [k.strip() for k in v.split(",") if k.strip()]
        return v

    # ---- resolved values ------------------------------------------------------------------------------
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'lindyn.db'}"

    @property
    def broker(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_folder(self) -> Path:
        return self.data_dir / "broker"

    @property
    def embedded(self) -> bool:
        """True when the broker needs no server (filesystem or in-memory)."""
        return self.broker.split("://", 1)[0] in ("filesystem", "memory")

    @property
    def processes(self) -> int:
        """Worker processes per worker: ``worker_processes``, or one per CPU core this process may use."""
        return self.worker_processes or cpu_cores()

    def blas_threads_per_process(self, processes: int) -> int:
        """``blas_threads``, or the cores shared out among ``processes`` worker processes: max(1, cores // processes)."""
        return self.blas_threads or max(1, cpu_cores() // max(1, processes))

    @property
    def limits(self) -> Limits:
        return Limits(
            max_steps=self.max_steps,
            max_d=self.max_d,
            dense_memory_bytes=self.dense_memory_bytes,
            max_result_bytes=self.max_result_bytes,
            max_run_bytes=self.max_run_bytes or None,
            max_run_seconds=self.max_run_seconds or None,
            flops_per_second=self.flops_per_second,
        )

    def environment(self) -> dict[str, str]:
        """The resolved settings as ``LINDYN_*`` variables, for a child process that must agree with this one."""
        return {
            "LINDYN_DATA_DIR": str(self.data_dir),
            "LINDYN_DATABASE_URL": self.db_url,
            "LINDYN_BROKER_URL": self.broker,
            "LINDYN_MAX_STEPS": str(self.max_steps),
            "LINDYN_MAX_D": str(self.max_d),
            "LINDYN_DENSE_MEMORY_BYTES": str(self.dense_memory_bytes),
            "LINDYN_MAX_RESULT_BYTES": str(self.max_result_bytes),
            "LINDYN_MAX_RUN_SECONDS": str(self.max_run_seconds),
            "LINDYN_MAX_RUN_BYTES": str(self.max_run_bytes),
            "LINDYN_FLOPS_PER_SECOND": str(self.flops_per_second),
            "LINDYN_VISIBILITY_TIMEOUT_S": str(self.visibility_timeout_s),
            "LINDYN_HEARTBEAT_INTERVAL_S": str(self.heartbeat_interval_s),
            "LINDYN_STALE_AFTER_S": str(self.stale_after_s),
            "LINDYN_REAPER_INTERVAL_S": str(self.reaper_interval_s),
            "LINDYN_TASK_HISTORY_DAYS": str(self.task_history_days),
            "LINDYN_MAX_GRID_POINTS": str(self.max_grid_points),
            "LINDYN_SWEEP_CHUNK_SIZE": str(self.sweep_chunk_size),
            "LINDYN_TASKS_PER_PROCESS": str(self.tasks_per_process),
            "LINDYN_CANCEL_POLL_INTERVAL_S": str(self.cancel_poll_interval_s),
            "LINDYN_TASK_TIME_LIMIT_S": str(self.task_time_limit_s),
            "LINDYN_LIVE_ROWS": str(self.live_rows).lower(),
            "LINDYN_EVENTS_POLL_INTERVAL_S": str(self.events_poll_interval_s),
            "LINDYN_EVENTS_HEARTBEAT_S": str(self.events_heartbeat_s),
            "LINDYN_MAX_ATTEMPTS": str(self.max_attempts),
            "LINDYN_BODY_TIMEOUT_S": str(self.body_timeout_s),
            "LINDYN_WORKER_PROCESSES": str(self.worker_processes),
            "LINDYN_BLAS_THREADS": str(self.blas_threads),
            "LINDYN_LARGE_RUN_D": str(self.large_run_d),
        }


def cpu_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
