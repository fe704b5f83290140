"""The metadata store: SQLAlchemy tables, Alembic migrations and the engine discipline."""

from modelloop.store.database import HEAD_REVISION, Database, open_database

__all__ = ["HEAD_REVISION", "Database", "open_database"]
