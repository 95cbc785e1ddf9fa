"""Dependencies of the routes: the settings, a database session per request, the job queue."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from core import Settings
from service.queue import RunQueue

log = logging.getLogger(__name__)


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_sessionmaker_dep(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessionmaker


SessionmakerDep = Annotated[sessionmaker[Session], Depends(get_sessionmaker_dep)]


async def get_db(factory: SessionmakerDep) -> AsyncIterator[Session]:
    """One session per request, closed (and rolled back if not committed) when the response is sent; a failure
    to close (the connection dropped meanwhile: the pool discards it) is logged, never raised.

    Made on the event loop (a new session does no I/O); closed there too unless it holds a connection, whose
    release (a rollback) is database I/O and goes to the thread pool. So a request costs no thread-pool
    hops of its own for its session: only its sync route and dependencies run there."""
    session = factory()
    try:
        yield session
    finally:
        try:
            if session.in_transaction():
                await run_in_threadpool(session.close)
            else:
                session.close()
        except Exception:  # noqa: BLE001 - the response is built: a connection lost meanwhile must not break it
            log.warning("closing a database session failed; its connection is discarded", exc_info=True)


async def get_queue(request: Request) -> RunQueue:
    return request.app.state.queue


T = TypeVar("T")


def get_or_404(session: Session, model: type[T], id_text: str, noun: str, options: Sequence[Any] = ()) -> T:
    """The row of ``model`` with this UUID (loaded with ``options``); 404 "<noun> <id> not found" if there is
    none or the id is malformed."""
    try:
        key: uuid.UUID | None = uuid.UUID(id_text)
    except ValueError:
        key = None
    row = session.get(model, key, options=options) if key is not None else None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{noun} {id_text} not found")
    return row


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_db)]
QueueDep = Annotated[RunQueue, Depends(get_queue)]
