"""Initial schema: edits, pending prompts, blocked chats.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "edits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(128), nullable=False, unique=True),
        sa.Column("chat_id", sa.BigInteger, nullable=False),
        sa.Column("chat_type", sa.String(16), nullable=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.BigInteger, nullable=False),
        sa.Column("status_message_id", sa.BigInteger, nullable=True),
        sa.Column("lang", sa.String(8), nullable=False, server_default="en"),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("blob_keys", sa.JSON, nullable=True),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("task_id", sa.String(128), nullable=True),
        sa.Column("callback_token", sa.String(64), nullable=False),
        sa.Column("result_urls", sa.JSON, nullable=True),
        sa.Column("result_file_ids", sa.JSON, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_detail", sa.Text, nullable=True),
        sa.Column("credits", sa.Float, nullable=True),
        sa.Column("poll_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_check_at", sa.Float, nullable=True),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("submitted_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("notified_at", sa.Float, nullable=True),
        sa.UniqueConstraint("provider", "task_id", name="uq_edits_provider_task"),
    )
    op.create_index("ix_edits_state_next_check", "edits", ["state", "next_check_at"])
    op.create_index("ix_edits_user_created", "edits", ["user_id", "created_at"])
    op.create_index("ix_edits_chat_created", "edits", ["chat_id", "created_at"])
    op.create_table(
        "pending_prompts",
        sa.Column("chat_id", sa.BigInteger, primary_key=True),
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("message_id", sa.BigInteger, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "blocked_chats",
        sa.Column("chat_id", sa.BigInteger, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("blocked_chats")
    op.drop_table("pending_prompts")
    op.drop_index("ix_edits_chat_created", table_name="edits")
    op.drop_index("ix_edits_user_created", table_name="edits")
    op.drop_index("ix_edits_state_next_check", table_name="edits")
    op.drop_table("edits")
