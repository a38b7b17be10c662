"""The first released schema of the canonical store: records, sync state, writeback ledger and rejections.

The tables, columns, types, nullability, keys and indexes the models defined when okr-sync first shipped
migrations, written out as operations so later model changes never rewrite history. A store made before
migrations existed is brought to this shape by connectors.migrations.legacy and stamped with this revision.

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
        "account",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("industry", sa.String(), nullable=True),
        sa.Column("account_type", sa.String(), nullable=True),
        sa.Column("created_date", sa.Date(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id"),
    )
    op.create_table(
        "activity",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("deal_id", sa.String(), nullable=True),
        sa.Column("activity_date", sa.Date(), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("direction", sa.String(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id"),
    )
    op.create_index("ix_activity_live_date", "activity", [
        "source", "is_deleted", "activity_date", "kind", "direction", "outcome", "duration_seconds", "owner_id",
        "deal_id",
    ])
    op.create_table(
        "campaign",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("campaign_type", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("budgeted_cost", sa.Float(), nullable=True),
        sa.Column("actual_cost", sa.Float(), nullable=True),
        sa.Column("expected_revenue", sa.Float(), nullable=True),
        sa.Column("created_date", sa.Date(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id"),
    )
    op.create_table(
        "contact",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("lead_source", sa.String(), nullable=True),
        sa.Column("lifecycle_stage", sa.String(), nullable=True),
        sa.Column("created_date", sa.Date(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id"),
    )
    op.create_table(
        "deal",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("deal_type", sa.String(), nullable=True),
        sa.Column("stage", sa.String(), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("probability", sa.Float(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("created_date", sa.Date(), nullable=True),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("lead_source", sa.String(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id"),
    )
    op.create_index("ix_deal_live_close_v2", "deal", [
        "source", "is_deleted", "close_date", "is_won", "is_closed", "amount", "owner_id", "deal_type", "stage",
        "lead_source", "created_date", "account_id", "probability",
    ])
    op.create_index("ix_deal_live_created", "deal", ["source", "is_deleted", "created_date"])
    op.create_table(
        "lead",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("company", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("lead_source", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=True),
        sa.Column("is_converted", sa.Boolean(), nullable=False),
        sa.Column("converted_date", sa.Date(), nullable=True),
        sa.Column("converted_account_id", sa.String(), nullable=True),
        sa.Column("converted_contact_id", sa.String(), nullable=True),
        sa.Column("created_date", sa.Date(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id"),
    )
    op.create_table(
        "line_item",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("deal_id", sa.String(), nullable=True),
        sa.Column("product_id", sa.String(), nullable=True),
        sa.Column("product_name", sa.String(), nullable=True),
        sa.Column("product_family", sa.String(), nullable=True),
        sa.Column("quantity", sa.Float(), nullable=True),
        sa.Column("unit_price", sa.Float(), nullable=True),
        sa.Column("total_price", sa.Float(), nullable=True),
        sa.Column("created_date", sa.Date(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id"),
    )
    op.create_index("ix_line_item_deal_id", "line_item", ["deal_id"])
    op.create_table(
        "owner",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("team", sa.String(), nullable=True),
        sa.Column("region", sa.String(), nullable=True),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id"),
    )
    op.create_index("ix_owner_email", "owner", ["email"])
    op.create_table(
        "support_case",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("source_id", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=True),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("owner_id", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=True),
        sa.Column("priority", sa.String(), nullable=True),
        sa.Column("origin", sa.String(), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_date", sa.Date(), nullable=True),
        sa.Column("closed_date", sa.Date(), nullable=True),
        sa.Column("modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("custom", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("source", "source_id"),
    )
    op.create_table(
        "sync_state",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("stream", sa.String(), nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_id", sa.String(), nullable=True),
        sa.Column("records_last_run", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("field_set", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("source", "stream"),
    )
    op.create_table(
        "writeback_ledger",
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("fingerprint", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("target", "key"),
    )
    op.create_table(
        "writeback_rejection",
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("object", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("target", "object", "key"),
    )


def downgrade() -> None:
    op.drop_table("writeback_rejection")
    op.drop_table("writeback_ledger")
    op.drop_table("sync_state")
    op.drop_table("support_case")
    op.drop_index("ix_owner_email", table_name="owner")
    op.drop_table("owner")
    op.drop_index("ix_line_item_deal_id", table_name="line_item")
    op.drop_table("line_item")
    op.drop_table("lead")
    op.drop_index("ix_deal_live_created", table_name="deal")
    op.drop_index("ix_deal_live_close_v2", table_name="deal")
    op.drop_table("deal")
    op.drop_table("contact")
    op.drop_table("campaign")
    op.drop_index("ix_activity_live_date", table_name="activity")
    op.drop_table("activity")
    op.drop_table("account")
