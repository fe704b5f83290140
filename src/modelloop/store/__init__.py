"""The metadata store: SQLAlchemy tables, Alembic migrations and the engine discipline."""

from modelloop.store.database import HEAD_REVISION, Database, close_database, open_database

__all__ = ["HEAD_REVISION", "Database", "close_database", "open_database"]
