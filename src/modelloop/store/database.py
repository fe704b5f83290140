"""One metadata database: engine set-up, the write discipline, and schema migrations.

SQLite (the embedded default) allows one writer at a time. Rather than letting concurrent
writers race into "database is locked", every write goes through :meth:`Database.write`, which
serialises writers across threads (a lock) and across processes (``flock`` on a file next to the
database) before it opens a ``BEGIN IMMEDIATE`` transaction. Readers never wait: the database runs
in WAL mode. PostgreSQL needs none of this and gets plain transactions.

The schema is migrated with Alembic on first use (and by ``modelloop db upgrade``). Checking that a
database is current costs one ``SELECT``; Alembic itself is imported only when there is work to do.
"""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from modelloop.errors import InvalidArgument, ServerUnavailable

HEAD_REVISION = "0014"
_MIGRATIONS = str(Path(__file__).parent / "migrations")
_PG_MIGRATION_LOCK = 0x6D6C6F6F70  # pg_advisory_lock key: "mloop"


_AFTER_COMMIT = "modelloop.after_commit"


def after_commit(conn: Connection, key: str, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the write transaction of ``conn`` (from ``Database.write``) has
    committed, never if it rolls back; a later callback with the same ``key`` replaces it."""
    conn.info.setdefault(_AFTER_COMMIT, {})[key] = callback


_NO_WAIT: ContextVar[bool] = ContextVar("modelloop_first_write_without_waiting", default=False)


class WouldWait(Exception):
    """Another writer holds the lock, and the caller asked not to wait: nothing was written."""


@contextmanager
def first_write_without_waiting() -> Iterator[None]:
    """Make the block's first :meth:`Database.write` raise :class:`WouldWait` rather than wait
    for another writer (later writes wait as usual). The server runs a short write this way on
    its event loop, where waiting would stall every request, and hands the work to a thread
    only when it would have to wait: the hand-off costs more than the write."""
    token = _NO_WAIT.set(True)
    try:
        yield
    finally:
        _NO_WAIT.reset(token)


class Database:
    """An engine pair (reads, writes) on one URL, with the writer discipline above."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise InvalidArgument(f"Invalid database URL {url!r}: {exc}") from exc
        self.url = url
        self.dialect = parsed.get_backend_name()
        self._thread_lock = threading.Lock()
        self._lock_file: Any = None
        try:
            if self.dialect == "sqlite":
                self._reader, self._writer = _sqlite_engines(url, parsed.database)
                self._lock_file = open(f"{parsed.database}.lock", "a+b")  # noqa: SIM115
            else:
                self._reader = self._writer = create_engine(url, pool_pre_ping=True)
        except NoSuchModuleError as exc:
            raise InvalidArgument(f"Unsupported database URL {url!r}: {exc}") from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for queries; never blocks on writers."""
        with self._connect(self._reader) as conn:
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A transaction that commits on exit; one writer at a time on SQLite. Inside
        :func:`first_write_without_waiting`, the first write raises :class:`WouldWait` instead
        of waiting for another writer."""
        wait = not _NO_WAIT.get()
        if not wait:
            _NO_WAIT.set(False)  # only the first write of the block
        if not self._thread_lock.acquire(blocking=wait):
            raise WouldWait
        callbacks: dict[str, Callable[[], None]] = {}
        try:
            if self._lock_file is not None:
                try:
                    fcntl.flock(self._lock_file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:  # another process is writing
                    raise WouldWait from None
            try:
                with self._connect(self._writer) as conn:
                    try:
                        with conn.begin():
                            yield conn
                        callbacks = conn.info.get(_AFTER_COMMIT, {})
                    finally:  # the DBAPI connection (and its info) outlives this transaction
                        conn.info.pop(_AFTER_COMMIT, None)
            finally:
                if self._lock_file is not None:
                    fcntl.flock(self._lock_file, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()
        for callback in callbacks.values():  # committed: what must follow it, outside the lock
            callback()

    def _connect(self, engine: Engine) -> Connection:
        """A connection, or ServerUnavailable: a database we cannot reach is not our bug."""
        try:
            return engine.connect()
        except OperationalError as exc:
            safe = make_url(self.url).render_as_string(hide_password=True)
            raise ServerUnavailable(f"Cannot reach the database at {safe}: {exc.orig}") from exc

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at, or None when it has no schema yet."""
        with self.read() as conn:
            revision = conn.execute(_revision_query(conn)).scalar()
        return None if revision is None else str(revision)

    def upgrade(self) -> str | None:
        """Migrate to the newest schema; returns the revision it started from."""
        from alembic import command
        from alembic.config import Config

        with self.write() as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            before = conn.execute(_revision_query(conn)).scalar()
            if before != HEAD_REVISION:
                config = Config()
                config.set_main_option("script_location", _MIGRATIONS)
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        return before

    def ensure_current(self) -> None:
        """Apply pending migrations; cheap when there are none."""
        if self.current_revision() != HEAD_REVISION:
            self.upgrade()

    def dispose(self) -> None:
        self._reader.dispose()
        self._writer.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _revision_query(conn: Connection) -> Any:
    from sqlalchemy import inspect

    if not inspect(conn).has_table("alembic_version"):
        return text("SELECT NULL")
    return text("SELECT version_num FROM alembic_version")


def _sqlite_engines(url: str, database: str | None) -> tuple[Engine, Engine]:
    if not database or database == ":memory:":
        raise InvalidArgument("An in-memory SQLite database cannot be shared; give a file path")
    Path(database).parent.mkdir(parents=True, exist_ok=True)
    args = {"check_same_thread": False, "timeout": 60}
    reader = create_engine(url, connect_args=args)
    writer = create_engine(url, connect_args=args, pool_size=1, max_overflow=0)
    _configure_sqlite(reader, begin="BEGIN")
    _configure_sqlite(writer, begin="BEGIN IMMEDIATE")
    return reader, writer


def _configure_sqlite(engine: Engine, begin: str) -> None:
    """WAL, a long busy timeout, and explicit transactions (pysqlite's implicit ones are off)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


_open: dict[str, Database] = {}
_open_lock = threading.Lock()


def open_database(url: str) -> Database:
    """The process-wide :class:`Database` for ``url``, migrated to the newest schema."""
    with _open_lock:
        db = _open.get(url)
        if db is None:
            db = Database(url)
            db.ensure_current()
            _open[url] = db
        return db


def close_database(url: str) -> None:
    """Dispose of the process-wide :class:`Database` for ``url`` (tests, long-lived tools)."""
    with _open_lock:
        db = _open.pop(url, None)
    if db is not None:
        db.dispose()
