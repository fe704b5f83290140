"""Automation policies and where each one's loop stands.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policies",
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_policies"),
    )
    op.create_table(
        "policy_state",
        sa.Column(
            "name",
            sa.String(256),
            sa.ForeignKey("policies.name", name="fk_policy_state_name_policies"),
            nullable=False,
        ),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("challenger_version", sa.Integer(), nullable=True),
        sa.Column("champion_version", sa.Integer(), nullable=True),
        sa.Column("stage_started_at", sa.BigInteger(), nullable=True),
        sa.Column("last_trained_at", sa.BigInteger(), nullable=True),
        sa.Column("last_checked_at", sa.BigInteger(), nullable=True),
        sa.Column("trainings", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_policy_state"),
    )


def downgrade() -> None:
    op.drop_table("policy_state")
    op.drop_table("policies")
