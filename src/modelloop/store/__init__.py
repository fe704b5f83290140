"""The metadata store: SQLAlchemy tables, Alembic migrations and the engine discipline."""

from modelloop.store.database import (
    HEAD_REVISION,
    Database,
    WouldWait,
    close_database,
    first_write_without_waiting,
    open_database,
)

__all__ = [
    "HEAD_REVISION",
    "Database",
    "WouldWait",
    "close_database",
    "first_write_without_waiting",
    "open_database",
]
