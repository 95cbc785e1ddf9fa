"""Response bodies of /health and /v1/version."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Check(BaseModel):
    ok: bool
    detail: str = ""


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Check
    broker: Check


class Version(BaseModel):
    name: str = "lindyn"
    version: str
    api: str = "v1"
