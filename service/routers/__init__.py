"""HTTP routes, one module per resource: runs.py (/v1/runs), meta.py (/health, /v1/version)."""
