"""Tracking: experiments, runs, params, tags, metrics (history and latest), artifacts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", name="pk_experiments"),
        sa.UniqueConstraint("name", name="uq_experiments_name"),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column(
            "experiment_id",
            sa.String(32),
            sa.ForeignKey("experiments.experiment_id", name="fk_runs_experiment_id_experiments"),
            nullable=False,
        ),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger(), nullable=True),
        sa.Column(
            "parent_run_id",
            sa.String(32),
            sa.ForeignKey("runs.run_id", name="fk_runs_parent_run_id_runs"),
            nullable=True,
        ),
        sa.Column("user", sa.String(256), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
    )
    op.create_index("ix_runs_experiment_id_start_time", "runs", ["experiment_id", "start_time"])
    op.create_index("ix_runs_parent_run_id", "runs", ["parent_run_id"])
    for table in ("params", "tags"):
        op.create_table(
            table,
            sa.Column(
                "run_id",
                sa.String(32),
                sa.ForeignKey("runs.run_id", name=f"fk_{table}_run_id_runs"),
                nullable=False,
            ),
            sa.Column("key", sa.String(250), nullable=False),
            sa.Column("value", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("run_id", "key", name=f"pk_{table}"),
        )
    op.create_table(
        "metrics",
        sa.Column(
            "chunk_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("runs.run_id", name="fk_metrics_run_id_runs"),
            nullable=False,
        ),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("steps", sa.LargeBinary(), nullable=False),
        sa.Column("timestamps", sa.LargeBinary(), nullable=False),
        sa.Column("values", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("chunk_id", name="pk_metrics"),
    )
    op.create_index("ix_metrics_run_id_key", "metrics", ["run_id", "key"])
    op.create_table(
        "latest_metrics",
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("runs.run_id", name="fk_latest_metrics_run_id_runs"),
            nullable=False,
        ),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "key", name="pk_latest_metrics"),
    )
    op.create_index("ix_latest_metrics_key_value", "latest_metrics", ["key", "value"])
    op.create_table(
        "artifacts",
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("runs.run_id", name="fk_artifacts_run_id_runs"),
            nullable=False,
        ),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "path", name="pk_artifacts"),
    )


def downgrade() -> None:
    for table in ("artifacts", "latest_metrics", "metrics", "tags", "params", "runs"):
        op.drop_table(table)
    op.drop_table("experiments")
