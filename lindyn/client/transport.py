"""HTTP to one lindyn service, with the one retry path every call goes through: connection errors and
502/503/504 are retried ``retries`` times, waiting ``backoff * 2**attempt`` seconds (at most ``max_backoff``,
with jitter, or the answer's Retry-After) in between; any other error status becomes its LindynError at once."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from lindyn.client.errors import RETRY_STATUSES, LindynError, ServiceUnavailable, error_for

T = TypeVar("T")


@dataclass(frozen=True)
class Event:
    """One server-sent event: its type (``status``, ``rows``, ``reset``, ``end``), its data (JSON, decoded) and
    its id (what a reconnection sends as Last-Event-ID)."""

    event: str
    data: Any
    id: str | None = None


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """The events of a text/event-stream, line by line (comment lines and ``retry:`` skipped; ``data:`` lines
    of one event joined with newlines, then decoded as JSON)."""
    kind, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield Event(kind, json.loads("\n".join(data)), event_id)
            kind, event_id, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            kind = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value


class _Retry(Exception):
    """An answer worth asking again (502/503/504)."""

    def __init__(self, error: LindynError, response: httpx.Response) -> None:
        super().__init__(error.message)
        self.error = error
        self.response = response


class Transport:
    def __init__(
        self,
        url: str,
        api_key: str | None,
        timeout: float,
        *,
        retries: int,
        backoff: float,
        max_backoff: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers, transport=transport)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, retry_unsent_only: bool = False, **kwargs: Any) -> httpx.Response:
        """One API call; the response if 2xx, else the matching LindynError. ``retry_unsent_only``: retry only
        when the request cannot have reached the server (connect errors), e.g. a submission with force."""

        def attempt() -> httpx.Response:
            return _checked(self._http.request(method, path, **kwargs))

        return self._retrying(attempt, retry_unsent_only=retry_unsent_only)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def download(self, path: str, params: list[tuple[str, Any]], out: Path) -> Path:
        """Stream a GET to a file (written to a temporary name first, so a failure leaves no partial file)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")

        def attempt() -> Path:
            with self._http.stream("GET", path, params=params) as response:
                if response.status_code >= 400:
                    response.read()
                _checked(response)
                with open(tmp, "wb") as f:
                    for chunk in response.iter_bytes():
                        f.write(chunk)
            tmp.replace(out)
            return out

        try:
            return self._retrying(attempt)
        finally:
            tmp.unlink(missing_ok=True)

    def events(self, path: str, *, end: str = "end") -> Iterator[Event]:
        """The server-sent events of ``path`` until an event of type ``end`` (yielded last). A connection
        that drops (or ends early) is opened again with ``Last-Event-ID``, so nothing is sent twice or missed;
        each (re)connection goes through the retry path, and more than ``retries`` drops in a row without an
        event in between raise ServiceUnavailable."""
        last_id: str | None = None
        drops = 0
        while True:
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}

            def connect() -> tuple[Any, httpx.Response]:
                stream = self._http.stream("GET", path, headers=headers)
                response = stream.__enter__()
                if response.status_code >= 400:
                    response.read()
                    stream.__exit__(None, None, None)
                    _checked(response)
                return stream, response

            stream, response = self._retrying(connect)
            try:
                for event in parse_events(response.iter_lines()):
                    drops = 0
                    if event.id is not None:
                        last_id = event.id
                    yield event
                    if event.event == end:
                        return
            except httpx.TransportError as exc:
                error: Exception = exc
            else:
                error = ServiceUnavailable(f"the event stream of {path} ended before its end event")
            finally:
                stream.__exit__(None, None, None)
            if drops >= self.retries:
                raise ServiceUnavailable(f"the event stream of {path} keeps dropping: {error}", detail=str(error))
            self._sleep_before_retry(drops, None)
            drops += 1

    def _retrying(self, attempt: Callable[[], T], *, retry_unsent_only: bool = False) -> T:
        """``attempt()`` until it returns, retried on connection errors and 502/503/504 (see the module)."""
        last: Exception | None = None
        for i in range(self.retries + 1):
            response: httpx.Response | None = None
            try:
                return attempt()
            except httpx.TransportError as exc:
                last = exc
                if retry_unsent_only and not isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                    break
            except _Retry as retry:
                last, response = retry.error, retry.response
            if i < self.retries:
                self._sleep_before_retry(i, response)
        if isinstance(last, LindynError):
            raise last
        raise ServiceUnavailable(
            f"cannot reach the lindyn service at {self.url}: {type(last).__name__}: {last}", detail=str(last)
        ) from last

    def _sleep_before_retry(self, attempt: int, response: httpx.Response | None) -> None:
        delay = min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)  # noqa: S311
        if response is not None and response.headers.get("retry-after", "").isdigit():
            delay = min(self.max_backoff, float(response.headers["retry-after"]))
        time.sleep(delay)


def _checked(response: httpx.Response) -> httpx.Response:
    """The response if it is not an error; else its LindynError raised (wrapped in _Retry when retried)."""
    if response.status_code < 400:
        return response
    error = error_for(response)
    if response.status_code in RETRY_STATUSES:
        raise _Retry(error, response)
    raise error
