from __future__ import annotations

from importlib.metadata import version

from fastapi.testclient import TestClient

from core import Settings
from tests.service.conftest import make_client


def test_health_ok(client: TestClient) -> None:
    client.post("/v1/runs", json={"d": 4, "rank": 1, "gamma_sigma2": -1, "gamma_w": 2})  # creates the broker folder
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "database": {"ok": True, "detail": "sqlite"},
                        "broker": {"ok": True, "detail": "filesystem"}}


def test_health_names_an_unreachable_broker(embedded_settings: Settings) -> None:
    with make_client(embedded_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})) as c:
        r = c.get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "unavailable" and body["database"]["ok"]
    assert not body["broker"]["ok"] and body["broker"]["detail"]


def test_health_names_a_missing_broker_folder(client: TestClient) -> None:
    r = client.get("/health")  # nothing created the filesystem broker's folders yet
    assert r.status_code == 503 and "broker folder" in r.json()["broker"]["detail"]


def test_health_names_an_unreachable_database(embedded_settings: Settings) -> None:
    from service.main import create_app

    settings = embedded_settings.model_copy(
        update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none", "broker_url": "redis://127.0.0.1:1/0"}
    )
    with TestClient(create_app(settings)) as c:
        r = c.get("/health")
    assert r.status_code == 503
    assert not r.json()["database"]["ok"] and "OperationalError" in r.json()["database"]["detail"]


def test_version(client: TestClient) -> None:
    assert client.get("/v1/version").json() == {"name": "lindyn", "version": version("lindyn"), "api": "v1"}
