"""A description per dataset version: what a later version changed was dropped before.

Version 1 of each dataset gets the dataset's description, which it was logged with.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dataset_versions", sa.Column("description", sa.Text(), nullable=True))
    op.execute(
        "UPDATE dataset_versions SET description = (SELECT d.description FROM datasets d "
        "WHERE d.name = dataset_versions.name) WHERE version = 1"
    )


def downgrade() -> None:
    with op.batch_alter_table("dataset_versions") as batch:
        batch.drop_column("description")
