"""The FastAPI app: ``uvicorn service.main:app`` (or ``lindyn serve``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import sessionmaker

from models import Settings, get_settings, make_engine
from service import metrics, security
from service.queue import RunQueue
from service.routers import meta, runs, sweeps
from service.ui import pages as ui


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.engine.dispose()

    try:
        v = version("lindyn")
    except PackageNotFoundError:  # pragma: no cover
        v = "0+unknown"
    app = FastAPI(
        title="lindyn",
        version=v,
        description="Training dynamics of two-layer linear networks (Tu, Aranguri, Jacot, NeurIPS 2024): "
        "submit simulations and parameter-grid sweeps, follow them, fetch their trajectories and tables.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: from local assets (service/ui/pages.py)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = make_engine(
        settings.db_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms, pool_size=settings.db_pool_size
    )
    app.state.sessionmaker = sessionmaker(bind=app.state.engine, expire_on_commit=False)
    app.state.queue = RunQueue(settings)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(meta.router)
    app.include_router(runs.router)
    app.include_router(sweeps.router)
    ui.install(app)  # the dashboard (/ui/...), / and /docs, /redoc from local assets
    security.install(app, settings)  # API keys and body limit, for every route (service/security.py)
    metrics.install(app, settings)  # GET /metrics and the latency of every request (service/metrics.py)
    return app


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422s (query and path parameters) in the shape of the request's: loc, field, msg, type."""
    assert isinstance(exc, RequestValidationError)
    detail: list[dict[str, Any]] = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        # a query or path parameter is named by loc[1] (loc[2:] is an index into a repeated one)
        field = loc[1] if len(loc) > 1 and loc[0] in ("query", "path") else (loc[-1] if loc else None)
        msg = err.get("msg", "")
        if err.get("type") == "extra_forbidden" and loc[:1] == ["query"]:
            msg = f"unknown query parameter {field!r}"
        detail.append({"loc": loc, "field": field, "msg": msg, "type": err.get("type")})
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


app = create_app()
