from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core import Settings
import migrations
from service.main import create_app


def make_client(settings: Settings) -> TestClient:
    migrations.upgrade(settings.db_url)
    return TestClient(create_app(settings))


@pytest.fixture
def client(embedded_settings: Settings) -> Iterator[TestClient]:
    """The API on a migrated SQLite file and the filesystem broker (no worker: runs stay queued)."""
    with make_client(embedded_settings) as c:
        yield c
