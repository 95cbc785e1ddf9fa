from __future__ import annotations

from pathlib import Path

import pytest

from core import Settings
from core.jobs import celery_config, queue_for
from dynamics import Limits


def test_embedded_defaults(embedded_settings: Settings) -> None:
    s = embedded_settings
    assert s.db_url == f"sqlite:///{s.data_dir / 'lindyn.db'}"
    assert s.broker == "filesystem://"
    assert s.embedded
    assert s.limits == Limits()
    assert s.task_history_days == 30  # days of task records the reaper keeps
    conf = celery_config(s)
    assert conf["broker_transport_options"]["data_folder_in"] == str(s.data_dir / "broker" / "queue")
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LINDYN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LINDYN_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("LINDYN_BROKER_URL", "redis://h:6379/0")
    monkeypatch.setenv("LINDYN_MAX_D", "64")
    monkeypatch.setenv("LINDYN_API_KEYS", "k1, k2")
    s = Settings()
    assert s.data_dir == tmp_path.resolve()
    assert s.db_url == "postgresql+psycopg://u@h/db"
    assert s.broker == "redis://h:6379/0" and not s.embedded
    assert s.limits.max_d == 64
    assert s.api_keys == ["k1", "k2"]
    # Redis: only the redelivery of unacknowledged tasks is configured (visibility timeout, default 1 h)
    assert celery_config(s)["broker_transport_options"] == {
        "visibility_timeout": 3600, "unacked_restore_interval": 10, "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 10,
    }
    # a child process given Settings.environment() resolves the same settings
    for key, value in s.environment().items():
        monkeypatch.setenv(key, value)
    assert Settings().environment() == s.environment()


def test_queue_for_backend() -> None:
    assert queue_for("cupy") == "gpu"
    assert queue_for("numpy") == "cpu"
    assert queue_for("auto") == "cpu"


def test_worker_processes_and_blas_threads_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker process per core by default, each on max(1, cores // processes) BLAS threads."""
    monkeypatch.setattr("core.settings.cpu_cores", lambda: 8)
    s = Settings()
    assert s.processes == 8 and s.blas_threads_per_process(8) == 1
    assert s.blas_threads_per_process(1) == 8 and s.blas_threads_per_process(3) == 2
    assert s.blas_threads_per_process(16) == 1
    s = Settings(worker_processes=2, blas_threads=3)
    assert s.processes == 2 and s.blas_threads_per_process(2) == 3
    assert Settings(worker_processes=2).blas_threads_per_process(2) == 4
