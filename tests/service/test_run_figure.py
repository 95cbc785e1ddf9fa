"""GET /v1/runs/{id}/figure: the paper's Figure 1 for a run the worker's task executed (called here)."""

from __future__ import annotations

import io
import uuid
import xml.etree.ElementTree as ET

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.orm import Session

from core import Settings, make_engine
from dynamics import SimulationRequest, simulate
from models import Run
from service.figures import stored_spectra
from workers.tasks import execute_run

BODY = {"d": 12, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 15, "spectrum_every": 2,
        "dynamics": ["gd", "self_consistent"]}
SVG = "{http://www.w3.org/2000/svg}"


def test_figure_of_a_finished_run_in_png_and_svg(client: TestClient, embedded_settings: Settings) -> None:
    rid = client.post("/v1/runs", json=BODY).json()["id"]
    assert execute_run(uuid.UUID(rid), embedded_settings) == "succeeded"

    png = client.get(f"/v1/runs/{rid}/figure")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    image.load()
    assert image.format == "PNG" and image.size[0] > 600
    assert client.get(f"/v1/runs/{rid}/figure", params={"format": "png"}).content == png.content

    svg = client.get(f"/v1/runs/{rid}/figure", params={"format": "svg"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(svg.content)
    texts = "\n".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))
    for label in ("GD: train error", "self-consistent: test error", "GD: s_1", "self-consistent: s_2",
                  "GD: s_3..s_12 (band)", "threshold σ²w =", "d = 12", "k = 2"):
        assert label in texts, label
    ids = {el.get("id") for el in root.iter()}
    assert {"threshold", "band-gd", "singular-value-self_consistent-2", "error-gd-test"} <= ids


def test_stored_spectra_are_the_simulated_ones(client: TestClient, embedded_settings: Settings) -> None:
    rid = client.post("/v1/runs", json=BODY).json()["id"]
    assert execute_run(uuid.UUID(rid), embedded_settings) == "succeeded"
    expected = simulate(SimulationRequest.model_validate(BODY))
    engine = make_engine(embedded_settings.db_url)
    with Session(engine) as session:
        run = session.get(Run, uuid.UUID(rid))
        assert run is not None
        spectra = stored_spectra(session, run)
    engine.dispose()
    assert list(spectra) == ["gd", "self_consistent"]
    for name, (steps, values) in spectra.items():
        np.testing.assert_array_equal(steps, expected.trajectories[name].spectrum_steps)
        np.testing.assert_array_equal(values, expected.trajectories[name].spectrum)


def test_figure_errors(client: TestClient) -> None:
    assert client.get(f"/v1/runs/{uuid.uuid4()}/figure").status_code == 404
    assert client.get("/v1/runs/not-a-uuid/figure").status_code == 404
    rid = client.post("/v1/runs", json=BODY).json()["id"]
    queued = client.get(f"/v1/runs/{rid}/figure")
    assert queued.status_code == 409 and "queued" in queued.json()["detail"]
    bad = client.get(f"/v1/runs/{rid}/figure", params={"format": "jpeg"})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["field"] == "format"
