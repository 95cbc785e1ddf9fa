"""Engines and sessions. One engine per URL and process; a session per request (service) or per task (workers)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker


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
