"""Engines and sessions. One engine per URL and process; a session per request (service) or per task (workers);
a transaction retried across dropped connections (``in_transaction``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")


def make_engine(url: str, *, busy_timeout_ms: int = 30_000, **kwargs: Any) -> Engine:
    """An engine; SQLite files get WAL mode, a busy timeout and foreign keys (API and worker write at once)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000}, **kwargs)

    @event.listens_for(engine, "do_connect")
    def _make_folder(*_: Any) -> None:
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return engine


_SESSIONMAKERS: dict[tuple[str, int], sessionmaker[Session]] = {}


def get_sessionmaker(url: str, busy_timeout_ms: int = 30_000) -> sessionmaker[Session]:
    """This process's session factory for a URL (one engine, one pool)."""
    key = (url, busy_timeout_ms)
    if key not in _SESSIONMAKERS:
        engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        _SESSIONMAKERS[key] = sessionmaker(bind=engine, expire_on_commit=False)
    return _SESSIONMAKERS[key]


def dispose_engines(*, close: bool = True) -> None:
    """Forget this process's engines; ``close=False`` in a child after a fork (the parent owns the sockets)."""
    while _SESSIONMAKERS:
        _, factory = _SESSIONMAKERS.popitem()
        factory.kw["bind"].dispose(close=close)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session committed on success and rolled back on error."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


#: waits between attempts of a database transaction whose connection failed (about 15 s in all)
RETRY_DELAYS_S: tuple[float, ...] = (0.1, 0.3, 0.6, 1.0, 2.0, 4.0, 7.0)


def is_disconnect(exc: BaseException) -> bool:
    """A failure of the connection (server restarted, backend terminated, network): worth retrying."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError))


def in_transaction(
    factory: sessionmaker[Session], work: Callable[[Session], T], *, delays: Iterable[float] = RETRY_DELAYS_S
) -> T:
    """``work(session)`` in a transaction of its own, committed; run again from the start in a fresh session
    when the connection fails (the failed transaction was rolled back, so nothing is doubled)."""
    delays = list(delays)
    for attempt in range(len(delays) + 1):
        try:
            with session_scope(factory) as session:
                return work(session)
        except Exception as exc:
            if attempt == len(delays) or not is_disconnect(exc):
                raise
            log.warning("database connection failed (%s); retrying in %.1fs", type(exc).__name__, delays[attempt])
            time.sleep(delays[attempt])
    raise AssertionError("unreachable")  # pragma: no cover
