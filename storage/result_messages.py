"""Result messages (`Database.result_messages`): the messages the bot posted carrying an
edit's result, by chat and message id.

Callback data comes from the client and can be anything, so a button under a result acts
only on what this table says the pressed message carries: "Remove" deletes exactly the
recorded messages of that edit in that chat, never a span of ids named by the button.
Results posted before this table existed have no rows, and their "Remove" is refused.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from storage.dbconn import Backend, Statement
from storage.schema import result_messages

_C = result_messages.c
_EDIT_OF = sa.select(_C.edit_id).where(
    _C.chat_id == sa.bindparam("w_chat"), _C.message_id == sa.bindparam("w_message")
)
_OF_EDIT = (
    sa.select(_C.message_id)
    .where(_C.edit_id == sa.bindparam("w_edit"), _C.chat_id == sa.bindparam("w_chat"))
    .order_by(_C.message_id)
)


class ResultMessages:
    def __init__(self, db: Backend) -> None:
        self._db = db
        insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        self._insert = insert(result_messages).on_conflict_do_nothing()

    def recording(self, edit_id: int, chat_id: int, message_ids: Sequence[int]) -> Statement:
        """The statement remembering that `message_ids` in `chat_id` carry the result of
        `edit_id` (a message recorded before keeps its edit), to run on its own (`record`)
        or in another write's transaction (`Edits.transition(..., also=...)`)."""
        now = time.time()
        rows = [
            {"chat_id": chat_id, "message_id": message_id, "edit_id": edit_id, "created_at": now}
            for message_id in sorted(set(message_ids))
        ]
        return self._insert, rows

    async def record(self, edit_id: int, chat_id: int, message_ids: Sequence[int]) -> None:
        if message_ids:
            await self._db.execute(*self.recording(edit_id, chat_id, message_ids))

    async def edit_of(self, chat_id: int, message_id: int) -> int | None:
        """The edit whose result `message_id` in `chat_id` carries, if it carries one."""
        rows = await self._db.execute(_EDIT_OF, {"w_chat": chat_id, "w_message": message_id})
        found = rows.scalar()
        return int(found) if found is not None else None

    async def of_edit(self, edit_id: int, chat_id: int) -> list[int]:
        """Every message in `chat_id` recorded as carrying the result of `edit_id`."""
        rows = await self._db.execute(_OF_EDIT, {"w_edit": edit_id, "w_chat": chat_id})
        return [int(row[0]) for row in rows.all()]
