"""lindyn.Client without a server (httpx.MockTransport): retries with backoff on connection errors and
502/503/504 but never on 4xx, the API's errors as exceptions with its message, paging, the bodies sent.
(Against the real service: tests/e2e/test_lab_tools.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lindyn import Client, LindynError, NotFound, ValidationFailed
from lindyn.client import Conflict, ServiceUnavailable, Unauthorized

RUN = {"id": "11111111-1111-1111-1111-111111111111", "status": "queued"}


def _client(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> Client:
    return Client("http://lindyn.test", transport=httpx.MockTransport(handler), backoff=0.001, **kw)


def test_retries_502_503_504_and_connection_errors_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr("lindyn.client.transport.time.sleep", sleeps.append)
    answers: list[Any] = [httpx.ConnectError("refused"), 502, 503, 504]

    def handler(request: httpx.Request) -> httpx.Response:
        if answers:
            a = answers.pop(0)
            if isinstance(a, Exception):
                raise a
            return httpx.Response(a, json={"detail": "busy"})
        return httpx.Response(200, json={**RUN, "status": "succeeded"})

    c = Client("http://lindyn.test", transport=httpx.MockTransport(handler), retries=4, backoff=0.5, max_backoff=3)
    assert c.run(RUN["id"]).status == "succeeded"
    assert len(sleeps) == 4
    # exponential (with jitter between half and all of it), capped
    for attempt, s in enumerate(sleeps):
        full = min(3, 0.5 * 2**attempt)
        assert full / 2 <= s <= full


def test_gives_up_after_the_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lindyn.client.transport.time.sleep", lambda s: None)
    calls = []

    def refused(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("Connection refused")

    with pytest.raises(ServiceUnavailable, match="cannot reach the lindyn service at http://lindyn.test"):
        _client(refused, retries=2).run("x")
    assert len(calls) == 3

    def unavailable(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"detail": "job queue unreachable: down"})

    calls.clear()
    with pytest.raises(ServiceUnavailable, match="job queue unreachable") as err:
        _client(unavailable, retries=1).submit({"d": 5})
    assert err.value.status_code == 503 and len(calls) == 2


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (404, {"detail": "run x not found"}, NotFound, "run x not found"),
        (409, {"detail": "run x is queued: it has no trajectory"}, Conflict, "no trajectory"),
        (401, {"detail": "this request needs an API key"}, Unauthorized, "API key"),
        (400, {"detail": "bad"}, LindynError, "bad"),
        (500, "Internal Server Error", LindynError, "Internal Server Error"),
    ],
)
def test_4xx_and_500_are_not_retried_and_carry_the_message(
    status: int, body: Any, cls: type[LindynError], message: str
) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(status, json=body) if isinstance(body, dict) else httpx.Response(status, text=body)

    with pytest.raises(cls, match=message) as err:
        _client(handler).run("x")
    assert err.value.status_code == status and len(calls) == 1


def test_validation_errors_name_their_fields() -> None:
    detail = [{"loc": ["body", "rank"], "field": "rank", "msg": "rank must be between 1 and d", "type": "value_error"},
              {"loc": ["body", "d"], "field": "d", "msg": "too big", "type": "value_error"}]  # fmt: skip
    c = _client(lambda r: httpx.Response(422, json={"detail": detail}))
    with pytest.raises(ValidationFailed) as err:
        c.submit(d=5, rank=9)
    assert err.value.fields == {"rank": "rank must be between 1 and d", "d": "too big"}
    assert str(err.value) == "rank: rank must be between 1 and d; d: too big"
    assert err.value.errors == detail


def test_submit_body_labels_force_and_api_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=RUN)

    c = Client("http://lindyn.test/", api_key="k3y", transport=httpx.MockTransport(handler))
    run = c.submit({"d": 10, "rank": 2}, rank=3, name="n", tags={"a": "b"}, force=True)
    assert run.id == RUN["id"] and run.status == "queued"
    (req,) = seen
    assert json.loads(req.content) == {"d": 10, "rank": 3, "name": "n", "tags": {"a": "b"}}
    assert req.url.params["force"] == "true" and req.headers["authorization"] == "Bearer k3y"
    with pytest.raises(TypeError):
        c.submit(42)


def test_runs_follow_the_cursor_and_stop_at_limit() -> None:
    pages = {None: (["a", "b"], "c1"), "c1": (["c", "d"], "c2"), "c2": (["e"], None)}
    seen: list[httpx.QueryParams] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        ids, nxt = pages[request.url.params.get("cursor")]
        items = [{"id": i, "status": "succeeded"} for i in ids]
        return httpx.Response(200, json={"items": items, "total": 5, "limit": 2, "offset": 0, "next_cursor": nxt})

    c = _client(handler)
    assert [r.id for r in c.runs(page_size=2, status=["queued", "running"], tags={"k": "v"}, d=5)] == list("abcde")
    assert seen[0].get_list("status") == ["queued", "running"] and seen[0]["tag"] == "k=v" and seen[0]["d"] == "5"
    seen.clear()
    assert [r.id for r in c.runs(page_size=2, limit=3)] == ["a", "b", "c"]
    assert [p["limit"] for p in seen] == ["2", "1"]
    assert "offset" not in seen[1]  # a cursor, not an offset


def test_sweep_body_labels() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"id": RUN["id"], "total": 2, "tasks": 1})

    c = _client(handler)
    c.sweep({"d": 10}, {"seed": [0, 1]}, name="n", tags={"project": "phase"}, chunk_size=4)
    c.sweep({"d": 10}, {"seed": [0, 1]})
    labelled, bare = (json.loads(r.content) for r in seen)
    assert labelled == {"base": {"d": 10}, "axes": {"seed": {"values": [0, 1]}}, "name": "n",
                        "tags": {"project": "phase"}, "chunk_size": 4}  # fmt: skip
    assert bare == {"base": {"d": 10}, "axes": {"seed": {"values": [0, 1]}}}


def test_sweeps_page_by_offset_and_stop_at_limit() -> None:
    ids = list("abcde")
    seen: list[httpx.QueryParams] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        offset, limit = int(request.url.params.get("offset", 0)), int(request.url.params["limit"])
        items = [{"id": i, "status": "queued", "name": "n", "tags": {"k": "v"}} for i in ids[offset : offset + limit]]
        return httpx.Response(200, json={"items": items, "total": len(ids), "limit": limit, "offset": offset})

    c = _client(handler)
    found = list(c.sweeps(page_size=2, name="n", tags={"k": "v"}, tag=["x"]))
    assert [s.id for s in found] == ids and len(seen) == 3
    assert [p.get("offset") for p in seen] == [None, "2", "4"]
    assert seen[0]["name"] == "n" and sorted(seen[0].get_list("tag")) == ["k=v", "x"]
    assert found[0].as_dict()["tags"] == {"k": "v"} and found[0].status == "queued"
    seen.clear()
    assert [s.id for s in c.sweeps(page_size=2, limit=3)] == ["a", "b", "c"]
    assert [(p["limit"], p.get("offset")) for p in seen] == [("2", None), ("1", "2")]


@pytest.mark.parametrize("kind", ["run", "sweep"])
def test_wait_polls_at_most_max_poll_apart(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backoff of Run.wait / Sweep.wait grows to MAX_POLL_S and no further: the end of a long run or
    sweep is seen at most that late."""
    from lindyn.client import MAX_POLL_S

    sleeps: list[float] = []
    monkeypatch.setattr("lindyn.client.resources.time.sleep", sleeps.append)
    gets = {"n": 0}
    sweep = {"id": RUN["id"], "status": "running", "total": 4, "counts": {"queued": 4}}

    end = "succeeded" if kind == "run" else "finished"

    def handler(request: httpx.Request) -> httpx.Response:
        gets["n"] += 1
        assert gets["n"] < 100, "wait did not stop at the terminal status"
        status = end if gets["n"] > 40 else "running"
        return httpx.Response(200, json={**(RUN if kind == "run" else sweep), "status": status})

    c = _client(handler)
    resource = c.run(RUN["id"]) if kind == "run" else c.get_sweep(RUN["id"])
    resource.wait(progress=False)
    assert resource.status == end
    assert len(sleeps) >= 30
    assert max(sleeps) == MAX_POLL_S <= 0.5
    assert sleeps[0] < MAX_POLL_S


