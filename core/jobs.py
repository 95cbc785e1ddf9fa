"""The contract between the service (which enqueues) and the workers (which run): task names, queues, and the
Celery configuration both build their app from. Only run ids travel through the broker; everything else
is in the database. Importing this module imports neither Celery nor FastAPI."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from core.settings import Settings
from dynamics import SimulationRequest
from dynamics.request import run_bytes
from dynamics.simulate import batch_key

SIMULATE_RUN_TASK = "lindyn.simulate_run"
SIMULATE_BATCH_TASK = "lindyn.simulate_batch_runs"  # a chunk of a sweep's runs, run as one stacked batch
CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
QUEUES: tuple[str, ...] = (CPU_QUEUE, GPU_QUEUE)
#: seconds between a task's soft time limit (it stops, its runs fail) and its hard one (its process is killed)
TASK_KILL_GRACE_S = 60.0


def queue_for(backend: str) -> str:
    """A request asking for CuPy goes to the GPU workers; everything else to the CPU workers."""
    return GPU_QUEUE if backend == "cupy" else CPU_QUEUE


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings shared by the producer (service) and the consumers (workers)."""
    conf: dict[str, Any] = {
        "broker_url": settings.broker,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": CPU_QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,  # results go to the database, never through Celery
        "result_backend": None,
        "task_acks_late": True,  # a task is acknowledged after it ran ...
        "task_reject_on_worker_lost": True,  # ... and delivered again if its worker died
        "worker_prefetch_multiplier": 1,  # one long task at a time per process
        "worker_hijack_root_logger": False,
    }
    if settings.task_time_limit_s > 0:
        # the soft limit raises SoftTimeLimitExceeded in the task: the run fails with that message (it is not
        # retried); the hard limit kills the pool process when an array operation outlasts the grace
        conf["task_soft_time_limit"] = settings.task_time_limit_s
        conf["task_time_limit"] = settings.task_time_limit_s + TASK_KILL_GRACE_S
    if settings.broker.startswith("filesystem://"):
        folder = settings.broker_folder
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "polling_interval": settings.broker_polling_interval_s,
        }
    if settings.broker.split("://", 1)[0] in ("redis", "rediss"):
        # A task whose worker died with it unacknowledged (SIGKILL, power loss: acks_late) stays in Redis's
        # unacked set and is delivered again once it is older than the visibility timeout. Keep it above the
        # stale limit: a copy of a run that is still running (its heartbeat fresh) is skipped (claim_run).
        # The restore sweep runs every few seconds so a short timeout (tests) takes effect promptly.
        # Its lock expires after one such interval: a worker killed during a sweep (it takes milliseconds)
        # leaves the lock behind, and kombu's default of 300 s held back every redelivery that long. Two
        # sweeps at once are harmless: each message is restored once (a WATCH transaction on the unacked hash).
        vt = settings.visibility_timeout_s
        interval = max(1, min(10, vt // 5))
        conf["broker_transport_options"] = {
            "visibility_timeout": vt,
            "unacked_restore_interval": interval,
            "unacked_restore_throttle": 1,
            "unacked_mutex_expire": interval,
        }
    if settings.embedded:
        # no server to broadcast through: no remote control, events or mingling
        conf["worker_enable_remote_control"] = False
        conf["worker_send_task_events"] = False
    return conf


def ensure_broker_folders(settings: Settings) -> None:
    """Create the filesystem broker's folders (a no-op for a broker with a server)."""
    if settings.broker.startswith("filesystem://"):
        for sub in ("queue", "control", "processed"):
            (settings.broker_folder / sub).mkdir(parents=True, exist_ok=True)


def chunks(
    run_ids: Sequence[uuid.UUID], requests: Sequence[SimulationRequest], size: int, spread: int = 1,
    max_bytes: int | None = None,
) -> list[tuple[str, list[uuid.UUID]]]:
    """The runs grouped by ``batch_key``, each group of n runs dealt into max(ceil(n / size), min(n, spread))
    chunks: one worker task each, with the backend its queue is chosen by. ``spread`` (the worker processes)
    gives every process a chunk. Dealt, not cut: chunk j of m holds points j, j + m, j + 2m, ... (grid order
    kept), so chunks sample the whole grid and take about as long as each other. ``max_bytes`` (the limit of
    a run's estimated peak memory) caps ``size`` for a group at max_bytes // the largest point's estimate, so a
    stacked batch stays within what one run may use (``run_bytes`` of a batch is at most the sum of its points').
    (A sweep's runs, sent by the service, and a refinement round's, sent by the worker that starts it.)"""
    groups: dict[tuple[Any, ...], list[uuid.UUID]] = {}
    backends: dict[tuple[Any, ...], str] = {}
    largest: dict[tuple[Any, ...], int] = {}
    for run_id, request in zip(run_ids, requests, strict=True):
        key = batch_key(request)
        groups.setdefault(key, []).append(run_id)
        backends[key] = request.backend
        if max_bytes is not None:
            largest[key] = max(largest.get(key, 0), run_bytes([request]))
    out = []
    for key, ids in groups.items():
        fits = max(1, max_bytes // largest[key]) if max_bytes is not None else size
        m = max(-(-len(ids) // min(size, fits)), min(len(ids), spread))
        out += [(backends[key], ids[j::m]) for j in range(m)]
    return out
