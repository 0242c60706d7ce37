"""Chat settings in the database: what the next edit of a chat uses, and the language override.

A private chat's settings belong to its user (Telegram gives a private chat the user's id),
so the user's language override lives there too; a group's settings apply to every edit in
the group. Settings are one JSON document per chat, changed by compare-and-set on a version
number, so two admins pressing buttons at once never lose a change. Reads go through a small
time-limited cache (most updates read the settings once or twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from storage.dbconn import Backend, DbConn
from storage.moderation import Moderation
from storage.schema import chat_settings, setting_inputs

CACHE_TTL = 30.0
CACHE_MAX = 10_000
CAS_ATTEMPTS = 8
# Built once: executing a prepared statement is cheaper than building one (storage.statements).
_LOAD = sa.select(chat_settings.c.settings, chat_settings.c.version).where(
    chat_settings.c.chat_id == sa.bindparam("w_chat")
)


class SettingsConflict(RuntimeError):
    """The settings kept changing under us (should not happen outside a stampede)."""


@dataclass(frozen=True)
class ChatPrefs:
    """One chat's settings; unset values mean "the default" (DEFAULT_MODEL, auto size…)."""

    model: str | None = None
    lang: str | None = None
    send_as_file: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    moderation: Moderation = field(default_factory=Moderation)  # groups only (/moderation)
    generator: str | None = None  # the model /imagine draws with

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"params": dict(self.params)}
        if self.model is not None:
            data["model"] = self.model
        if self.lang is not None:
            data["lang"] = self.lang
        if self.send_as_file:
            data["send_as_file"] = True
        if self.generator is not None:
            data["generator"] = self.generator
        moderation = self.moderation.to_json()
        if moderation:
            data["moderation"] = moderation
        return data

    @classmethod
    def from_json(cls, data: Any) -> ChatPrefs:
        if not isinstance(data, dict):
            return cls()
        params = data.get("params")
        model, lang, generator = data.get("model"), data.get("lang"), data.get("generator")
        return cls(
            model=model if isinstance(model, str) else None,
            lang=lang if isinstance(lang, str) else None,
            send_as_file=data.get("send_as_file") is True,
            params=dict(params) if isinstance(params, dict) else {},
            moderation=Moderation.from_json(data.get("moderation")),
            generator=generator if isinstance(generator, str) else None,
        )

    def with_param(self, name: str, value: Any) -> ChatPrefs:
        """A copy with `name` set to `value` (None removes it: the default applies)."""
        params = {key: item for key, item in self.params.items() if key != name}
        if value is not None:
            params[name] = value
        return replace(self, params=params)


@dataclass(frozen=True)
class PendingInput:
    """The bot asked `user_id` in `chat_id` for the value of a setting as free text."""

    chat_id: int
    user_id: int
    name: str
    prompt_message_id: int
    menu_message_id: int | None
    created_at: float = 0.0


