"""When an experiment last changed (renamed, tagged, deleted or restored): MLflow's clients sort
experiments by it. Null until the first change (it is then its creation time).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("experiments", sa.Column("updated_at", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("updated_at")
