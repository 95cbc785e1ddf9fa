"""``lindyn serve``, ``lindyn worker``, ``lindyn migrate``: the service's processes.

Embedded default (no LINDYN_DATABASE_URL / LINDYN_BROKER_URL): ``lindyn serve`` migrates the SQLite file
under LINDYN_DATA_DIR, starts a worker subprocess on the filesystem broker and the API in this process.
Production: ``lindyn migrate`` once, ``lindyn serve --no-worker`` and ``lindyn worker --queues ...``.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

#: lindyn's own packages that only the server runs (shipped in every install, importable only with the extra)
SERVER_PACKAGES = ("core", "models", "service", "workers", "migrations")


def server_modules() -> set[str]:
    """The import names of the ``server`` extra's requirements (from the installed metadata), and ours."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        reqs = requires("lindyn") or []
    except PackageNotFoundError:  # pragma: no cover - run from a checkout that was never installed
        reqs = []
    names = {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("-", "_")
             for r in reqs if re.search(r"extra\s*==\s*['\"]server['\"]", r)}  # fmt: skip
    return names | set(SERVER_PACKAGES)


def needs_server(func: Callable[..., Any]) -> Callable[..., Any]:
    """A command of the server: on a light install (no ``server`` extra) it says what to install and exits 1,
    instead of a traceback."""

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in server_modules():
                raise
            typer.echo(f"error: this command runs the lindyn server, whose packages are not installed ({exc.name} "
                       "is missing): pip install 'lindyn[server]'", err=True)
            raise typer.Exit(1) from None

    return command


@needs_server
def migrate() -> None:
    """Create or upgrade the database schema (Alembic upgrade head)."""
    import migrations
    from core import get_settings

    url = get_settings().db_url
    migrations.upgrade(url)
    typer.echo(f"database at revision head: {_safe_url(url)}")


@needs_server
def worker(
    queues: Annotated[str, typer.Option(help="comma-separated queues to consume: cpu, gpu")] = "cpu,gpu",
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="worker processes (default: LINDYN_WORKER_PROCESSES, else one per CPU "
                                 "core; each gets max(1, cores // processes) BLAS threads)")
    ] = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level")] = "INFO",
) -> None:
    """Run a Celery worker that executes queued runs."""
    from core.jobs import QUEUES
    from workers.celery_app import celery_app

    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if not names or unknown:
        raise typer.BadParameter(f"queues must be among {', '.join(QUEUES)}; got {queues!r}", param_hint="--queues")
    from core import get_settings

    processes = concurrency or get_settings().processes
    argv = ["worker", "-Q", ",".join(names), f"--loglevel={loglevel}", "--without-gossip", "--without-mingle",
            f"--concurrency={processes}"]  # fmt: skip
    celery_app.worker_main(argv)


@needs_server
def serve(
    host: Annotated[
        Optional[str], typer.Option(help="address to listen on (default: LINDYN_HOST, else 127.0.0.1)")  # noqa: UP045
    ] = None,
    port: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(min=0, max=65535, help="port to listen on (default: LINDYN_PORT, else 8000; 0: one the system "
                     "gives, printed once bound)"),
    ] = None,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="API only (workers run elsewhere)")] = False,
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="processes of the embedded worker (default: LINDYN_WORKER_PROCESSES, "
                                 "else one per CPU core)")
    ] = None,
    api_processes: Annotated[
        int, typer.Option(min=1, help="API processes (uvicorn workers) sharing the port; each is one CPU core's "
                          "worth of requests at most, and keeps its own LINDYN_DB_POOL_SIZE connections")
    ] = 1,
) -> None:
    """Migrate the database, then run the API (and, unless --no-worker, a worker beside it)."""
    import uvicorn

    import migrations
    from core import get_settings
    from core.jobs import ensure_broker_folders

    settings = get_settings()
    host = settings.host if host is None else host
    port = settings.port if port is None else port
    migrations.upgrade(settings.db_url)
    ensure_broker_folders(settings)
    # bound before the worker starts and the URLs are printed: they name the port the system gave (--port 0)
    config = uvicorn.Config("service.main:app", host=host, port=port, log_level="info", workers=api_processes)
    sock = config.bind_socket()
    config.port = sock.getsockname()[1]
    child: subprocess.Popen[bytes] | None = None
    if not no_worker:
        processes = concurrency or settings.processes
        cmd = [sys.executable, "-m", "lindyn.cli", "worker", "--concurrency", str(processes), "--loglevel", "WARNING"]
        # same process group (Ctrl-C and a signal to the group reach both); dies with this process on Linux
        child = subprocess.Popen(cmd, env={**os.environ, **settings.environment()}, preexec_fn=_die_with_parent)
    base = _base_url(host, config.port)
    typer.echo(f"lindyn dashboard: {base}/ui  API: {base}  docs: {base}/docs")
    typer.echo(f"database: {_safe_url(settings.db_url)}  broker: {_safe_url(settings.broker)}")
    typer.echo(_auth_line(settings))
    if settings.embedded and no_worker:
        typer.echo("note: embedded broker and --no-worker: start `lindyn worker` with the same LINDYN_DATA_DIR")
    # uvicorn re-raises the SIGTERM it caught once it has shut down: turn it into SystemExit so that the
    # worker is stopped below instead of the process dying on the spot
    signal.signal(signal.SIGTERM, _exit_on_signal)
    server = uvicorn.Server(config)
    try:
        if api_processes > 1:
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if child is not None:
            _stop(child)
    if api_processes == 1 and not server.started:
        raise typer.Exit(3)  # uvicorn's STARTUP_FAILURE: the app did not start


def _base_url(host: str, port: int) -> str:
    """http://host:port, an IPv6 address in brackets."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _auth_line(settings: object) -> str:
    """Whether writes need an API key (never the keys themselves)."""
    from core import Settings, get_sessionmaker
    from models.keys import count_keys

    assert isinstance(settings, Settings)
    try:
        with get_sessionmaker(settings.db_url, settings.sqlite_busy_timeout_ms)() as session:
            stored = count_keys(session)
    except Exception:  # noqa: BLE001 - only a message
        stored = 0
    if not settings.api_keys and not stored:
        return ("auth: OFF - no API key configured, anyone who can reach this address can submit and cancel "
                "(set LINDYN_API_KEYS or run `lindyn keys create`)")
    scope = "all requests" if settings.auth_reads else "writes (POST, PUT, PATCH, DELETE)"
    return (f"auth: ON - {scope} need Authorization: Bearer <key> "
            f"({len(settings.api_keys)} key(s) from LINDYN_API_KEYS, {stored} in the database)")


def _stop(child: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop the worker: SIGTERM (Celery's warm shutdown), then SIGKILL."""
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the parent dies (no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _safe_url(url: str) -> str:
    """The URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a SQLAlchemy URL (a broker URL)
        head, sep, tail = url.partition("@")
        return f"{head.split(':', 1)[0]}://***@{tail}" if sep else url


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(worker)
    app.command()(migrate)
