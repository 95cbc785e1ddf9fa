"""The dashboard in a real browser (Debian's chromium driven by Playwright), against a real API and worker:
clicked through as a person would. Every test also checks that no request left 127.0.0.1 and that the
browser's console had no errors. Locally without chromium (or Playwright) they skip; under CI=true they fail.

LINDYN_SCREENSHOTS=<folder> saves a screenshot of each page there (docs/screenshots/ in the README).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from core import Settings
from core.jobs import ensure_broker_folders
from tests.conftest import CI
from tests.e2e.conftest import LINDYN, Api, Processes, clean_env, start_api, start_worker, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = os.environ.get("LINDYN_SCREENSHOTS")
KEY = "dashboard-key-0123456789"
RUN = {"d": 12, "rank": 2, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 60, "spectrum_every": 5,
       "dynamics": ["gd", "self_consistent"]}


def _missing(what: str) -> None:
    if CI:
        pytest.fail(f"{what}: the dashboard's browser tests need it (.ci/run installs it)")
    pytest.skip(f"{what} (apt-get install chromium; pip install playwright)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium")
    if chromium is None:
        _missing("chromium is not installed")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A browser page that records every request's host and every console error."""

    def __init__(self, browser: Any, base: str) -> None:
        self.context = browser.new_context(base_url=base, viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(60_000)  # a loaded 2-core machine: Plotly.js alone is 4.8 MB to parse
        self.hosts: set[str] = set()
        self.errors: list[str] = []
        self.page.on("request", self._request)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _request(self, request: Any) -> None:
        url = request.url
        if url.startswith("data:"):
            return
        if url.startswith("blob:"):  # blob:http://127.0.0.1:port/uuid, made by the page itself
            url = url[len("blob:"):]
        self.hosts.add(urlsplit(url).hostname or url)

    def check(self, answered: tuple[int, ...] = ()) -> None:
        """Nothing left 127.0.0.1 and the console stayed clean, but for the browser's own note of a response
        with a status in ``answered`` (one the page expects, and shows: a 422, a 401)."""
        assert self.hosts <= {"127.0.0.1"}, self.hosts
        expected = tuple(f"the server responded with a status of {code} " for code in answered)
        errors = [e for e in self.errors if not (e.startswith("Failed to load resource") and any(x in e for x in expected))]
        assert errors == [], errors

    def shot(self, name: str) -> None:
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=False)

    def close(self) -> None:
        self.context.close()


