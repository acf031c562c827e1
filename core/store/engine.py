"""The database connection behind a :class:`~core.store.Store`: one SQLAlchemy engine per store, shared by threads,
and the retry of transactions that met a busy or restarting database.

SQLite (the default) runs in WAL mode (readers never wait for the writer), with ``synchronous=FULL`` (a commit is
on disk before it returns), a busy timeout, foreign keys on, and ``BEGIN IMMEDIATE`` for writing transactions, so a
writer waits for the lock at its start instead of failing half way. Other databases (PostgreSQL through
``postgresql+psycopg://``) get a pool that tests each connection before use, so a restarted server is reconnected.
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


def make_engine(url: str | sa.URL) -> sa.Engine:
    """An engine for ``url``; for SQLite the file's folder is created and WAL mode set on every connection.

    Raises:
        StoreError: an unreadable URL, an in-memory SQLite database (not shared between threads), or a folder
            that cannot be created.
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
    try:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"The folder of the workshop database {url.database} cannot be created ({e.strerror}).") \
            from None
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
                              **pool)

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" below emits BEGIN itself
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", f"busy_timeout={BUSY_TIMEOUT_MS}", "synchronous=FULL",
                       "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


def transient(error: Exception) -> bool:
    """Whether a failed transaction may succeed when run again: a locked or busy SQLite file, a lost or refused
    server connection or a serialisation failure (OperationalError), an invalidated connection, an empty pool."""
    if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sa.exc.OperationalError):
        message = str(error.orig).lower()
        sqlite_kind = type(error.orig).__module__.startswith("sqlite3")
        return not sqlite_kind or "locked" in message or "busy" in message
    return isinstance(error, sa.exc.TimeoutError)  # the pool stayed empty for pool_timeout


def run(engine: sa.Engine, fn, write: bool, retry_s: float):
    """``fn(conn)`` inside one transaction (committed when it returns, rolled back when it raises), run again
    while the database is busy or restarting, for at most ``retry_s`` seconds.

    Raises:
        StoreUnavailable: the database stayed busy or unreachable.
    """
    deadline = time.monotonic() + retry_s
    delay = 0.01
    while True:
        try:
            with engine.connect() as conn:
                if write:
                    conn.execution_options(write=True)
                with conn.begin():
                    return fn(conn)
        except sa.exc.SQLAlchemyError as e:
            if not transient(e):
                raise
            if time.monotonic() + delay > deadline:
                raise StoreUnavailable(f"The workshop database did not answer within {retry_s:g} s "
                                       f"({str(getattr(e, 'orig', e)).splitlines()[0]}); try again.") from None
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