class ChatSettings:
    """Reads and changes chat settings (`Database.chat_settings`); also remembers settings
    the bot asked for as text. Each instance has its own cache (one per replica)."""

    def __init__(self, db: Backend, *, ttl: float = CACHE_TTL, max_entries: int = CACHE_MAX):
        self._db = db
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[int, tuple[float, ChatPrefs]] = {}

    # Settings ------------------------------------------------------------------------------

    def cached(self, chat_id: int) -> ChatPrefs | None:
        """The settings if they are in the cache and fresh (no database access)."""
        entry = self._cache.get(chat_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    async def get(self, chat_id: int, *, fresh: bool = False) -> ChatPrefs:
        """The chat's settings; `fresh` reads the database (another replica may have changed
        them), otherwise a cached copy up to CACHE_TTL seconds old will do (languages)."""
        prefs = None if fresh else self.cached(chat_id)
        if prefs is None:
            prefs, _version = await self._load(chat_id)
            self._remember(chat_id, prefs)
        return prefs

    async def update(
        self, chat_id: int, change: Callable[[ChatPrefs], ChatPrefs], *, user_id: int | None
    ) -> ChatPrefs:
        """Apply `change` to the stored settings atomically (compare-and-set, retried)."""
        for _attempt in range(CAS_ATTEMPTS):
            current, version = await self._load(chat_id)
            new = change(current)
            if new == current:
                self._remember(chat_id, current)
                return current
            if await self._store(chat_id, new, version, user_id):
                self._remember(chat_id, new)
                return new
        raise SettingsConflict(f"settings of chat {chat_id} kept changing")

    async def _load(self, chat_id: int) -> tuple[ChatPrefs, int | None]:
        row = (await self._db.execute(_LOAD, {"w_chat": chat_id})).first()
        if row is None:
            return ChatPrefs(), None
        return ChatPrefs.from_json(row.settings), int(row.version)

    async def _store(
        self, chat_id: int, prefs: ChatPrefs, version: int | None, user_id: int | None
    ) -> bool:
        values = {"settings": prefs.to_json(), "updated_by": user_id, "updated_at": time.time()}
        if version is None:
            try:
                await self._db.execute(
                    chat_settings.insert().values(chat_id=chat_id, version=1, **values)
                )
            except IntegrityError:
                return False  # someone created the row meanwhile: load it and try again
            return True
        stmt = (
            chat_settings.update()
            .where(chat_settings.c.chat_id == chat_id, chat_settings.c.version == version)
            .values(version=version + 1, **values)
        )
        result = await self._db.execute(stmt)
        return bool(result.rowcount)

    def _remember(self, chat_id: int, prefs: ChatPrefs) -> None:
        self._cache.pop(chat_id, None)
        while len(self._cache) >= self.max_entries:
            self._cache.pop(next(iter(self._cache)))
        self._cache[chat_id] = (time.monotonic() + self.ttl, prefs)

    # Settings asked for as free text -----------------------------------------------------------

    async def put_input(self, pending: PendingInput) -> None:
        """Remember that the next text of this user in this chat is a setting's value."""
        now = time.time()

        async def body(conn: DbConn) -> None:
            await conn.execute(
                setting_inputs.delete().where(
                    setting_inputs.c.chat_id == pending.chat_id,
                    setting_inputs.c.user_id == pending.user_id,
                )
            )
            await conn.execute(
                setting_inputs.insert().values(
                    chat_id=pending.chat_id,
                    user_id=pending.user_id,
                    name=pending.name,
                    prompt_message_id=pending.prompt_message_id,
                    menu_message_id=pending.menu_message_id,
                    created_at=now,
                )
            )

        await self._db.transaction(body)

    async def pending_input(
        self, chat_id: int, *, user_id: int | None = None, prompt_message_id: int | None = None
    ) -> PendingInput | None:
        """The question waiting for this user's text, or the one a reply answers."""
        conditions = [setting_inputs.c.chat_id == chat_id]
        if user_id is not None:
            conditions.append(setting_inputs.c.user_id == user_id)
        if prompt_message_id is not None:
            conditions.append(setting_inputs.c.prompt_message_id == prompt_message_id)
        stmt = (
            sa.select(setting_inputs)
            .where(*conditions)
            .order_by(setting_inputs.c.created_at.desc())
            .limit(1)
        )
        row = (await self._db.execute(stmt)).mappings().first()
        if row is None:
            return None
        return PendingInput(
            chat_id=int(row["chat_id"]),
            user_id=int(row["user_id"]),
            name=str(row["name"]),
            prompt_message_id=int(row["prompt_message_id"]),
            menu_message_id=row["menu_message_id"],
            created_at=float(row["created_at"]),
        )

    async def drop_input(self, chat_id: int, user_id: int) -> bool:
        """Stop waiting for this user's text; False if nothing was waiting."""
        stmt = setting_inputs.delete().where(
            setting_inputs.c.chat_id == chat_id, setting_inputs.c.user_id == user_id
        )
        result = await self._db.execute(stmt)
        return bool(result.rowcount)