def migrated(env: dict[str, str]) -> dict[str, str]:
    done = subprocess.run([*LINDYN, "migrate"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An API and a worker on the embedded default (SQLite file + filesystem broker), for the module."""
    folder = tmp_path_factory.mktemp("dashboard")
    procs = Processes(folder)
    env = migrated(clean_env(LINDYN_DATA_DIR=str(folder / "data"), LINDYN_PROGRESS_INTERVAL_S="0.1",
                             LINDYN_EVENTS_POLL_INTERVAL_S="0.2"))
    try:
        start_worker(procs, "worker", env)
        yield start_api(procs, env)
    finally:
        procs.stop_all()


@pytest.fixture
def page(browser: Any, server: Api) -> Iterator[Page]:
    p = Page(browser, str(server.http.base_url).rstrip("/"))
    try:
        yield p
    finally:  # shown when the test fails
        shown = p.page.evaluate("() => document.getElementById('message')?.textContent")
        print(f"console errors: {p.errors}\nhosts: {p.hosts}\nmessage: {shown!r}")
        p.close()


def traces(page: Page, div: str) -> int:
    return int(page.page.evaluate(f"() => (document.getElementById('{div}').data || []).length"))


def test_submit_a_run_see_progress_and_figure_1(page: Page, server: Api) -> None:
    p = page.page
    p.goto("/")
    assert p.url.endswith("/ui/runs")
    p.get_by_role("link", name="New run").click()
    p.wait_for_selector("#f-d")
    for field in ("d", "rank", "gamma_sigma2", "gamma_w", "steps", "spectrum_every"):
        p.fill(f"#f-{field}", str(RUN[field]))
    p.check("#f-dynamics input[value=gd]")
    p.check("#f-dynamics input[value=self_consistent]")
    p.fill("#f-name", "browser-run")
    p.fill("#f-tags", "by=browser")
    page.shot("new-run")
    p.click("#submit")
    p.wait_for_url(re.compile(r"/ui/runs/[0-9a-f-]{36}$"), wait_until="commit")
    run_id = p.url.rsplit("/", 1)[1]
    p.wait_for_selector("#progress")  # progress while it runs, full once it finished
    p.wait_for_function("() => document.getElementById('status').textContent === 'succeeded'")
    assert p.text_content("#progress-text") == "step 60 of 60"
    p.wait_for_function("() => (document.getElementById('plot-errors').data || []).length === 4")
    p.wait_for_function("() => (document.getElementById('plot-spectrum').data || []).length > 0")
    names = p.evaluate("() => document.getElementById('plot-errors').data.map(t => t.name + ':' + t.line.dash)")
    assert "test error, GD:solid" in names and "test error, self-consistent:dash" in names
    assert p.evaluate("() => document.getElementById('plot-errors').layout.yaxis.type") == "log"
    # the top k = 2 singular values of each dynamics in colour, the rest as a band (two edges), the threshold
    assert traces(page, "plot-spectrum") == 2 * (2 + 2)
    threshold = p.evaluate("() => document.getElementById('plot-spectrum').layout.shapes[0].y0")
    assert threshold == pytest.approx(server.http.get(f"/v1/runs/{run_id}").json()["threshold"])
    assert p.get_attribute("#dl-csv", "href") == f"/v1/runs/{run_id}/trajectory?format=csv"
    page.shot("run")
    # "run again with changes": the form prefilled with this run's request
    p.click("#again")
    p.wait_for_url(re.compile(r"/ui/new\?from="), wait_until="commit")
    p.wait_for_function("() => document.getElementById('f-d') && document.getElementById('f-d').value === '12'")
    assert p.input_value("#f-name") == "browser-run" and p.input_value("#f-gamma_w") == "2"
    # the runs page lists it with its summary
    p.goto("/ui/runs?name=browser-run")
    p.wait_for_selector(f"tr[data-id='{run_id}']")
    row = p.text_content(f"tr[data-id='{run_id}']")
    summary = server.http.get(f"/v1/runs/{run_id}").json()["summaries"]["gd"]
    assert "succeeded" in row and "by=browser" in row and str(summary["min_test_error_step"]) in row
    page.check()


def test_the_curves_grow_while_a_run_runs(page: Page, server: Api) -> None:
    """The run page follows the run's event stream: while its status reads running, Figure 1's curves gain
    points (and its progress moves); cancelled, the page says so and the stream ends."""
    body = {"d": 30, "rank": 3, "gamma_sigma2": -1.5, "gamma_w": 2.0, "steps": 50_000, "record_every": 50,
            "spectrum_every": 500, "dynamics": ["gd", "self_consistent"]}  # a minute or more: cancelled below
    run_id = server.http.post("/v1/runs", json=body, params={"force": "true"}).json()["id"]
    p = page.page
    p.goto(f"/ui/runs/{run_id}")
    points = "(() => { const d = document.getElementById('plot-errors').data; return d && d.length ? d[0].x.length : 0; })()"
    running = "document.getElementById('status').textContent === 'running'"
    p.wait_for_function(f"() => {points} > 0 && {running}")
    first, step = p.evaluate(f"() => {points}"), p.evaluate("() => document.getElementById('progress').value")
    p.wait_for_function(f"() => {points} > {first} && {running}")  # grown while it runs
    assert p.evaluate("() => document.getElementById('progress').value") > step
    assert traces(page, "plot-errors") == 4 and traces(page, "plot-spectrum") > 0
    assert "the curves grow" in p.text_content("#message")
    p.click("#cancel")
    p.wait_for_function("() => document.getElementById('status').textContent === 'cancelled'")
    assert server.http.get(f"/v1/runs/{run_id}").json()["status"] == "cancelled"
    page.check()


def test_a_bad_field_shows_its_message_beside_it(page: Page) -> None:
    p = page.page
    p.goto("/ui/new")
    p.fill("#f-d", "1")
    p.click("#submit")
    p.wait_for_function("() => document.getElementById('err-d').textContent !== ''")
    assert "greater than or equal to 2" in p.text_content("#err-d")
    assert "invalid" in p.get_attribute(".field[data-field=d]", "class")
    assert p.url.endswith("/ui/new")
    page.shot("new-run-error")
    page.check(answered=(422,))


def test_open_a_finished_sweep_click_a_cell_land_on_its_run(page: Page, server: Api) -> None:
    body = {"name": "browser-sweep", "base": {"d": 10, "rank": 2, "steps": 40, "dynamics": ["gd", "self_consistent"]},
            "axes": {"gamma_sigma2": {"linspace": [-2.0, -1.0, 3]}, "gamma_w": {"values": [1.5, 2.0]}}}
    sweep = server.http.post("/v1/sweeps", json=body).json()
    wait_for(lambda: server.http.get(f"/v1/sweeps/{sweep['id']}").json()["status"] == "finished", 120, "the sweep")
    run_ids = set(server.http.get(f"/v1/sweeps/{sweep['id']}/table").json()["run_id"])
    p = page.page
    p.goto("/ui/sweeps")
    p.get_by_role("link", name="browser-sweep").wait_for()
    page.shot("sweeps")
    p.get_by_role("link", name="browser-sweep").click()
    p.wait_for_url(f"**/ui/sweeps/{sweep['id']}", wait_until="commit")
    p.wait_for_function("() => document.querySelectorAll('#panels .plot .main-svg').length >= 4")
    panels = p.evaluate("() => [...document.querySelectorAll('#panels .plot')].map(d => d.dataset.metric)")
    assert panels == ["min_test_error", "stable_rank_at_min", "min_test_error_step", "log_max_distance"]
    heat = p.evaluate("() => { const t = document.querySelector('#panels .plot').data[0];"
                      " return {type: t.type, x: t.x, y: t.y, colorscale: t.colorscale, runs: t.customdata.flat()}; }")
    assert heat["type"] == "heatmap" and heat["colorscale"] == "Viridis"
    assert heat["x"] == [-2.0, -1.5, -1.0] and heat["y"] == [1.5, 2.0] and set(heat["runs"]) == run_ids
    assert len(p.query_selector_all("#table-body tr")) == 6
    page.shot("sweep")
    # another metric, from the picker
    p.select_option("#metric", "final_test_error")
    p.wait_for_function("() => document.querySelectorAll('#panels .plot').length === 1")
    p.select_option("#metric", "figure2")
    p.wait_for_function("() => document.querySelectorAll('#panels .plot .main-svg').length >= 4")
    # click the middle of the first heat map: a cell, whose run's page opens
    box = p.locator("#panels .plot").first.locator(".nsewdrag").first.bounding_box()
    p.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.25)
    p.wait_for_url(re.compile(r"/ui/runs/[0-9a-f-]{36}$"), wait_until="commit")
    assert p.url.rsplit("/", 1)[1] in run_ids
    p.wait_for_function("() => document.getElementById('status').textContent === 'succeeded'")
    page.check()


def test_a_refined_sweep_draws_every_cell_of_its_mesh(page: Page, server: Api) -> None:
    body = {"name": "browser-refined", "base": {"d": 10, "rank": 2, "steps": 40, "dynamics": ["gd"]},
            "axes": {"gamma_sigma2": {"linspace": [-2.0, 0.0, 3]}, "gamma_w": {"values": [0.5, 1.5, 2.5]}},
            "refine": {"metric": "gd.min_test_error", "rounds": 1, "budget": 8}}
    sweep = server.http.post("/v1/sweeps", json=body).json()
    wait_for(lambda: server.http.get(f"/v1/sweeps/{sweep['id']}").json()["status"] == "finished", 120, "the sweep")
    table = server.http.get(f"/v1/sweeps/{sweep['id']}/table").json()
    assert 9 < len(table["run_id"]) <= 17
    p = page.page
    p.goto(f"/ui/sweeps/{sweep['id']}")
    p.wait_for_function("() => document.querySelectorAll('#panels .plot .main-svg').length >= 1")
    heat = p.evaluate("() => { const t = document.querySelector('#panels .plot').data[0];"
                      " return {x: t.x, y: t.y, z: t.z.flat(), runs: t.customdata.flat()}; }")
    # the union of the axes' values; every cell drawn, in its nearest point's value (each point its own cell)
    assert heat["x"] == sorted(set(table["gamma_sigma2"])) and heat["y"] == sorted(set(table["gamma_w"]))
    assert len(heat["z"]) == len(heat["x"]) * len(heat["y"]) > len(table["run_id"])
    assert None not in heat["z"] and set(heat["runs"]) == set(table["run_id"])
    assert "round 1 of 1" in p.locator("#base").inner_text()
    page.check()


def test_heatmap_cells_by_keyboard(page: Page, server: Api) -> None:
    """Tab to a heat map, move its focused cell with the arrow keys (outlined, read out), Enter opens its run."""
    body = {"name": "keyboard-sweep", "base": {"d": 8, "rank": 2, "steps": 20, "dynamics": ["gd", "self_consistent"]},
            "axes": {"gamma_sigma2": {"values": [-2.0, -1.5, -1.0]}, "gamma_w": {"values": [1.5, 2.0]}}}
    sweep = server.http.post("/v1/sweeps", json=body).json()
    wait_for(lambda: server.http.get(f"/v1/sweeps/{sweep['id']}").json()["status"] == "finished", 120, "the sweep")
    rows = server.http.get(f"/v1/sweeps/{sweep['id']}/table").json()
    run_at = {(g, w): r for g, w, r in zip(rows["gamma_sigma2"], rows["gamma_w"], rows["run_id"], strict=True)}
    p = page.page
    p.goto(f"/ui/sweeps/{sweep['id']}")
    p.wait_for_function("() => document.querySelectorAll('#panels .plot .main-svg').length >= 4")
    first = p.locator("#panels .plot").first
    assert "Arrow keys move between cells" in first.get_attribute("aria-label")
    assert first.get_attribute("aria-roledescription") == "heat map"
    for _ in range(40):  # as a keyboard user: Tab until the first heat map has the focus
        p.keyboard.press("Tab")
        if p.evaluate("() => document.activeElement === document.querySelector('#panels .plot')"):
            break
    else:
        raise AssertionError("Tab never reached the first heat map")

    def focused() -> dict[str, Any]:
        return p.evaluate("""() => { const d = document.activeElement; const s = (d.layout.shapes || [])[0];
            return {cell: d.dataset.cell, said: document.getElementById('cell-status').textContent,
                    outline: getComputedStyle(d).outlineStyle, shape: s ? [s.x0, s.x1, s.y0, s.y1] : null}; }""")

    now = focused()  # the first cell (lowest gamma_sigma2, lowest gamma_w), outlined, the panel's focus visible
    assert now["cell"] == "0,0" and now["outline"] != "none"
    assert now["shape"] == pytest.approx([-2.25, -1.75, 1.25, 1.75])
    assert "= -2, " in now["said"] and "= 1.5, " in now["said"], now["said"]  # the axes' values, the run
    assert run_at[(-2.0, 1.5)] in now["said"]
    p.keyboard.press("ArrowRight")
    p.keyboard.press("ArrowUp")
    p.keyboard.press("ArrowUp")  # stays on the top row
    now = focused()
    assert now["cell"] == "1,1" and now["shape"] == pytest.approx([-1.75, -1.25, 1.75, 2.25])
    assert run_at[(-1.5, 2.0)] in now["said"]
    # and shown: Plotly's hover label of that cell
    p.wait_for_function("(run) => [...document.activeElement.querySelectorAll('.hoverlayer .hovertext')]"
                        ".some(t => t.textContent.includes(run))", arg=run_at[(-1.5, 2.0)])
    page.shot("sweep-keyboard")
    p.keyboard.press("End")
    assert focused()["cell"] == "2,1"
    p.keyboard.press("ArrowLeft")
    # focus leaves: the outline goes; focus comes back: the same cell
    p.keyboard.press("Shift+Tab")
    assert p.evaluate("() => { const d = document.querySelector('#panels .plot');"
                      " return [d.layout.shapes.length, d.dataset.cell === undefined]; }") == [0, True]
    p.keyboard.press("Tab")
    assert focused()["cell"] == "1,1"
    p.keyboard.press("Enter")
    p.wait_for_url(f"**/ui/runs/{run_at[(-1.5, 2.0)]}", wait_until="commit")
    p.wait_for_function("() => document.getElementById('status').textContent === 'succeeded'")
    page.check()


def test_replicates_averaged_sliced_and_as_lines_with_error_bars(page: Page, server: Api) -> None:
    """Three sweeps of three 2-3 valued axes: gamma_sigma2 x gamma_w x seed, heat maps of the mean over seed
    (the API's aggregated table), the sd with the toggle; gamma_sigma2 x gamma_w x d, heat maps at the d
    picked; gamma_w x seed, a line with error bars."""
    base = {"d": 10, "rank": 2, "steps": 30, "dynamics": ["gd", "self_consistent"]}
    square = {"gamma_sigma2": {"values": [-2.0, -1.0]}, "gamma_w": {"values": [1.5, 2.0]}}
    sid = server.http.post("/v1/sweeps", json={"base": base, "axes": {**square, "seed": {"values": [0, 1]}}}).json()["id"]
    did = server.http.post("/v1/sweeps", json={"base": base, "axes": {**square, "d": {"values": [8, 10]}}}).json()["id"]
    lid = server.http.post("/v1/sweeps", json={"base": {**base, "gamma_sigma2": -1.5}, "axes": {
        "gamma_w": {"values": [1.5, 2.0, 2.5]}, "seed": {"values": [0, 1, 2]}}}).json()["id"]
    for s in (sid, did, lid):
        wait_for(lambda s=s: server.http.get(f"/v1/sweeps/{s}").json()["status"] == "finished", 180, "the sweep")

    def heat() -> dict[str, Any]:
        return p.evaluate("() => { const d = document.querySelector('#panels .plot'); const t = d.data[0];"
                          " return {x: t.x, y: t.y, z: t.z, bar: t.colorbar.title.text}; }")

    def grid(table: dict[str, Any], column: str) -> list[list[float]]:
        return [[next(v for g, w, v in zip(table["gamma_sigma2"], table["gamma_w"], table[column], strict=True)
                      if g == gx and w == wy) for gx in (-2.0, -1.0)] for wy in (1.5, 2.0)]

    p = page.page
    # averaged over seed: the mean, then the sd
    p.goto(f"/ui/sweeps/{sid}")
    p.wait_for_function("() => document.querySelectorAll('#panels .plot .main-svg').length >= 4")
    assert p.text_content("#view-note") == "averaged over seed (2 per point)" and p.is_visible("#sd")
    averaged = server.http.get(f"/v1/sweeps/{sid}/table", params={"aggregate": "seed"}).json()
    shown = heat()
    assert shown["x"] == [-2.0, -1.0] and shown["y"] == [1.5, 2.0] and shown["bar"] == "mean of minimal test error"
    assert shown["z"] == grid(averaged, "gd.min_test_error.mean")
    p.check("#sd")
    p.wait_for_function("() => document.querySelector('#panels .plot').data[0].colorbar.title.text"
                        " === 'sd of minimal test error'")
    assert heat()["z"] == grid(averaged, "gd.min_test_error.sd") and all(v > 0 for row in heat()["z"] for v in row)
    page.shot("sweep-replicates")
    # three axes: a slice picker for d
    p.goto(f"/ui/sweeps/{did}")
    p.wait_for_function("() => document.querySelectorAll('#panels .plot .main-svg').length >= 4")
    assert p.evaluate("() => [...document.querySelectorAll('#at-d option')].map(o => o.value)") == ["8", "10"]
    assert p.is_hidden("#sd") and p.text_content("#view-note") == "sliced at d"
    full = server.http.get(f"/v1/sweeps/{did}/table").json()
    for d in (8, 10):
        p.select_option("#at-d", str(d))
        at = {c: [v for v, dd in zip(vals, full["d"], strict=True) if dd == d] for c, vals in full.items()}
        wait_for(lambda at=at: heat()["z"] == grid(at, "gd.min_test_error"), 60, f"the heat map at d = {d}")
    # one axis left after the replicates: a line with error bars of one sd
    p.goto(f"/ui/sweeps/{lid}")
    p.wait_for_function("() => document.querySelectorAll('#panels .plot .main-svg').length >= 4")
    trace = p.evaluate("() => { const t = document.querySelector('#panels .plot').data[0];"
                       " return {x: t.x, y: t.y, err: t.error_y.array, visible: t.error_y.visible}; }")
    line = server.http.get(f"/v1/sweeps/{lid}/table", params={"aggregate": "seed"}).json()
    assert trace == {"x": [1.5, 2.0, 2.5], "y": line["gd.min_test_error.mean"],
                     "err": line["gd.min_test_error.sd"], "visible": True}
    assert all(e > 0 for e in trace["err"]) and p.is_hidden("#sd")
    page.shot("sweep-line")
    page.check()


def test_compare_two_runs(page: Page, server: Api) -> None:
    ids = []
    for seed, width in ((1, 40), (2, 80)):
        r = server.http.post("/v1/runs", json={**{k: v for k, v in RUN.items() if k != "gamma_w"}, "width": width,
                                               "seed": seed, "name": f"compare-{seed}"})
        ids.append(r.json()["id"])
    for rid in ids:
        server.wait_finished(rid)
    p = page.page
    p.goto("/ui/runs?name=compare-1")
    p.wait_for_selector(f"tr[data-id='{ids[0]}']")
    p.check(f"input[data-id='{ids[0]}']")
    # the selection is kept across filters: find the second by its name
    p.fill("#filters input[name=name]", "compare-2")
    p.click("#filters button[type=submit]")
    p.wait_for_selector(f"tr[data-id='{ids[1]}']")
    p.check(f"input[data-id='{ids[1]}']")
    page.shot("runs")
    p.click("#compare")
    p.wait_for_url(re.compile(r"/ui/compare\?runs="), wait_until="commit")
    assert set(p.url.split("runs=")[1].split(",")) == set(ids)
    p.wait_for_function("() => (document.getElementById('plot-test').data || []).length === 4")
    headers = p.evaluate("() => [...document.querySelectorAll('#differ thead th')].map(th => th.textContent)")
    assert {"seed", "width", "gamma_w"} <= set(headers) and "d" not in headers
    assert traces(page, "plot-spectrum") == 2 * 2 * 2  # 2 runs x 2 dynamics x top k = 2
    page.shot("compare")
    page.check()


def test_api_documentation_offline(page: Page) -> None:
    p = page.page
    p.goto("/docs")
    p.wait_for_selector(".swagger-ui .info .title")
    assert "lindyn" in p.text_content(".swagger-ui .info .title")
    page.shot("docs")
    p.goto("/redoc")
    p.wait_for_selector("h1:has-text('lindyn')", timeout=60_000)
    page.check()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """An API with a key that reads need too (no worker: a run stays queued)."""
    folder = tmp_path_factory.mktemp("dashboard-keyed")
    procs = Processes(folder)
    env = migrated(clean_env(LINDYN_DATA_DIR=str(folder / "data"), LINDYN_API_KEYS=KEY, LINDYN_AUTH_READS="true"))
    ensure_broker_folders(Settings(data_dir=folder / "data"))  # what a worker makes when it starts
    try:
        yield start_api(procs, env)
    finally:
        procs.stop_all()


def test_with_keys_the_ui_asks_once_then_a_write_succeeds(browser: Any, keyed_server: Api) -> None:
    page = Page(browser, str(keyed_server.http.base_url).rstrip("/"))
    p = page.page
    sent: list[str | None] = []
    urls: list[str] = []
    p.on("request", lambda r: sent.append(r.headers.get("authorization")) if "/v1/" in r.url else None)
    p.on("request", lambda r: urls.append(r.url))
    try:
        p.goto("/ui/runs")
        p.wait_for_selector("#key-dialog[open]")
        page.shot("key-prompt")
        p.fill("#key-input", "wrong-key")
        p.click("#key-submit")
        p.wait_for_function("() => document.getElementById('key-reason').textContent.includes('refused')")
        p.fill("#key-input", KEY)
        p.click("#key-submit")
        p.wait_for_function("() => document.getElementById('count').textContent === '0 runs'")
        assert p.evaluate("() => sessionStorage.getItem('lindyn.apiKey')") == KEY
        assert p.evaluate("() => document.cookie") == ""
        p.get_by_role("link", name="New run").click()
        p.wait_for_selector("#f-d")
        p.fill("#f-d", "10")
        p.fill("#f-steps", "10")
        p.click("#submit")  # no second prompt: the key is kept for the session
        p.wait_for_url(re.compile(r"/ui/runs/[0-9a-f-]{36}$"), wait_until="commit")
        p.wait_for_function("() => document.getElementById('status').textContent === 'queued'")
        assert not p.is_visible("#key-dialog")
        assert sent[-1] == f"Bearer {KEY}" and not any(KEY in url for url in urls)  # never in a URL
        # the queued run's page follows its event stream with the key in a header (EventSource could not)
        wait_for(lambda: any("/events" in u for u in urls), 30, "the run page to open its event stream")
        events = [h for h, u in zip(sent, [u for u in urls if "/v1/" in u]) if "/events" in u]
        assert events and all(h == f"Bearer {KEY}" for h in events)
        page.check(answered=(401, 403))
    finally:
        page.close()
