"""Tracking as MLflow's clients use it: deleted (restorable) runs and experiments, experiment
tags, and the datasets a run took as inputs.

``deleted_at`` is null for a live run or experiment; a deleted one is hidden from searches and
listings unless asked for, and restoring it clears the column.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("deleted_at", sa.BigInteger(), nullable=True))
    op.add_column("runs", sa.Column("deleted_at", sa.BigInteger(), nullable=True))
    op.create_table(
        "experiment_tags",
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_experiment_tags_experiment_id_experiments",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "key", name="pk_experiment_tags"),
    )
    op.create_table(
        "run_inputs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("source_type", sa.String(64), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("schema", sa.Text(), nullable=True),
        sa.Column("profile", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_run_inputs_run_id_runs"),
        sa.PrimaryKeyConstraint("run_id", "name", "digest", name="pk_run_inputs"),
    )


def downgrade() -> None:
    op.drop_table("run_inputs")
    op.drop_table("experiment_tags")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("deleted_at")
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("deleted_at")
