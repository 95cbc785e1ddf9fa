"""API keys (environment and hashed in the table), the body limit and the run-size limit, in process."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from core import Settings, get_sessionmaker, session_scope
from models import ApiKey
from models.keys import create_key, list_keys, revoke_key
from service.security import ApiKeyAuth
from tests.service.conftest import make_client

BODY = {"d": 10, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 20}
ENV_KEY = "env-key-0123456789"


@pytest.fixture
def keyed(embedded_settings: Settings) -> Iterator[TestClient]:
    with make_client(embedded_settings.model_copy(update={"api_keys": [ENV_KEY]})) as c:
        yield c


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_no_key_configured_everything_open(client: TestClient) -> None:
    assert client.post("/v1/runs", json=BODY).status_code == 202


def test_writes_need_a_key(keyed: TestClient) -> None:
    r = keyed.post("/v1/runs", json=BODY)
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="lindyn"'
    assert r.json() == {"detail": "this request needs an API key: Authorization: Bearer <key>"}
    basic = keyed.post("/v1/runs", json=BODY, headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401 and basic.json() == {"detail": "the Authorization header must be: Bearer <key>"}
    assert basic.headers["www-authenticate"] == 'Bearer realm="lindyn", error="invalid_request"'
    wrong = keyed.post("/v1/runs", json=BODY, headers=_auth("nope"))
    assert wrong.status_code == 403 and "nope" not in wrong.text
    assert wrong.json() == {"detail": "invalid API key"}
    ok = keyed.post("/v1/runs", json=BODY, headers=_auth(ENV_KEY))
    assert ok.status_code == 202, ok.text
    rid = ok.json()["id"]
    # every write route, present and future, is covered: cancel too, and an unknown POST path
    assert keyed.post(f"/v1/runs/{rid}/cancel").status_code == 401
    assert keyed.post("/v1/no-such-route").status_code == 401
    assert keyed.delete(f"/v1/runs/{rid}").status_code == 401
    assert keyed.post(f"/v1/runs/{rid}/cancel", headers=_auth(ENV_KEY)).status_code == 200
    # reads stay open, and so does /health
    assert keyed.get(f"/v1/runs/{rid}").status_code == 200
    assert keyed.get("/v1/runs").status_code == 200
    assert keyed.get("/health").status_code == 200


def test_reads_keyed_by_setting(embedded_settings: Settings) -> None:
    settings = embedded_settings.model_copy(update={"api_keys": [ENV_KEY], "auth_reads": True})
    with make_client(settings) as c:
        assert c.get("/v1/runs").status_code == 401
        assert c.get("/v1/runs", headers=_auth(ENV_KEY)).status_code == 200
        assert c.get("/health").status_code != 401 and c.get("/openapi.json").status_code == 200


def test_stored_keys_hashed_and_revocable(
    client: TestClient, embedded_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    factory = get_sessionmaker(embedded_settings.db_url)
    with session_scope(factory) as s:
        row, key = create_key(s, "alice")
        _, other = create_key(s, "bob")
    with factory() as s:
        stored = s.scalars(select(ApiKey).where(ApiKey.id == row.id)).one()
        assert key not in (stored.salt, stored.key_hash, stored.prefix) and len(stored.key_hash) == 64
        assert stored.key_hash != hashlib.sha256(key.encode()).hexdigest()  # salted
        assert [k.name for k in list_keys(s)] == ["alice", "bob"]
    # a key in the table turns authentication on
    assert client.post("/v1/runs", json=BODY).status_code == 401
    assert client.post("/v1/runs", json=BODY, headers=_auth(key)).status_code == 202
    assert client.post("/v1/runs", json=BODY, headers=_auth(key[:-1] + "x")).status_code == 403
    with session_scope(factory) as s:
        assert revoke_key(s, str(row.id)) == 1
        assert revoke_key(s, str(row.id)) == 0
    r = client.post("/v1/runs", json={**BODY, "seed": 1}, headers=_auth(key))
    assert r.status_code == 403 and "revoked" in r.json()["detail"]
    assert client.post("/v1/runs", json={**BODY, "seed": 1}, headers=_auth(other)).status_code == 202
    with session_scope(factory) as s:  # revoking every key does not open the service
        assert revoke_key(s, other[:12]) == 1
    assert client.post("/v1/runs", json={**BODY, "seed": 2}).status_code == 401
    assert key not in caplog.text and other not in caplog.text


def test_body_size_limit(embedded_settings: Settings) -> None:
    with make_client(embedded_settings.model_copy(update={"max_body_bytes": 200})) as c:
        big = {**BODY, "dynamics": ["gd"], "pad": "x" * 500}
        r = c.post("/v1/runs", json=big)
        assert r.status_code == 413 and r.json()["detail"][0]["type"] == "body_too_large"
        size = int(r.request.headers["content-length"])
        assert r.headers["content-type"] == "application/json"
        assert int(r.headers["content-length"]) == len(r.content)
        assert r.json()["detail"][0]["msg"] == f"request body of {size} bytes is over the limit of 200 bytes"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"d": 10, "rank": 2, '
            yield b" " * 400
            yield b"}"

        r = c.post("/v1/runs", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
        # counted up to the message that passes the limit (the test transport may join the chunks)
        counted = re.fullmatch(r"request body of more than (\d+) bytes is over the limit of 200 bytes",
                               r.json()["detail"][0]["msg"])
        assert counted is not None and 200 < int(counted[1]) <= 422

        def small() -> Iterator[bytes]:
            yield b'{"d": 10, "rank": 2, "gamma_sigma2": -1.5, '
            yield b'"gamma_w": 2.0, "steps": 20}'

        r = c.post("/v1/runs", content=small(), headers={"content-type": "application/json"})
        assert r.status_code == 202, r.text


def test_estimated_run_size_limit(embedded_settings: Settings) -> None:
    # the time estimate is off here (max_run_seconds=0): 20 000 steps at d = 500 would be refused for their time too
    limits = {"max_result_bytes": 10 * 2**20, "max_run_seconds": 0}
    with make_client(embedded_settings.model_copy(update=limits)) as c:
        big = {**BODY, "d": 500, "steps": 20_000, "spectrum_every": 1}
        r = c.post("/v1/runs", json=big)
        assert r.status_code == 422
        (err,) = r.json()["detail"]
        assert err["field"] == "steps" and "MiB" in err["msg"] and "spectrum_every" in err["msg"]
        assert c.post("/v1/runs", json={**big, "spectrum_every": 0, "record_every": 100}).status_code == 202
        assert c.get("/v1/runs").json()["total"] == 1


def test_estimated_peak_memory_limit(embedded_settings: Settings) -> None:
    """LINDYN_MAX_RUN_BYTES: a request whose estimated peak memory is over it is a 422 that states the estimate."""
    with make_client(embedded_settings.model_copy(update={"max_run_bytes": 2 * 2**20})) as c:
        r = c.post("/v1/runs", json={**BODY, "d": 300, "steps": 1})
        assert r.status_code == 422, r.text
        (err,) = r.json()["detail"]
        assert err["field"] == "d" and err["loc"] == ["body", "d"] and "MiB of memory at its peak" in err["msg"]
        assert c.post("/v1/runs", json={**BODY, "d": 20, "steps": 1}).status_code == 202
        assert c.get("/v1/runs").json()["total"] == 1


# ---- the verdict when the database cannot be reached: a session factory that raises; the environment's keys
# are still checked, nothing else is
def _unreachable() -> Any:
    raise OperationalError("SELECT 1", {}, Exception("connection refused"))


def _auth_without_db(keys: list[str]) -> ApiKeyAuth:
    return ApiKeyAuth(app=None, settings=Settings(api_keys=keys), factory=_unreachable)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("keys", "header", "verdict"),
    [(["k1", "k2"], b"Bearer k2", "ok"),
     (["k1"], b"  bearer k1 ", "ok"),  # the scheme in any case, blanks around
     (["k1"], b"Bearer k1 extra", "unavailable"),  # the token is all after the first blank
     (["k1"], b"Bearer k3", "unavailable"),  # not an environment key: the table cannot be read
     (["k1"], b"Basic k1", "unavailable"),
     (["k1"], None, "unavailable"),
     ([], b"Bearer k1", "unavailable"),  # no environment keys: nothing can be checked
     (["k\xe9"], "Bearer k\xe9".encode("latin-1"), "ok")],  # the header is latin-1
)
def test_verdict_without_the_database(keys: list[str], header: bytes | None, verdict: str) -> None:
    assert _auth_without_db(keys)._verdict(header) == verdict


def test_keys_that_cannot_be_checked_answer_503_with_retry_after() -> None:
    """A write while the key table is unreachable: the middleware's 503, its body from service/errors.py and a
    Retry-After, never a 500; the application behind it is not called."""
    import asyncio

    from service import errors

    called: list[object] = []
    sent: list[dict] = []  # type: ignore[type-arg]

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        called.append(scope)

    async def send(message):  # type: ignore[no-untyped-def]
        sent.append(message)

    auth = ApiKeyAuth(app=app, settings=Settings(api_keys=["k1"]), factory=_unreachable)  # type: ignore[arg-type]
    scope = {"type": "http", "method": "POST", "path": "/v1/runs", "headers": [(b"authorization", b"Bearer k3")]}
    asyncio.run(auth(scope, None, send))  # type: ignore[arg-type]
    assert not called
    start, body = sent
    assert start["status"] == 503
    assert dict(start["headers"])[b"retry-after"] == str(errors.RETRY_AFTER_S).encode() == b"1"
    assert json.loads(body["body"]) == errors.auth_refused("unavailable")[1] == {
        "detail": "API keys cannot be checked: database unreachable"}
