"""Datasets and their versions, the pipeline step cache, and lineage edges.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_datasets"),
    )
    op.create_table(
        "dataset_versions",
        sa.Column(
            "name",
            sa.String(256),
            sa.ForeignKey("datasets.name", name="fk_dataset_versions_name_datasets"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("artifact_digest", sa.String(64), nullable=False),
        sa.Column("num_rows", sa.BigInteger(), nullable=False),
        sa.Column("num_columns", sa.Integer(), nullable=False),
        sa.Column("schema", sa.Text(), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("runs.run_id", name="fk_dataset_versions_run_id_runs"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("name", "version", name="pk_dataset_versions"),
        sa.UniqueConstraint("name", "digest", name="uq_dataset_versions_name_digest"),
    )
    op.create_table(
        "step_cache",
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("step_name", sa.String(256), nullable=False),
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("runs.run_id", name="fk_step_cache_run_id_runs"),
            nullable=False,
        ),
        sa.Column("outputs", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("cache_key", name="pk_step_cache"),
    )
    op.create_table(
        "lineage_edges",
        sa.Column(
            "edge_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
            autoincrement=True,
        ),
        sa.Column("source_kind", sa.String(32), nullable=False),
        sa.Column("source_id", sa.String(512), nullable=False),
        sa.Column("target_kind", sa.String(32), nullable=False),
        sa.Column("target_id", sa.String(512), nullable=False),
        sa.Column("relation", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("edge_id", name="pk_lineage_edges"),
    )
    op.create_index(
        "ix_lineage_edges_source_kind_source_id", "lineage_edges", ["source_kind", "source_id"]
    )
    op.create_index(
        "ix_lineage_edges_target_kind_target_id", "lineage_edges", ["target_kind", "target_id"]
    )


def downgrade() -> None:
    op.drop_table("lineage_edges")
    op.drop_table("step_cache")
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
