"""Provider turns: the new tasks sent to each provider account in its rate-limit window.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_turns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(32), nullable=False),
        sa.Column("requester", sa.BigInteger, nullable=False),
        sa.Column("edit_id", sa.Integer, nullable=False),
        sa.Column("taken_at", sa.Float, nullable=False),
    )
    op.create_index("ix_provider_turns_account_taken", "provider_turns", ["account", "taken_at"])


def downgrade() -> None:
    op.drop_index("ix_provider_turns_account_taken", table_name="provider_turns")
    op.drop_table("provider_turns")
