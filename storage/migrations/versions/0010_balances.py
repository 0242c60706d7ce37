"""Paid edits: balances in edits and their ledger (storage/balances.py).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "balances",
        sa.Column("user_id", sa.BigInteger, primary_key=True),
        sa.Column("balance", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.CheckConstraint("balance >= 0", name="ck_balances_not_negative"),
    )
    op.create_table(
        "balance_ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.Integer, nullable=False),
        sa.Column("free", sa.Integer, nullable=False, server_default="0"),
        sa.Column("edit_id", sa.Integer, nullable=True),
        sa.Column("charge_id", sa.String(255), nullable=True),
        sa.Column("stars", sa.Integer, nullable=True),
        sa.Column("actor_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("kind", "edit_id", name="uq_balance_ledger_edit"),
        sa.UniqueConstraint("kind", "charge_id", name="uq_balance_ledger_charge"),
    )
    op.create_index("ix_balance_ledger_user", "balance_ledger", ["user_id", "created_at"])
    op.create_index("ix_balance_ledger_kind", "balance_ledger", ["kind", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_balance_ledger_kind", table_name="balance_ledger")
    op.drop_index("ix_balance_ledger_user", table_name="balance_ledger")
    op.drop_table("balance_ledger")
    op.drop_table("balances")
