"""The first released schema of the check-in history: snapshots, corrections, target changes.

The tables, columns, types, nullability, keys and indexes the models defined when okr-sync first shipped
migrations, written out as operations so later model changes never rewrite history. A store made before
migrations existed is brought to this shape by okr_mapping.history (creating the tables it lacks) and
stamped with this revision.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kr_correction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("old_value", sa.Float(), nullable=False),
        sa.Column("new_value", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_kr_correction_source", "kr_correction", ["source"])
    op.create_table(
        "kr_snapshot",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("objective_id", sa.String(), nullable=False),
        sa.Column("kr_id", sa.String(), nullable=False),
        sa.Column("group", sa.String(), nullable=True),
        sa.Column("period", sa.String(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("baseline", sa.Float(), nullable=False),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("expected_progress", sa.Float(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("forecast", sa.Float(), nullable=True),
        sa.Column("forecast_confidence", sa.Float(), nullable=True),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.Column("config_revision", sa.String(), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "key", "as_of"),
    )
    op.create_index("ix_kr_snapshot_period", "kr_snapshot", ["source", "key", "period_end", "as_of"])
    op.create_table(
        "kr_target_change",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("old_target", sa.Float(), nullable=False),
        sa.Column("new_target", sa.Float(), nullable=False),
        sa.Column("old_revision", sa.String(), nullable=True),
        sa.Column("new_revision", sa.String(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_kr_target_change_source", "kr_target_change", ["source"])


def downgrade() -> None:
    op.drop_index("ix_kr_target_change_source", table_name="kr_target_change")
    op.drop_table("kr_target_change")
    op.drop_index("ix_kr_snapshot_period", table_name="kr_snapshot")
    op.drop_table("kr_snapshot")
    op.drop_index("ix_kr_correction_source", table_name="kr_correction")
    op.drop_table("kr_correction")
