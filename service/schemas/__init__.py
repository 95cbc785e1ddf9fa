"""Pydantic v2 models of what the API accepts and returns (the request itself is dynamics.SimulationRequest)."""
