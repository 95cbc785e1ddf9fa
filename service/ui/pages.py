"""The web dashboard: HTML pages under /ui (Jinja2 templates, plain JS modules, Plotly.js), and the API's
documentation (/docs, /redoc) from local assets. Nothing is loaded from another host.

The pages hold no data: they load without an API key, and their scripts read the JSON API (same origin)
with ``fetch``, sending the key the browser session was given (service/ui/static/lindyn.js).
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from service.plots import AXIS_LABELS, theory_lines
from service.ui.catalogue import catalogue

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)

#: the pages' own assets, Plotly.js and the documentation's, all served from the installed packages
STATIC, VENDOR = "/ui/static", "/ui/vendor"
MAX_COMPARED = 10


def plotly_js() -> Path:
    """plotly.min.js as bundled inside the ``plotly`` Python package."""
    return Path(str(files("plotly") / "package_data" / "plotly.min.js"))


def docs_assets() -> Path:
    """Swagger UI 5 (it reads OpenAPI 3.1, FastAPI's version) and ReDoc's standalone bundle, as shipped by
    the ``fastapi-offline`` package: swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js."""
    return Path(str(files("fastapi_offline") / "static"))


def _page(request: Request, template: str, title: str, **data: Any) -> HTMLResponse:
    """A page: its template, with the catalogue and the page's data as JSON for its script."""
    page_data = {"catalogue": catalogue(), **data}
    return templates.TemplateResponse(
        request, template, {"title": title, "page_json": json.dumps(page_data), "static": STATIC,
                            "vendor": VENDOR, **data},
    )


@cache
def _schemas(app: FastAPI) -> dict[str, Any]:
    """The request bodies of POST /v1/runs and POST /v1/sweeps from the OpenAPI document, with the
    components they refer to."""
    doc = app.openapi()
    run = doc["paths"]["/v1/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    sweep = doc["paths"]["/v1/sweeps"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return {"run": run, "sweep": sweep, "components": doc.get("components", {}).get("schemas", {})}


@router.get("/")
@router.get("/ui")
def home() -> RedirectResponse:
    """The dashboard's first page (``lindyn serve`` prints /ui)."""
    return RedirectResponse("/ui/runs")


@router.get("/ui/runs", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    return _page(request, "runs.html", "Runs")


@router.get("/ui/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    return _page(request, "run.html", "Run", run_id=run_id)


@router.get("/ui/sweeps", response_class=HTMLResponse)
def sweeps_page(request: Request) -> HTMLResponse:
    return _page(request, "sweeps.html", "Sweeps")


@router.get("/ui/sweeps/new", response_class=HTMLResponse)
def new_sweep_page(request: Request) -> HTMLResponse:
    return _page(request, "new.html", "New sweep", kind="sweep", schemas=_schemas(request.app))


@router.get("/ui/sweeps/{sweep_id}", response_class=HTMLResponse)
def sweep_page(request: Request, sweep_id: str) -> HTMLResponse:
    lines = [{"id": gid, "label": label, "of": [float(f(0.0)), float(f(1.0)) - float(f(0.0))]}
             for gid, label, f in theory_lines()]  # gamma_w = a + b gamma_sigma2 (each line is straight)
    return _page(request, "sweep.html", "Sweep", sweep_id=sweep_id, theory=lines, axis_labels=AXIS_LABELS)


@router.get("/ui/compare", response_class=HTMLResponse)
def compare_page(request: Request, runs: str = Query("", description="run ids, comma-separated")) -> HTMLResponse:
    ids = [r for r in (s.strip() for s in runs.split(",")) if r]
    return _page(request, "compare.html", "Compare runs", run_ids=ids[:MAX_COMPARED], max_compared=MAX_COMPARED)


@router.get("/ui/new", response_class=HTMLResponse)
def new_run_page(request: Request) -> HTMLResponse:
    return _page(request, "new.html", "New run", kind="run", schemas=_schemas(request.app))


@router.get(f"{VENDOR}/plotly.min.js")
def plotly() -> FileResponse:
    return FileResponse(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


#: the one remote URL ReDoc's bundle loads by itself (its logo, at the foot of the menu), and ours instead
_REDOC_LOGO = (b"https://cdn.redoc.ly/redoc/logo-mini.svg", f"{STATIC}/favicon.svg".encode())


@cache
def _redoc_bundle() -> bytes:
    return (docs_assets() / "redoc.standalone.js").read_bytes().replace(*_REDOC_LOGO)


@router.get(f"{VENDOR}/redoc.standalone.js")
def redoc_bundle() -> Response:
    """ReDoc's standalone bundle, its logo pointed at this server (so that nothing is fetched elsewhere)."""
    return Response(_redoc_bundle(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


@router.get("/docs")
def swagger_ui(request: Request) -> Response:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url, title=f"{request.app.title} - API",
        swagger_js_url=f"{VENDOR}/docs/swagger-ui-bundle.js", swagger_css_url=f"{VENDOR}/docs/swagger-ui.css",
        swagger_favicon_url=f"{STATIC}/favicon.svg",
        swagger_ui_parameters={"validatorUrl": None},  # no badge from validator.swagger.io
    )


@router.get("/redoc")
def redoc_ui(request: Request) -> Response:
    return get_redoc_html(
        openapi_url=request.app.openapi_url, title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{VENDOR}/redoc.standalone.js", redoc_favicon_url=f"{STATIC}/favicon.svg",
        with_google_fonts=False,
    )


def install(app: FastAPI) -> None:
    """The pages, their assets, and the documentation from local assets (create the app with
    docs_url=None, redoc_url=None)."""
    app.include_router(router)
    app.mount(STATIC, StaticFiles(directory=HERE / "static"), name="ui-static")
    app.mount(f"{VENDOR}/docs", StaticFiles(directory=docs_assets()), name="ui-docs")
