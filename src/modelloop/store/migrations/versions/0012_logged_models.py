"""Logged models as MLflow 3 clients create them, and the runs that output them.

A logged model's files are artifacts of a run (``models/<model_id>/...``), so this holds only
what MLflow says about the model: its experiment, name, status, tags and params.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "logged_models",
        sa.Column("model_id", sa.String(40), nullable=False),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("source_run_id", sa.String(32), nullable=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("model_type", sa.String(256), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("deleted_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name="fk_logged_models_experiment_id_experiments",
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_logged_models_run_id_runs"),
        sa.ForeignKeyConstraint(
            ["source_run_id"], ["runs.run_id"], name="fk_logged_models_source_run_id_runs"
        ),
        sa.PrimaryKeyConstraint("model_id", name="pk_logged_models"),
    )
    op.create_index(
        "ix_logged_models_experiment_id_created_at",
        "logged_models",
        ["experiment_id", "created_at"],
    )
    op.create_table(
        "run_outputs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(40), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name="fk_run_outputs_run_id_runs"),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.model_id"],
            name="fk_run_outputs_model_id_logged_models",
        ),
        sa.PrimaryKeyConstraint("run_id", "model_id", name="pk_run_outputs"),
    )


def downgrade() -> None:
    op.drop_table("run_outputs")
    op.drop_index("ix_logged_models_experiment_id_created_at", table_name="logged_models")
    op.drop_table("logged_models")