class _Dropping(httpx.SyncByteStream):
    """An event stream that sends ``chunks`` and then drops the connection (a read error)."""

    def __init__(self, chunks: list[bytes], drop: bool) -> None:
        self.chunks, self.drop = chunks, drop

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield from self.chunks
        if self.drop:
            raise httpx.ReadError("connection reset")


def test_watch_reconnects_with_last_event_id_and_updates_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream dropped mid-way is opened again with Last-Event-ID (the last id received), through the retry
    path (a 503 on the way is retried); every event comes once, the status events update the run."""
    monkeypatch.setattr("lindyn.client.transport.time.sleep", lambda s: None)
    seen: list[str | None] = []
    status = b'id: 5\nevent: status\ndata: {"id": "r1", "status": "running", "request": {}}\n\n'
    rows = b'id: 7\nevent: rows\ndata: {"dynamics": ["gd"], "step": [0]}\n\n'
    rest = (b": keepalive\n\nid: 9\nevent: rows\ndata: {\"dynamics\": [\"gd\"], \"step\": [10]}\n\n"
            b'id: 9\nevent: status\ndata: {"id": "r1", "status": "succeeded", "request": {}}\n\n'
            b'id: 9\nevent: end\ndata: {"status": "succeeded"}\n\n')

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("last-event-id"))
        assert request.headers["accept"] == "text/event-stream"
        if len(seen) == 1:  # the first connection drops after two events, the second part of one
            return httpx.Response(200, stream=_Dropping([status, rows, b"id: 8\nevent: ro"], drop=True))
        if len(seen) == 2:
            return httpx.Response(503, json={"detail": "restarting"})
        return httpx.Response(200, stream=_Dropping([rest], drop=False))

    from lindyn.client import Run

    r = Run(_client(handler), "r1")
    events = list(r.watch())
    assert seen == [None, "7", "7"]  # reopened after the last whole event, the 503 retried
    assert [(e.event, e.id) for e in events] == [("status", "5"), ("rows", "7"), ("rows", "9"), ("status", "9"),
                                                 ("end", "9")]
    assert [e.data["step"] for e in events if e.event == "rows"] == [[0], [10]]
    assert r.status == "succeeded"


def test_watch_gives_up_when_the_stream_keeps_dropping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("lindyn.client.transport.time.sleep", lambda s: None)
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, stream=_Dropping([b": keepalive\n\n"], drop=True))

    from lindyn.client import Run, ServiceUnavailable

    with pytest.raises(ServiceUnavailable, match="keeps dropping"):
        list(Run(_client(handler, retries=2), "r1").watch())
    assert len(calls) == 3  # the first connection and two more
