"""Dependencies of the routes: the settings, a database session per request, the job queue."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session, sessionmaker

from models import Settings
from service.queue import RunQueue


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_sessionmaker_dep(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessionmaker


def get_db(factory: Annotated[sessionmaker[Session], Depends(get_sessionmaker_dep)]) -> Iterator[Session]:
    """One session per request, closed (and rolled back if not committed) when the response is sent."""
    with factory() as session:
        yield session


def get_queue(request: Request) -> RunQueue:
    return request.app.state.queue


T = TypeVar("T")


def get_or_404(session: Session, model: type[T], id_text: str, noun: str) -> T:
    """The row of ``model`` with this UUID; 404 "<noun> <id> not found" if there is none or the id is malformed."""
    try:
        key: uuid.UUID | None = uuid.UUID(id_text)
    except ValueError:
        key = None
    row = session.get(model, key) if key is not None else None
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{noun} {id_text} not found")
    return row


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_db)]
QueueDep = Annotated[RunQueue, Depends(get_queue)]
