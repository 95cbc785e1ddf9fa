"""Redis's redelivery of a task whose worker died unacknowledged, with the broker options lindyn configures
(models/jobs.py), on a redis-server of this test's own: kombu reads every option, and a worker killed in the
middle of a restore sweep (holding the sweep's lock) holds back the redelivery by one restore interval, not by
kombu's default of 5 minutes (the flake of tests/e2e/test_faults.py::test_worker_sigkilled_mid_run_redis_redelivers)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from core import Settings
from core.jobs import celery_config
from tests.own_redis import RedisServer, own_redis  # noqa: F401 - a fixture

pytestmark = pytest.mark.redis

VT = 2  # visibility timeout (s): the restore interval and the sweep lock's expiry are 1 s


def _connection(url: str, tmp_path: Path) -> Connection:
    conf = celery_config(Settings(data_dir=tmp_path, broker_url=url, visibility_timeout_s=VT))
    return Connection(url, transport_options=conf["broker_transport_options"])


def test_kombu_reads_every_broker_option(own_redis: RedisServer, tmp_path: Path) -> None:  # noqa: F811
    with _connection(own_redis.url, tmp_path) as conn:
        ch = conn.default_channel
        assert ch.visibility_timeout == VT
        assert ch.unacked_restore_interval == 1 and ch.unacked_restore_throttle == 1
        assert ch.unacked_mutex_expire == 1


def test_a_worker_killed_during_a_restore_sweep_delays_redelivery_by_one_interval(
    own_redis: RedisServer, tmp_path: Path  # noqa: F811
) -> None:
    queue = Queue("cpu", Exchange("cpu", type="direct"), routing_key="cpu")
    with _connection(own_redis.url, tmp_path) as conn:
        ch = conn.default_channel
        bound = queue(ch)
        bound.declare()
        Producer(ch, exchange=queue.exchange, routing_key="cpu").publish({"run": "r1"})
        taken = bound.get(no_ack=False)  # delivered to a worker that will die before acknowledging it
        assert taken is not None and taken.payload == {"run": "r1"}

        pid = os.fork()
        if pid == 0:  # a worker whose restore sweep is SIGKILLed after it took the lock
            try:
                redis.Redis.zrange = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)  # type: ignore[method-assign]
                with _connection(own_redis.url, tmp_path) as dying:
                    dying.default_channel.qos.restore_visible(num=None, interval=1)
            finally:
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        client = redis.Redis.from_url(own_redis.url)
        assert client.exists(ch.unacked_mutex_key)  # the dead worker's lock is left behind
        killed_at = time.monotonic()

        redelivered = None
        while redelivered is None and time.monotonic() - killed_at < 30:
            ch.qos.restore_visible(num=None, interval=1)  # what a live worker's periodic sweep does
            redelivered = bound.get(no_ack=True)
            time.sleep(0.1)
        assert redelivered is not None and redelivered.payload == {"run": "r1"}, "not redelivered within 30 s"
        # the message became visible again VT s after it was taken, the lock expired 1 s after the kill
        assert not client.exists(ch.unacked_mutex_key)
        client.close()
