"""Forum topics: the topic (message_thread_id) an edit and a buffered album photo came from.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("edits") as batch:
        batch.add_column(sa.Column("thread_id", sa.BigInteger, nullable=True))
    with op.batch_alter_table("album_items") as batch:
        batch.add_column(sa.Column("thread_id", sa.BigInteger, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("album_items") as batch:
        batch.drop_column("thread_id")
    with op.batch_alter_table("edits") as batch:
        batch.drop_column("thread_id")
