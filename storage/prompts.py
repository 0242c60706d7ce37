"""Pending prompts (`Database.prompts`): a photo came without a caption, so the next text of
its sender in that chat is the prompt for it."""

from __future__ import annotations

import time

import sqlalchemy as sa

from domain.edit import InputPhoto
from storage.dbconn import Backend, DbConn
from storage.schema import pending_prompts


class PendingPrompts:
    """The photo (at most one per user and chat) waiting for its prompt."""

    def __init__(self, db: Backend) -> None:
        self._db = db

    async def put(
        self, chat_id: int, user_id: int, message_id: int, inputs: list[InputPhoto]
    ) -> None:
        """Wait for this user's prompt for `inputs` (instead of any earlier photo)."""
        values = {
            "chat_id": chat_id,
            "user_id": user_id,
            "message_id": message_id,
            "inputs": [item.to_json() for item in inputs],
            "created_at": time.time(),
        }

        async def body(conn: DbConn) -> None:
            await conn.execute(
                pending_prompts.delete().where(
                    pending_prompts.c.chat_id == chat_id, pending_prompts.c.user_id == user_id
                )
            )
            await conn.execute(pending_prompts.insert().values(**values))

        await self._db.transaction(body)

    async def take(
        self, chat_id: int, user_id: int, *, max_age: float
    ) -> tuple[int, list[InputPhoto]] | None:
        """Remove and return the photo waiting for this user's prompt, if fresh enough."""
        stmt = (
            pending_prompts.delete()
            .where(pending_prompts.c.chat_id == chat_id, pending_prompts.c.user_id == user_id)
            .returning(pending_prompts)
        )
        row = (await self._db.execute(stmt)).mappings().first()
        if row is None or row["created_at"] < time.time() - max_age:
            return None
        return int(row["message_id"]), [InputPhoto.from_json(item) for item in row["inputs"]]

    async def asked_at(self, chat_id: int, user_id: int) -> float | None:
        """When the bot asked this user for an edit prompt (None: it is not waiting)."""
        stmt = sa.select(pending_prompts.c.created_at).where(
            pending_prompts.c.chat_id == chat_id, pending_prompts.c.user_id == user_id
        )
        value = (await self._db.execute(stmt)).scalar()
        return float(value) if value is not None else None
