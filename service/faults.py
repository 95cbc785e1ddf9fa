"""A database that drops a connection (a restarted server, a terminated backend, a locked SQLite file) is a
transient fault, never a 500: a read (GET, HEAD) is tried once more, on a fresh connection (the pool replaced
the broken one: ``pool_pre_ping``); what still fails is answered 503 with ``Retry-After``, which clients
retry (lindyn/client.py). Pure ASGI middleware around the whole app, so every route and the key checks are
covered. A fault after the response started (a streamed export) cannot be answered any more: it is raised."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI

from core.db import is_disconnect
from service import errors
from service.security import ASGIApp, Message, Receive, Scope, Send, send_json

log = logging.getLogger(__name__)

READ_METHODS = frozenset({"GET", "HEAD"})


class DatabaseFaults:
    """Retry a read once after a dropped connection; answer 503 + Retry-After for what still fails."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        tries = 2 if scope.get("method") in READ_METHODS else 1
        for attempt in range(1, tries + 1):
            try:
                await self.app(scope, receive, tracking)
                return
            except Exception as exc:
                if started or not is_disconnect(exc):
                    raise
                fault: Any = exc
                log.warning("%s %s: database connection failed (%s), attempt %d of %d", scope.get("method"),
                            scope.get("path"), type(exc).__name__, attempt, tries)
        await send_json(send, 503, errors.database_unavailable(fault), headers=[errors.RETRY_AFTER])


def install(app: FastAPI) -> None:
    """Outermost of the app's own middleware: it covers the routes, the key checks and the metrics."""
    app.add_middleware(DatabaseFaults)  # type: ignore[arg-type]
