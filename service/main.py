"""The FastAPI app: ``uvicorn service.main:app`` (or ``lindyn serve``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI
from sqlalchemy.orm import sessionmaker

from core import Settings, get_settings, make_engine
from service import errors, faults, metrics, security
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
    errors.install(app)  # the error bodies and handlers (service/errors.py)
    app.include_router(meta.router)
    app.include_router(runs.router)
    app.include_router(sweeps.router)
    ui.install(app)  # the dashboard (/ui/...), / and /docs, /redoc from local assets
    security.install(app, settings)  # API keys and body limit, for every route (service/security.py)
    metrics.install(app, settings)  # GET /metrics and the latency of every request (service/metrics.py)
    faults.install(app)  # a dropped database connection: a read retried once, else 503 (service/faults.py)
    return app


app = create_app()
