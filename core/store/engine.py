"""The database connection behind a :class:`~core.store.Store`: one SQLAlchemy engine per store, shared by threads,
and the retry of transactions that met a busy or restarting database.

SQLite (the default) runs in WAL mode (readers never wait for the writer), with ``synchronous=FULL`` (a commit is
on disk before it returns), a busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for writing transactions, so a
writer waits for the lock at its start instead of failing half way. Other databases (PostgreSQL through
``postgresql+psycopg://``) get a pool that tests each connection before use, so a restarted server is reconnected;
reading transactions there run at ``REPEATABLE READ``, so every SELECT of one read sees the same snapshot.
"""
from __future__ import annotations

import os
import random
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

DB_ENV = "GRADCAM_STUDIO_DB"
BUSY_TIMEOUT_MS = 5000
# SQLSTATE classes run again: connection exceptions (08), transaction rollbacks such as serialisation failures and
# deadlocks (40), operator intervention: shutdown, crash, cannot connect now (57P), too many connections (53300)
RETRY_SQLSTATES = ("08", "40", "57P", "53300")
# a server's refusal at connecting (no SQLSTATE from the driver) that passes: it is stopping, starting or full
SERVER_AWAY = ("shutting down", "starting up", "not yet accepting connections", "in recovery mode",
               "too many clients", "too many connections")
# client-side connection failures that no retry mends
CLIENT_WRONG = ("could not translate host name", "name or service not known", "invalid dsn",
                "invalid connection option", "no password supplied", "invalid integer value", "invalid port")
READ_ISOLATION = {"postgresql": "REPEATABLE READ"}  # one snapshot per reading transaction


class StoreError(ValueError):
    """A workshop-database problem to show as it is (one sentence)."""


class StoreUnavailable(StoreError):
    """The database stayed busy or unreachable for the whole retry time."""


def default_url() -> str:
    """``$GRADCAM_STUDIO_DB`` (any SQLAlchemy URL), else the SQLite file ``workshop.sqlite3`` in the studio's cache
    folder (:func:`core.models.lite.cache_dir`)."""
    from core.models.lite import cache_dir

    return os.environ.get(DB_ENV) or f"sqlite:///{cache_dir() / 'workshop.sqlite3'}"


def shown(url: sa.URL) -> str:
    """The URL with its password hidden (for messages)."""
    return url.render_as_string(hide_password=True)


def make_engine(url: str | sa.URL, busy_s: float = BUSY_TIMEOUT_MS / 1000, create: bool = True) -> sa.Engine:
    """An engine for ``url``; for SQLite the file's folder is created (unless ``create`` is False) and WAL mode and
    a busy timeout of ``busy_s`` seconds set on every connection.

    Raises:
        StoreError: an unreadable URL, an in-memory SQLite database (not shared between threads), a folder that
            cannot be created, or with ``create`` False a SQLite file that does not exist.
    """
    try:
        url = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError, TypeError):
        raise StoreError(f"The workshop database URL is not an SQLAlchemy URL; set {DB_ENV} to one such as "
                         "sqlite:///path/workshop.sqlite3 or postgresql+psycopg://user@host/db.") from None
    pool = {"pool_size": 5, "max_overflow": 40, "pool_timeout": 60}
    if url.get_backend_name() != "sqlite":
        try:
            return sa.create_engine(url, pool_pre_ping=True, **pool)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as e:
            raise StoreError(f"The workshop database {shown(url)} cannot be used: {str(e).splitlines()[0]}") from None
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        raise StoreError("An in-memory SQLite database is not shared between threads; name a file, "
                         "e.g. sqlite:///path/workshop.sqlite3.")
    if not create and not Path(url.database).expanduser().is_file():
        raise StoreError(f"There is no workshop database at {url.database}: the SQLite file does not exist; "
                         "check the URL.")
    try:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"The folder of the workshop database {url.database} cannot be created ({e.strerror}).") \
            from None
    busy_s = max(0.0, min(busy_s, BUSY_TIMEOUT_MS / 1000))
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_s}, **pool)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below emits BEGIN itself
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", f"busy_timeout={round(busy_s * 1000)}", "synchronous=FULL",
                       "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


