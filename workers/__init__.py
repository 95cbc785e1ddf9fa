"""Celery workers: the app (celery_app.py) and its tasks (tasks.py). Thin: read a request from the database,
call dynamics, write the result through models."""
