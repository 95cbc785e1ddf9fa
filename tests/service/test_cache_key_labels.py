"""Labels (name, tags) are not part of a run's identity: the same request under other labels is answered with
the first run (200), whose key and labels stay as they were; a change of a request field is a new run (202)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dynamics import SimulationRequest

BODY = {"d": 6, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 10}


def test_labels_do_not_change_the_key(client: TestClient) -> None:
    first = client.post("/v1/runs", json={**BODY, "name": "first", "tags": {"who": "a"}})
    assert first.status_code == 202, first.text
    again = client.post("/v1/runs", json={**BODY, "name": "second", "tags": {"who": "b", "extra": "x"}})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    run = client.get(f"/v1/runs/{first.json()['id']}").json()
    assert run["cache_key"] == SimulationRequest(**BODY).cache_key()
    assert (run["name"], run["tags"]) == ("first", {"who": "a"})


def test_a_request_field_changes_the_run(client: TestClient) -> None:
    first = client.post("/v1/runs", json=BODY).json()
    for change in ({"dtype": "float32"}, {"task_seed": 1}, {"steps": 11}):
        r = client.post("/v1/runs", json={**BODY, **change})
        assert r.status_code == 202, (change, r.text)
        assert r.json()["id"] != first["id"]
