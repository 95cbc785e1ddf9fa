"""API keys and request limits, applied once to the whole app (pure ASGI middleware), so that every route,
today's and tomorrow's, is covered without any router knowing.

- Keys are configured by LINDYN_API_KEYS (comma-separated) and/or the ``api_keys`` table (``lindyn keys
  create|list|revoke``; only salted hashes are stored, see models/keys.py). When any key is configured,
  every write (POST, PUT, PATCH, DELETE) needs ``Authorization: Bearer <key>``: 401 (with
  ``WWW-Authenticate``) without one, 403 for a wrong or revoked key. Reads stay open unless
  LINDYN_AUTH_READS=true. ``/health``, the API's documentation and the dashboard's pages (GET /ui/...) are always open. With no key configured
  at all, nothing is checked (the embedded default; ``lindyn serve`` says so when it starts).
- Keys are compared in constant time (``hmac.compare_digest``) and never logged or echoed.
- A request body over LINDYN_MAX_BODY_BYTES is refused with 413 before any route reads it (announced by
  Content-Length, or counted as it streams in); one not all sent LINDYN_BODY_TIMEOUT_S after the request began
  is answered 408 and its connection closed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from core import Settings
from models.keys import any_stored_key, check_key
from service import errors

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: always open: liveness, the description of the API, and the dashboard's pages and assets (they hold no data:
#: their scripts read the API with the key the browser was given)
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/"})
OPEN_PREFIXES: tuple[str, ...] = ("/ui/",)


async def send_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                    *(headers or [])],
    })
    await send({"type": "http.response.body", "body": payload})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers", ()):
        if k.lower() == name:
            return bytes(v)
    return None


class ApiKeyAuth:
    """401/403 for writes (and reads, when configured) without a valid key, once any key is configured."""

    def __init__(self, app: ASGIApp, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.app = app
        self.settings = settings
        self.factory = factory

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guarded(scope):
            return await self.app(scope, receive, send)
        header = _header(scope, b"authorization")
        verdict = await run_in_threadpool(self._verdict, header)
        if verdict == "open" or verdict == "ok":
            return await self.app(scope, receive, send)
        return await send_json(send, *errors.auth_refused(verdict))

    def _guarded(self, scope: Scope) -> bool:
        path = scope.get("path", "")
        if path in OPEN_PATHS or (path.startswith(OPEN_PREFIXES) and scope.get("method", "GET").upper() == "GET"):
            return False
        return scope.get("method", "GET").upper() in WRITE_METHODS or self.settings.auth_reads

    def _verdict(self, header: bytes | None) -> str:
        """open (no key configured), ok, missing, malformed, invalid, revoked or unavailable."""
        env_keys = self.settings.api_keys
        try:
            with self.factory() as session:
                if not env_keys and not any_stored_key(session):
                    return "open"
                if header is None:
                    return "missing"
                scheme, _, token = header.decode("latin-1").strip().partition(" ")
                token = token.strip()
                if scheme.lower() != "bearer" or not token:
                    return "malformed"
                return check_key(session, token, env_keys)
        except SQLAlchemyError:
            if env_keys and header is not None:  # the environment's keys can still be checked
                scheme, _, token = header.decode("latin-1").strip().partition(" ")
                if scheme.lower() == "bearer" and check_key(None, token.strip(), env_keys) == "ok":
                    return "ok"
            return "unavailable"


class BodySizeLimit:
    """413 for a request body larger than ``max_bytes``; 408 (and the connection closed) for a body that has
    not all arrived ``timeout_s`` after the request began (a Content-Length larger than what is sent would
    otherwise hold the connection for ever). The body is read here, at most ``max_bytes``, and handed on."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    async def _too_large(self, send: Send, size: str) -> None:
        await send_json(send, 413, errors.body_too_large(size, self.max_bytes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = _header(scope, b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                return await send_json(send, 400, errors.bad_content_length())
            if n > self.max_bytes:
                return await self._too_large(send, str(n))
            if n == 0:
                return await self.app(scope, receive, send)
        elif scope.get("method", "GET").upper() not in WRITE_METHODS:
            return await self.app(scope, receive, send)
        # read the body (announced, or chunked), counting, before the deadline; then hand it on
        messages: list[Message] = []
        total = 0
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                return await send_json(send, 408, errors.body_timeout(total, self.timeout_s),
                                       [(b"connection", b"close")])
            if message["type"] != "http.request":
                messages.append(message)
                break
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                return await self._too_large(send, f"more than {total}")
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def install(app: Any, settings: Settings) -> None:
    """API keys inside, the body limit around them (so an oversized write is refused before a key lookup)."""
    app.add_middleware(ApiKeyAuth, settings=settings, factory=app.state.sessionmaker)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
