"""Requests and errors per minute of each serving process.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "serving_stats",
        sa.Column("deployment", sa.String(256), nullable=False),
        sa.Column("instance", sa.String(128), nullable=False),
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("route", sa.String(32), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "deployment", "instance", "minute", "route", name="pk_serving_stats"
        ),
    )
    op.create_index("ix_serving_stats_deployment_minute", "serving_stats", ["deployment", "minute"])


def downgrade() -> None:
    op.drop_table("serving_stats")
