"""schemathesis against the app's /openapi.json (in process, ASGI): for every operation, generated requests
(valid and not) never get a 5xx and every response matches its documented schema (status code, content
type, body). Bounded: 25 examples per operation, derandomised, well under a minute in all."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
)

from core import Settings
from core.jobs import ensure_broker_folders
import migrations
from service.main import create_app

_DATA = Path(tempfile.mkdtemp(prefix="lindyn-schemathesis-"))
# the embedded default under a folder of its own (no worker: runs stay queued); nothing from the environment
# that changes behaviour (no keys), and small run limits so that any accepted run is small
_SETTINGS = Settings(data_dir=_DATA, database_url="", broker_url="", api_keys=[], auth_reads=False,
                     max_d=64, max_steps=1000)
APP = create_app(_SETTINGS)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _migrated() -> Iterator[None]:
    migrations.upgrade(_SETTINGS.db_url)
    ensure_broker_folders(_SETTINGS)  # healthy: /health answers 200
    yield
    APP.state.engine.dispose()
    shutil.rmtree(_DATA, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_conforms(case) -> None:  # type: ignore[no-untyped-def]
    # every default check but: the acceptance ones, which would call our deliberate 422s of schema-valid yet
    # impossible requests (rank > d, limits) wrong; and the probes of undeclared methods (Starlette's 405
    # names only the first route's methods for a path with a GET and a POST route)
    case.call_and_validate(excluded_checks=[positive_data_acceptance, negative_data_rejection, unsupported_method,
                                            allow_header_conformance])
