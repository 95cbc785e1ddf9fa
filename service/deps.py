"""Dependencies of the routes: the settings, a database session per request, the job queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
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


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_db)]
QueueDep = Annotated[RunQueue, Depends(get_queue)]
