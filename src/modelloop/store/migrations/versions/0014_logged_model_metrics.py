"""MLflow 3's links between runs and logged models beyond outputs: the metric points a run logged
for a model (optionally on a dataset), and the models a run took as inputs.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_model_inputs",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("model_id", sa.String(40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name="fk_run_model_inputs_run_id_runs"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.model_id"],
            name="fk_run_model_inputs_model_id_logged_models",
        ),
        sa.PrimaryKeyConstraint("run_id", "model_id", name="pk_run_model_inputs"),
    )
    op.create_table(
        "logged_model_metrics",
        sa.Column(
            "metric_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("model_id", sa.String(40), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("dataset_name", sa.String(500), nullable=True),
        sa.Column("dataset_digest", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.model_id"],
            name="fk_logged_model_metrics_model_id_logged_models",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name="fk_logged_model_metrics_run_id_runs"
        ),
        sa.PrimaryKeyConstraint("metric_id", name="pk_logged_model_metrics"),
    )
    op.create_index(
        "ix_logged_model_metrics_model_id_key", "logged_model_metrics", ["model_id", "key"]
    )


def downgrade() -> None:
    op.drop_index("ix_logged_model_metrics_model_id_key", table_name="logged_model_metrics")
    op.drop_table("logged_model_metrics")
    op.drop_table("run_model_inputs")
