"""Declarative base with a naming convention (so Alembic names constraints the same on every database)."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, Enum, MetaData, TypeDecorator
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every database (SQLite keeps no zone: it is added back on reading)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class RunStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    diverged = "diverged"
    cancelled = "cancelled"

    @property
    def terminal(self) -> bool:
        return self not in (RunStatus.queued, RunStatus.running)


RUN_STATUSES: tuple[str, ...] = tuple(s.value for s in RunStatus)


class TaskOutcome(enum.StrEnum):
    """How a worker's task ended, from the final statuses of the runs it claimed (models/executions.py)."""

    succeeded = "succeeded"  # every one stored its result (succeeded or diverged)
    partial = "partial"  # some stored their result, the others failed or were cancelled
    failed = "failed"  # none stored a result, not all cancelled; or the task itself raised
    cancelled = "cancelled"  # every one was cancelled while it ran
    nothing = "nothing"  # it could claim none: a copy delivered again, runs finished or cancelled before it


def status_type(values: type[enum.StrEnum]) -> Enum:
    """A column of one of these values, read back as the enum: stored as its value in a VARCHAR(16) (the
    migrations' type, no CHECK constraint, so the same schema on SQLite and PostgreSQL), checked on writing."""
    return Enum(values, native_enum=False, create_constraint=False, length=16, validate_strings=True,
                values_callable=lambda members: [m.value for m in members])
