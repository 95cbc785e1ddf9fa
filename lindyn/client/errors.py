"""The client's exceptions: one per kind of answer of the API, each carrying its message (and ``detail``)."""

from __future__ import annotations

from typing import Any

import httpx

#: the statuses of a service that is (perhaps briefly) away: retried, then ServiceUnavailable
RETRY_STATUSES = frozenset({502, 503, 504})


class LindynError(Exception):
    """An error answered by the API (``status_code`` set) or no answer at all (``status_code`` None)."""

    def __init__(self, message: str, *, status_code: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.detail = detail


class NotFound(LindynError):
    """404: no run or sweep with this id."""


class ValidationFailed(LindynError):
    """422: the request or a query parameter is invalid; ``errors`` names each field and its reason."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        return self.detail if isinstance(self.detail, list) else []

    @property
    def fields(self) -> dict[str, str]:
        """field -> reason (the first reason of each field)."""
        out: dict[str, str] = {}
        for e in self.errors:
            out.setdefault(str(e.get("field") or ".".join(map(str, e.get("loc", [])))), str(e.get("msg", "")))
        return out


class Conflict(LindynError):
    """409: e.g. the trajectory of a run that has not finished, or cancelling a finished run."""


class Unauthorized(LindynError):
    """401/403: an API key is needed, or the one given is not accepted."""


class ServiceUnavailable(LindynError):
    """No answer (connection refused, timeout) or 502/503/504, after the retries."""


def message_of(response: httpx.Response) -> tuple[str, Any]:
    """The API's message of an error response (its fields and reasons joined) and its ``detail``."""
    try:
        body = response.json()
    except ValueError:
        return (response.text.strip() or response.reason_phrase or f"HTTP {response.status_code}"), None
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, str):
        return detail, detail
    if isinstance(detail, list):
        parts = []
        for e in detail:
            if isinstance(e, dict):
                where = e.get("field") or ".".join(str(p) for p in e.get("loc", []) if p not in ("body", "query"))
                parts.append(f"{where}: {e.get('msg', '')}" if where else str(e.get("msg", "")))
            else:
                parts.append(str(e))
        return "; ".join(parts) or f"HTTP {response.status_code}", detail
    return str(detail), detail


def error_for(response: httpx.Response) -> LindynError:
    """The exception for an error response, by its status."""
    message, detail = message_of(response)
    code = response.status_code
    cls: type[LindynError] = LindynError
    if code == 404:
        cls = NotFound
    elif code == 422:
        cls = ValidationFailed
    elif code == 409:
        cls = Conflict
    elif code in (401, 403):
        cls = Unauthorized
    elif code in RETRY_STATUSES:
        cls = ServiceUnavailable
    return cls(message, status_code=code, detail=detail)
