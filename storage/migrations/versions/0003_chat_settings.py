"""Chat settings and pending setting inputs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_settings",
        sa.Column("chat_id", sa.BigInteger, primary_key=True),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("updated_by", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "setting_inputs",
        sa.Column("chat_id", sa.BigInteger, primary_key=True),
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("prompt_message_id", sa.BigInteger, nullable=False),
        sa.Column("menu_message_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_setting_inputs_prompt", "setting_inputs", ["chat_id", "prompt_message_id"])


def downgrade() -> None:
    op.drop_index("ix_setting_inputs_prompt", table_name="setting_inputs")
    op.drop_table("setting_inputs")
    op.drop_table("chat_settings")
