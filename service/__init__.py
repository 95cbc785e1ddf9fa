"""The FastAPI service: main.py builds the app; routers/ holds the routes (one module per resource),
schemas/ the response bodies, deps.py the per-request dependencies, queue.py the job producer,
exports.py the JSON/CSV/Parquet encoders. Settings: core.settings (shared with the workers)."""
