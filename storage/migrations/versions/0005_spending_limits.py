"""Spending limits: the expected cost of each edit, and the operator alerts already sent.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("edits") as batch:
        batch.add_column(sa.Column("cost_estimate", sa.Float(), nullable=True))
    op.create_table(
        "spend_alerts",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float(), nullable=False),
    )
    # Per-user limits count a user's edits (in every chat) in flight; the cap, all edits
    # since the start of the day or month.
    op.create_index("ix_edits_user_state", "edits", ["user_id", "state"])
    op.create_index("ix_edits_created", "edits", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_edits_created", table_name="edits")
    op.drop_index("ix_edits_user_state", table_name="edits")
    op.drop_table("spend_alerts")
    with op.batch_alter_table("edits") as batch:
        batch.drop_column("cost_estimate")
