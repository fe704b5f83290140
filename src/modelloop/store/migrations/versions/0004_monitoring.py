"""Monitors, their window results and values, and alerts.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_monitors"),
    )
    op.create_table(
        "monitor_windows",
        sa.Column("window_id", _ID, nullable=False, autoincrement=True),
        sa.Column(
            "monitor",
            sa.String(256),
            sa.ForeignKey("monitors.name", name="fk_monitor_windows_monitor_monitors"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("window_end", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("n_predictions", sa.BigInteger(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("computed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("window_id", name="pk_monitor_windows"),
        sa.UniqueConstraint(
            "monitor",
            "kind",
            "model_version",
            "window_start",
            "window_end",
            name="uq_monitor_windows",
        ),
    )
    op.create_table(
        "monitor_values",
        sa.Column(
            "window_id",
            sa.BigInteger(),
            sa.ForeignKey(
                "monitor_windows.window_id", name="fk_monitor_values_window_id_monitor_windows"
            ),
            nullable=False,
        ),
        sa.Column("metric", sa.String(300), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("window_id", "metric", name="pk_monitor_values"),
    )
    op.create_table(
        "alerts",
        sa.Column("alert_id", _ID, nullable=False, autoincrement=True),
        sa.Column(
            "monitor",
            sa.String(256),
            sa.ForeignKey("monitors.name", name="fk_alerts_monitor_monitors"),
            nullable=False,
        ),
        sa.Column("rule", sa.String(256), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(300), nullable=False),
        sa.Column("condition", sa.String(64), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("first_window", sa.BigInteger(), nullable=False),
        sa.Column("last_window", sa.BigInteger(), nullable=False),
        sa.Column("breaches", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("notified", sa.String(16), nullable=True),
        sa.Column("deliveries", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_monitor_rule_state", "alerts", ["monitor", "rule", "state"])
    op.create_index("ix_alerts_state_notified", "alerts", ["state", "notified"])


def downgrade() -> None:
    op.drop_table("alerts")
    op.drop_table("monitor_values")
    op.drop_table("monitor_windows")
    op.drop_table("monitors")
