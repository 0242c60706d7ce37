"""Albums (media groups) buffered until complete (`Database.albums`).

Telegram sends an album as one message per photo. Each is kept in `album_items` under its
group's row in `albums`; once the group went quiet, exactly one worker claims it (closing
the row) and gets its messages. The closed row stays for a while, so a repeated update of
one of its messages is recognised as late, not taken for a new album.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from domain.edit import AlbumItem
from storage.dbconn import Backend, DbConn
from storage.rows import album_item_from_row
from storage.schema import album_items, albums

# How long a closed album is remembered (after its last message): Telegram keeps an update
# the bot has not taken for at most 24 hours, so no repeat of its messages comes later.
CLOSED_RETENTION = 24 * 3600.0


class Albums:
    """Buffering an album's messages and handing the complete album to one worker."""

    def __init__(self, db: Backend) -> None:
        self._db = db

    async def add_item(self, item: AlbumItem) -> bool:
        """Buffer one album message; False if the group was already turned into an edit."""
        now = time.time()
        try:
            await self._db.execute(
                albums.insert().values(
                    chat_id=item.chat_id,
                    media_group_id=item.media_group_id,
                    state="open",
                    last_item_at=now,
                    created_at=now,
                )
            )
        except IntegrityError:
            result = await self._db.execute(
                albums.update()
                .where(
                    albums.c.chat_id == item.chat_id,
                    albums.c.media_group_id == item.media_group_id,
                    albums.c.state == "open",
                )
                .values(last_item_at=now)
            )
            if not result.rowcount:
                return False
        try:
            await self._db.execute(
                album_items.insert().values(
                    chat_id=item.chat_id,
                    message_id=item.message_id,
                    media_group_id=item.media_group_id,
                    user_id=item.user_id,
                    chat_type=item.chat_type,
                    lang=item.lang,
                    caption=item.caption,
                    photo=item.photo.to_json() if item.photo else None,
                    created_at=now,
                    thread_id=item.thread_id,
                )
            )
        except IntegrityError:
            return True  # a repeated update of the same message
        return True

    async def last_item_at(self, chat_id: int, media_group_id: str) -> float | None:
        """When the newest message of an open album arrived (None: closed or unknown)."""
        stmt = sa.select(albums.c.last_item_at).where(
            albums.c.chat_id == chat_id,
            albums.c.media_group_id == media_group_id,
            albums.c.state == "open",
        )
        value = (await self._db.execute(stmt)).scalar()
        return float(value) if value is not None else None

    async def claim(
        self, chat_id: int, media_group_id: str, *, quiet_since: float
    ) -> list[AlbumItem] | None:
        """Close an album that got no new message since `quiet_since`; exactly one caller wins.

        The same transaction forgets albums closed more than CLOSED_RETENTION ago.
        """
        group = (album_items.c.chat_id == chat_id, album_items.c.media_group_id == media_group_id)
        forget_before = time.time() - CLOSED_RETENTION

        async def body(conn: DbConn) -> list[AlbumItem] | None:
            result = await conn.execute(
                albums.update()
                .where(
                    albums.c.chat_id == chat_id,
                    albums.c.media_group_id == media_group_id,
                    albums.c.state == "open",
                    albums.c.last_item_at <= quiet_since,
                )
                .values(state="closed")
            )
            if not result.rowcount:
                return None
            rows = await conn.execute(
                sa.select(album_items).where(*group).order_by(album_items.c.message_id)
            )
            await conn.execute(album_items.delete().where(*group))
            await conn.execute(
                albums.delete().where(
                    albums.c.state == "closed", albums.c.last_item_at < forget_before
                )
            )
            return [album_item_from_row(row) for row in rows.mappings().all()]

        return await self._db.transaction(body)

    async def stalled(self, *, quiet_since: float) -> list[tuple[int, str]]:
        """Albums still open whose last message is older than `quiet_since` (for recovery)."""
        stmt = sa.select(albums.c.chat_id, albums.c.media_group_id).where(
            albums.c.state == "open", albums.c.last_item_at <= quiet_since
        )
        return [(int(chat), str(group)) for chat, group in (await self._db.execute(stmt)).all()]
