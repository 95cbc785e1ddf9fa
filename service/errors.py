"""The API's error vocabulary: every error body the service writes is built here, and its exception
handlers live here.

A 422 (and the 413 of an oversized body) is ``{"detail": [entry, ...]}``, one entry per fault, each
``{"loc": [where, ...], "field": name or null, "msg": reason, "type": kind}``: ``loc`` starts with
``body``, ``query`` or ``path``; ``field`` names the request field or parameter at fault. Other statuses
(404, 409, 503) carry ``{"detail": "a sentence"}``. A new error case is a builder or a handler here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dynamics.request import FieldProblem

UNPROCESSABLE = status.HTTP_422_UNPROCESSABLE_CONTENT


def field_error(loc: Sequence[Any], field: str | None, msg: str, type_: str | None = "value_error") -> dict[str, Any]:
    """One entry of a 422's detail: where (``loc``), which field, why (``msg``) and the kind (``type``)."""
    return {"loc": list(loc), "field": field, "msg": msg, "type": type_}


def problem_errors(problems: Sequence[FieldProblem], *where: str) -> list[dict[str, Any]]:
    """The 422 entries of dynamics' FieldProblems, their ``loc`` under ``where`` (e.g. "body")."""
    return [field_error([*where, *p.loc], p.field, p.reason, p.kind) for p in problems]


def unprocessable(errors: Sequence[dict[str, Any]]) -> HTTPException:
    """A 422 with these entries (raise it)."""
    return HTTPException(UNPROCESSABLE, list(errors))


def invalid(where: str, field: str, msg: str, type_: str = "value_error") -> HTTPException:
    """A 422 with one entry: ``field`` (a query or path parameter, or a body field) at fault because ``msg``."""
    return unprocessable([field_error([where, field], field, msg, type_)])


def invalid_json(reason: str = "body is not valid JSON") -> dict[str, Any]:
    """The entry of a body that is not JSON."""
    return field_error(["body"], None, reason, "json_invalid")


def unparsable_body(exc: BaseException | None) -> dict[str, Any]:
    """The entry of a body that cannot be decoded, saying why: not JSON, or nested deeper than the decoder goes
    (RecursionError) - the same on every endpoint, whoever decodes the body (a route, or FastAPI)."""
    if isinstance(exc, RecursionError):
        return invalid_json("body is nested too deeply to be decoded (arrays or objects within each other)")
    return invalid_json(f"body is not valid JSON: {exc}" if exc is not None else "body is not valid JSON")


def body_too_large(size: str, max_bytes: int) -> dict[str, Any]:
    """The body of the 413 of a request body over ``max_bytes``."""
    return {"detail": [field_error(["body"], None, f"request body of {size} bytes is over the limit of {max_bytes} "
                                   "bytes", "body_too_large")]}  # fmt: skip


def body_timeout(received: int, timeout_s: float) -> dict[str, Any]:
    """The body of the 408 of a request whose body did not all arrive within ``timeout_s``."""
    return {"detail": [field_error(["body"], None, f"the request body did not all arrive within {timeout_s:g} s "
                                   f"({received} bytes received): send the body its Content-Length announces",
                                   "body_timeout")]}  # fmt: skip


#: a 503 for a database that is away for a moment asks the client to try again after this long (seconds)
RETRY_AFTER_S = 1
RETRY_AFTER = (b"retry-after", str(RETRY_AFTER_S).encode())

#: the API-key middleware's refusals (service/security.py), by its verdict: status, message, headers
AUTH_REFUSALS: dict[str, tuple[int, str, list[tuple[bytes, bytes]]]] = {
    "missing": (401, "this request needs an API key: Authorization: Bearer <key>",
                [(b"www-authenticate", b'Bearer realm="lindyn"')]),
    "malformed": (401, "the Authorization header must be: Bearer <key>",
                  [(b"www-authenticate", b'Bearer realm="lindyn", error="invalid_request"')]),
    "invalid": (403, "invalid API key", []),
    "revoked": (403, "this API key was revoked", []),
    "unavailable": (503, "API keys cannot be checked: database unreachable", [RETRY_AFTER]),
}


def auth_refused(verdict: str) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]]:
    """The status, body and headers of a request the API-key check refuses (``verdict``: see
    ``AUTH_REFUSALS``; any other: invalid)."""
    code, message, headers = AUTH_REFUSALS.get(verdict, AUTH_REFUSALS["invalid"])
    return code, {"detail": message}, headers


def bad_content_length() -> dict[str, Any]:
    """The body of the 400 of a Content-Length header that is not a number."""
    return {"detail": "Content-Length is not a number"}


def database_unavailable(exc: BaseException) -> dict[str, Any]:
    """The body of the 503 (sent with ``Retry-After``) of a request whose database connection failed twice."""
    return {"detail": f"the database is unavailable for a moment ({type(exc).__name__}); retry"}


def queue_unreachable(exc: Exception) -> HTTPException:
    """503: the job queue (the broker) cannot be reached, so a run cannot be sent to the workers."""
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"job queue unreachable: {exc}")


def sendable(value: Any) -> Any:
    """``value`` with every string made encodable (a lone surrogate written as ``\\ud800``), so that an error
    that names what it refuses (a key, a field) can always be sent back."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    if isinstance(value, dict):
        return {sendable(k): sendable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sendable(v) for v in value]
    return value


# ---- handlers ---------------------------------------------------------------------------------------------
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
        detail.append(field_error(loc, field, msg, err.get("type")))
    return JSONResponse({"detail": sendable(detail)}, status_code=UNPROCESSABLE)


_UNPARSABLE = "There was an error parsing the body"  # FastAPI's 400 for a body it cannot decode


async def _http_error(request: Request, exc: Exception) -> Any:
    """A body FastAPI cannot parse is a 422 (json_invalid) like every other bad body; the rest as usual, with a
    detail that names odd input (a key holding a lone surrogate) made sendable."""
    from fastapi.exception_handlers import http_exception_handler

    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE:
        return JSONResponse({"detail": [sendable(unparsable_body(exc.__cause__))]}, status_code=UNPROCESSABLE)
    exc.detail = sendable(exc.detail)
    return await http_exception_handler(request, exc)


async def _out_of_range(_: Request, exc: Exception) -> Any:
    """A number too large for the database (an offset of 2**63, ...) is the request's fault: 422, not 500."""
    return JSONResponse({"detail": [field_error(["query"], None, f"a number is out of range: {exc}", "out_of_range")]},
                        status_code=UNPROCESSABLE)  # fmt: skip


def install(app: FastAPI) -> None:
    """The handlers: the framework's 422s in this shape; bad input that the framework or the database would
    turn into a 400 or a 500 answered as a 422."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OverflowError, _out_of_range)
