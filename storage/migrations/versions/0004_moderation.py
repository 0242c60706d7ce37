"""Group moderation: the requester's name, approval decisions and removals on edits.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("user_name", sa.String(128)),
    ("approval_message_id", sa.BigInteger()),
    ("decision", sa.String(16)),
    ("decided_by", sa.BigInteger()),
    ("decided_by_name", sa.String(128)),
    ("decided_at", sa.Float()),
    ("removed_by_name", sa.String(128)),
    ("removed_at", sa.Float()),
)


def upgrade() -> None:
    with op.batch_alter_table("edits") as batch:
        for name, type_ in COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    # Limits count a member's requests in a group over a time window.
    op.create_index("ix_edits_chat_user_created", "edits", ["chat_id", "user_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_edits_chat_user_created", table_name="edits")
    with op.batch_alter_table("edits") as batch:
        for name, _type in reversed(COLUMNS):
            batch.drop_column(name)
