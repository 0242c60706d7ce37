"""Operator alerts: codes up to 96 characters (a lifecycle incident's code names its provider,
e.g. "insufficient_credits@kie-playground").

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operator_alerts") as batch:
        batch.alter_column(
            "code", type_=sa.String(96), existing_type=sa.String(32), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("operator_alerts") as batch:
        batch.alter_column(
            "code", type_=sa.String(32), existing_type=sa.String(96), existing_nullable=False
        )
