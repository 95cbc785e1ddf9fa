"""The error bodies that middleware writes come from service/errors.py: the 503 of a database that dropped the
connection (service/faults.py) and the 408 of a body that never arrived (service/security.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy.exc import OperationalError

from service import errors
from service.faults import DatabaseFaults
from service.security import BodySizeLimit


def _call(app: Any, scope: dict[str, Any], receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_the_503_of_a_dropped_database_is_built_by_errors() -> None:
    fault = OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    tries = []

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        tries.append(scope["method"])
        raise fault

    async def nothing() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    sent = _call(DatabaseFaults(failing), {"type": "http", "method": "GET", "path": "/v1/runs"}, nothing)
    assert tries == ["GET", "GET"]  # a read is tried twice
    assert sent[0]["status"] == 503 and (b"retry-after", b"1") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == errors.database_unavailable(fault)
    assert "OperationalError" in errors.database_unavailable(fault)["detail"]


def test_a_body_that_stops_arriving_is_408_built_by_errors() -> None:
    reached = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)

    parts = [{"type": "http.request", "body": b'{"d": 1', "more_body": True}]

    async def receive() -> dict[str, Any]:
        if parts:
            return parts.pop()
        await asyncio.Event().wait()  # the rest never comes
        raise AssertionError("unreachable")

    scope = {"type": "http", "method": "POST", "path": "/v1/runs", "headers": [(b"content-length", b"100")]}
    sent = _call(BodySizeLimit(app, max_bytes=1000, timeout_s=0.05), scope, receive)
    assert reached == []  # the route never saw the request
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == errors.body_timeout(7, 0.05)