def transient(error: Exception) -> bool:
    """Whether a failed transaction may succeed when run again: a locked or busy SQLite file; a lost or refused
    server connection, a serialisation failure or deadlock, a server shutting down or starting (SQLSTATE classes
    08, 40, 57P, or no SQLSTATE and no server error at connecting); an invalidated connection; an empty pool.
    A wrong password, a missing database or role, a mistyped host are not: they fail at once."""
    if isinstance(error, sa.exc.TimeoutError):  # the pool stayed empty for pool_timeout
        return True
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    orig = error.orig
    message = str(orig).lower()
    if type(orig).__module__.startswith("sqlite3"):
        return isinstance(error, sa.exc.OperationalError) and ("locked" in message or "busy" in message)
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)  # psycopg 3 / psycopg2
    if state:
        return str(state).startswith(RETRY_SQLSTATES)
    if error.connection_invalidated:
        return True
    if not isinstance(error, sa.exc.OperationalError):
        return False
    if "fatal:" in message:  # the server answered the connection with an error
        return any(m in message for m in SERVER_AWAY)
    return not any(m in message for m in CLIENT_WRONG)  # refused, closed, timed out: the server is away


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(getattr(error, "orig", None) or error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def run(engine: sa.Engine, fn, write: bool, retry_s: float, lock=None, on_retry=None):
    """``fn(conn)`` inside one transaction (committed when it returns, rolled back when it raises), run again
    while the database is busy or restarting, for at most ``retry_s`` seconds. ``lock`` (a ``threading.Lock``),
    when given, is held during each try and waited for within the same ``retry_s``; ``on_retry()`` is called
    each time the transaction is run again. Reads run at :data:`READ_ISOLATION` where the database has one.

    Raises:
        StoreUnavailable: the database stayed busy or unreachable.
        StoreError: the database refused the connection or the statement for good (one sentence).
        sqlalchemy.exc.IntegrityError: as raised, for the caller to handle (a nickname or code taken meanwhile).
    """
    deadline = time.monotonic() + retry_s
    delay = 0.01
    while True:
        if lock is not None and not lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise StoreUnavailable(f"The workshop database stayed busy with other writes for {retry_s:g} s; "
                                   "try again.")
        try:
            with engine.connect() as conn:
                if write:
                    conn.execution_options(write=True)
                elif engine.dialect.name in READ_ISOLATION:
                    conn.execution_options(isolation_level=READ_ISOLATION[engine.dialect.name])
                with conn.begin():
                    return fn(conn)
        except sa.exc.SQLAlchemyError as e:
            if not transient(e):
                if isinstance(e, sa.exc.DBAPIError) and not isinstance(e, sa.exc.IntegrityError):
                    raise StoreError(f"The workshop database {shown(engine.url)} cannot be used: "
                                     f"{_first_line(e).rstrip('.')}.") from None
                raise
            if time.monotonic() + delay > deadline:
                raise StoreUnavailable(f"The workshop database did not answer within {retry_s:g} s "
                                       f"({_first_line(e)}); try again.") from None
        finally:
            if lock is not None:
                lock.release()
        if on_retry is not None:
            on_retry()
        time.sleep(delay * (0.5 + random.random()))
        delay = min(delay * 2, 0.5)


def insert_once(conn, table: sa.Table, values: dict, unique: tuple[str, ...]) -> bool:
    """Insert one row unless a row with the same ``unique`` columns exists; True when this call stored it.
    SQLite and PostgreSQL use ``INSERT ... ON CONFLICT DO NOTHING``; other databases a savepoint."""
    name = conn.dialect.name
    if name in ("sqlite", "postgresql"):
        stmt = (sqlite if name == "sqlite" else postgresql).insert(table).values(**values)
        stmt = stmt.on_conflict_do_nothing(index_elements=list(unique)).returning(table.c.id)
        return conn.execute(stmt).first() is not None  # (rowcount is -1 with RETURNING)
    try:
        with conn.begin_nested():
            conn.execute(table.insert().values(**values))
        return True
    except sa.exc.IntegrityError:
        exists = conn.execute(sa.select(sa.literal(1)).where(*(table.c[c] == values[c] for c in unique))).first()
        if exists is None:
            raise
        return False
