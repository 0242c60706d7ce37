"""Operators' runtime control of users, their audit log, throttled actions, shared incidents.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_controls",
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("banned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("allowed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("max_in_flight", sa.Integer, nullable=True),
        sa.Column("daily_edits", sa.Integer, nullable=True),
        sa.Column("daily_credits", sa.Float, nullable=True),
        sa.Column("updated_by", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "operator_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("operator_id", sa.BigInteger, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=True),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "action_marks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("subject", sa.BigInteger, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_action_marks_user", "action_marks", ["action", "user_id", "at"])
    op.create_index("ix_action_marks_subject", "action_marks", ["action", "subject", "at"])
    op.create_table(
        "operator_alerts",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("open", sa.Boolean, nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("changed_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("operator_alerts")
    op.drop_index("ix_action_marks_subject", table_name="action_marks")
    op.drop_index("ix_action_marks_user", table_name="action_marks")
    op.drop_table("action_marks")
    op.drop_table("operator_log")
    op.drop_table("user_controls")
