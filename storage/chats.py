"""Blocked chats (`Database.chats`): chats the bot cannot write to any more (the user
blocked it, the bot was removed). Nothing more is sent there until the chat talks to the bot
again (`Edits.create(..., unblock_chat=True)`); `Edits.claim_for_chat` reports the flag."""

from __future__ import annotations

import time

import sqlalchemy as sa

from storage.dbconn import Backend, DbConn
from storage.schema import blocked_chats


class BlockedChats:
    def __init__(self, db: Backend) -> None:
        self._db = db

    async def block(self, chat_id: int, reason: str) -> None:
        """Record that the chat is unreachable (the first reason is kept)."""

        async def body(conn: DbConn) -> None:
            exists = await conn.execute(
                sa.select(blocked_chats.c.chat_id).where(blocked_chats.c.chat_id == chat_id)
            )
            if exists.first() is None:
                await conn.execute(
                    blocked_chats.insert().values(
                        chat_id=chat_id, reason=reason, created_at=time.time()
                    )
                )

        await self._db.transaction(body)
