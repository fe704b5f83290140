"""Audit events name the key that authenticated them (``modelloop.audit.keys``).

Events written before keys existed keep ``key_id`` NULL: their hash is a plain sha256, which
anyone with write access could recompute, so ``audit verify`` accepts them only up to an anchor
or checkpoint recorded for them.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("key_id")
