"""The relational schema, as SQLAlchemy Core tables (one metadata for every aggregate).

Times are integers in milliseconds since the epoch, ids are 32-char hex strings. The migrations in
``migrations/versions`` create exactly this schema; ``tests/store/test_migrations.py`` proves it.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

experiments = Table(
    "experiments",
    metadata,
    Column("experiment_id", String(32), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("experiment_id", String(32), ForeignKey("experiments.experiment_id"), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("end_time", BigInteger, nullable=True),
    Column("parent_run_id", String(32), ForeignKey("runs.run_id"), nullable=True),
    Column("user", String(256), nullable=False),
    Column("source", Text, nullable=False),  # JSON: git commit, dirty flag, diff hash, entry point
    Column("environment", Text, nullable=False),  # JSON: python and key package versions
    Column("error", Text, nullable=True),  # why a FAILED run failed
    Index(None, "experiment_id", "start_time"),
    Index(None, "parent_run_id"),
)

params = Table(
    "params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

tags = Table(
    "tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
)

# The full history of every metric, in chunks: each logged batch stores, per key, its points as
# packed little-endian arrays (int64 steps and timestamps, float64 values). Reading 100k points is
# then a few rows and ``frombytes`` instead of 100k row objects, and NaN needs no special case.
metrics = Table(
    "metrics",
    metadata,
    Column("chunk_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("run_id", String(32), ForeignKey("runs.run_id"), nullable=False),
    Column("key", String(250), nullable=False),
    Column("count", Integer, nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("timestamps", LargeBinary, nullable=False),
    Column("values", LargeBinary, nullable=False),
    Index(None, "run_id", "key"),
)

# The point with the highest (step, timestamp) per run and key: what search filters and sorts on.
latest_metrics = Table(
    "latest_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("value", Float(precision=53), nullable=True),
    Index(None, "key", "value"),
)

# A run's artifacts: logical path -> content digest in the blob store.
artifacts = Table(
    "artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.run_id"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
