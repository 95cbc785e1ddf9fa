"""GET /v1/sweeps/{id}/phase-diagram: the heat map of a sweep's table after part of it ran (the workers'
batch task called here): PNG decoded, SVG parsed for the theory's lines and the missing points."""

from __future__ import annotations

import io
import uuid
import xml.etree.ElementTree as ET

from fastapi.testclient import TestClient
from PIL import Image

from core import Settings
from workers.tasks import execute_batch

BASE = {"d": 12, "rank": 2, "steps": 20, "dynamics": ["gd", "self_consistent"], "stopping": "paper"}
AXES = {"gamma_w": {"values": [1.5, 2.0, 2.5]}, "gamma_sigma2": {"linspace": [-2.0, -1.0, 3]}}
SVG = "{http://www.w3.org/2000/svg}"


def texts_and_ids(data: bytes) -> tuple[str, set[str | None]]:
    root = ET.fromstring(data)
    texts = "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    return texts, {el.get("id") for el in root.iter()}


def drawn(ids: set[str | None]) -> set[str]:
    """The ids lindyn gives its own elements (heat maps, theory lines), not matplotlib's."""
    return {i for i in ids if i and i.startswith(("heat-map-", "theory-"))}


def half_run_sweep(client: TestClient, settings: Settings, axes: dict = AXES) -> tuple[str, list[str]]:
    """A sweep with its first few runs executed and the rest still queued; (sweep id, executed run ids)."""
    r = client.post("/v1/sweeps", json={"base": BASE, "axes": axes, "name": "figure-test"})
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    ids = [row for row in client.get(f"/v1/sweeps/{sid}/table").json()["run_id"]][:4]
    outcome = execute_batch([uuid.UUID(i) for i in ids], settings)
    assert outcome == {i: "succeeded" for i in ids}, outcome  # no point of these grids diverges
    return sid, ids


def test_phase_diagram_png_and_svg_with_missing_points(client: TestClient, embedded_settings: Settings) -> None:
    sid, _ = half_run_sweep(client, embedded_settings)
    png = client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"metric": "min_test_error"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    image.load()
    assert image.format == "PNG" and image.size[0] > 400

    svg = client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"metric": "gd.min_test_error", "format": "svg"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    texts, ids = texts_and_ids(svg.content)
    # gamma_sigma2 is x and gamma_w is y whatever the axes' order in the request, with the theory's lines
    assert "γ_σ² (σ² = d^γ_σ²)" in texts and "γ_w (w = d^γ_w)" in texts
    assert "active / lazy: γ_σ² + γ_w = 1 (active below)" in texts
    assert "infinite noise: γ_w + 2 γ_σ² = 0 (theory holds below)" in texts
    # below the grid: not drawn, so not in the legend; the panel says where it is
    assert "outside the grid: underparametrised: w = k (γ_w = ln k / ln d = 0.279)" in texts
    assert "missing (not finished)" in texts and "4 of 9 grid points finished (d = 12, k = 2)" in texts
    assert drawn(ids) == {"theory-active-lazy", "theory-infinite-noise", "theory-outside-grid",
                          "heat-map-gd.min_test_error"}

    sc = client.get(f"/v1/sweeps/{sid}/phase-diagram",
                    params={"metric": "stable_rank_at_min", "dynamics": "self_consistent", "format": "svg"})
    assert sc.status_code == 200
    assert drawn(texts_and_ids(sc.content)[1]) == {"theory-active-lazy", "theory-infinite-noise",
                                                   "theory-outside-grid", "heat-map-self_consistent.stable_rank_at_min"}

    four = client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"metric": "figure2", "format": "svg"})
    texts, ids = texts_and_ids(four.content)
    for title in ("minimal test error", "stable rank at the minimal test error",
                  "iterations until the minimal test error", "log max distance GD vs self-consistent"):
        assert title in texts, title
    assert "heat-map-log_max_distance" in ids


def test_phase_diagram_errors(client: TestClient, embedded_settings: Settings) -> None:
    assert client.get(f"/v1/sweeps/{uuid.uuid4()}/phase-diagram").status_code == 404
    sid = client.post("/v1/sweeps", json={"base": BASE, "axes": AXES}).json()["id"]
    unknown = client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"metric": "nonsense"})
    assert unknown.status_code == 422
    (err,) = unknown.json()["detail"]
    assert err["field"] == "metric" and "gd.min_test_error" in err["msg"] and "figure2" in err["msg"]
    assert client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"metric": "stop_reason"}).status_code == 422
    assert client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"format": "jpeg"}).status_code == 422
    # nothing finished yet: every point missing, still a figure
    assert client.get(f"/v1/sweeps/{sid}/phase-diagram").status_code == 200

    three = client.post("/v1/sweeps", json={"base": BASE, "axes": {**AXES, "d": {"values": [8, 12]}}}).json()["id"]
    r = client.get(f"/v1/sweeps/{three}/phase-diagram")
    assert r.status_code == 422 and "slice the others with at=axis:value" in r.json()["detail"][0]["msg"]


def test_other_axes_draw_without_the_theory_lines(client: TestClient, embedded_settings: Settings) -> None:
    axes = {"lr_constant": {"values": [5, 50]}, "seed": {"values": [0, 1]}}
    r = client.post("/v1/sweeps", json={"base": {**BASE, "gamma_sigma2": -1.5, "gamma_w": 2.0}, "axes": axes,
                                        "replicates": []})  # seed as an axis of its own, not averaged over
    assert r.status_code == 202, r.text
    sid = r.json()["id"]
    ids = client.get(f"/v1/sweeps/{sid}/table").json()["run_id"]
    execute_batch([uuid.UUID(i) for i in ids], embedded_settings)
    svg = client.get(f"/v1/sweeps/{sid}/phase-diagram", params={"format": "svg"})
    assert svg.status_code == 200
    texts, ids_ = texts_and_ids(svg.content)
    assert "lr_constant" in texts and "seed" in texts and "theory-active-lazy" not in ids_
    assert "missing (not finished)" not in texts
