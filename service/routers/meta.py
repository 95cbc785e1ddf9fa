"""/health (database and broker reachable) and /v1/version."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.deps import QueueDep, SessionDep
from service.schemas.meta import Check, Health, Version

router = APIRouter(tags=["meta"])


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "unavailable"}})
def health(session: SessionDep, queue: QueueDep) -> JSONResponse:
    """200 when the database and the broker answer; 503 with the reasons when not."""
    try:
        session.execute(text("SELECT 1"))
        db = Check(ok=True, detail=session.get_bind().dialect.name)
    except Exception as exc:  # noqa: BLE001 - the reason is the answer
        db = Check(ok=False, detail=f"{type(exc).__name__}: {exc}")
    reason = queue.check()
    broker = Check(ok=reason is None, detail=reason or queue.settings.broker.split("://", 1)[0])
    ok = db.ok and broker.ok
    body = Health(status="ok" if ok else "unavailable", database=db, broker=broker)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/v1/version", response_model=Version)
def read_version() -> Version:
    try:
        v = version("lindyn")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that was never installed
        v = "0+unknown"
    return Version(version=v)
