"""Updates: the builders tests use, their delivery (getUpdates long polling or the webhook),
and the callback and inline queries they open."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import enum
import itertools
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import ClientSession, ClientTimeout

from tests.fakes.telegram_chats import ChatState, now
from tests.fakes.telegram_errors import ApiError, Json, bad
from tests.fakes.telegram_files import Upload
from tests.fakes.telegram_text import detect_entities

# Update types the real server sends when no allowed_updates were ever given.
_NOT_DEFAULT_UPDATES: Final = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)
# Telegram's senders of messages no person signs: channel posts, and automatic forwards.
CHANNEL_BOT: Final = {
    "id": 136817688,
    "is_bot": True,
    "first_name": "Channel",
    "username": "Channel_Bot",
}
SERVICE_ACCOUNT: Final = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
_MAX_CALLBACK_ANSWER: Final = 200
_QUERY_TOO_OLD: Final = "query is too old and response timeout expired or query ID is invalid"


@dataclass
class WithDescription:
    """A successful result that also carries a ``description`` (setWebhook does that)."""

    result: Any
    description: str


class _Default(enum.Enum):
    REGISTERED = "registered"


class Notifier:
    """Wakes every coroutine waiting in :meth:`wait` when :meth:`notify` is called."""

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait(self, seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, seconds)
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)


def _update_type(update: Json) -> str:
    return next((key for key in update if key != "update_id"), "")


class UpdateFeed(ChatState):
    """The update queue, the webhook, and the queries updates opened."""

    def __init__(self, token: str, username: str) -> None:
        super().__init__(token, username)
        self.webhook_url: str | None = None
        self.webhook_secret: str | None = None
        self.webhook_allowed_updates: list[str] | None = None
        self.webhook_max_connections: int | None = None
        self.webhook_probes: list[bool] = []
        """For each setWebhook naming a loopback URL: whether its port accepted a TCP
        connection at that moment (the real Telegram starts sending updates at once)."""
        self._closing = False
        self._update_ids = itertools.count(100_000_001)
        self._updates: list[Json] = []
        self._updates_changed = Notifier()
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._polls_pending = 0
        self._polling_changed = Notifier()
        self._poll_terminated_by = ""
        self._callback_queries: dict[str, bool] = {}
        self._inline_queries: dict[str, bool] = {}

    @property
    def pending_updates(self) -> int:
        """Updates queued for getUpdates and not yet confirmed."""
        return len(self._updates)

    def _release_waiters(self) -> None:
        """The fake is stopping: pending long polls answer at once."""
        self._closing = True
        self._updates_changed.notify()
        self._polling_changed.notify()

    # ------------------------------------------------------------------------ update builders

    def text_update(
        self,
        chat_id: int,
        user: Json | int,
        text: str,
        *,
        reply_to: Json | None = None,
        entities: list[Json] | None = None,
        chat_type: str | None = None,
        thread_id: int | None = None,
    ) -> Json:
        """A ``message`` update with text. Without ``entities``, bot_command, mention and url
        entities are detected like Telegram does. ``thread_id``: sent in that forum topic
        (`create_topic`)."""
        content: Json = {"text": text}
        found = detect_entities(text) if entities is None else entities
        if found:
            content["entities"] = found
        return self._user_message_update(chat_id, user, content, reply_to, chat_type, thread_id)

    def photo_update(
        self,
        chat_id: int,
        user: Json | int,
        image: bytes,
        *,
        caption: str | None = None,
        reply_to: Json | None = None,
        media_group_id: str | None = None,
        chat_type: str | None = None,
        thread_id: int | None = None,
    ) -> Json:
        """A ``message`` update with a photo: 2-3 registered PhotoSizes, the given bytes
        (with their real width/height) last; ``thread_id`` as for `text_update`."""
        try:
            sizes = self._register_photo(image)
        except ApiError as exc:
            raise ValueError(f"photo_update needs a decodable image: {exc.description}") from exc
        content: Json = {"photo": [size.photo_size_json() for size in sizes]}
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        _add_caption(content, caption)
        return self._user_message_update(chat_id, user, content, reply_to, chat_type, thread_id)

    def document_update(
        self,
        chat_id: int,
        user: Json | int,
        data: bytes,
        *,
        mime_type: str,
        file_name: str,
        caption: str | None = None,
        reply_to: Json | None = None,
        media_group_id: str | None = None,
        chat_type: str | None = None,
        thread_id: int | None = None,
    ) -> Json:
        """A ``message`` update with a document (the file is registered for getFile);
        ``thread_id`` as for `text_update`."""
        suffix = "." + file_name.rsplit(".", 1)[-1] if "." in file_name else ""
        info = self._register_file(
            data, kind="document", suffix=suffix, mime_type=mime_type, file_name=file_name
        )
        content: Json = {"document": info.document_json()}
        if media_group_id is not None:
            content["media_group_id"] = media_group_id
        _add_caption(content, caption)
        return self._user_message_update(chat_id, user, content, reply_to, chat_type, thread_id)

    def callback_query_update(self, user: Json | int, message: Json, data: str) -> Json:
        """A ``callback_query`` update for a button of ``message`` (e.g. ``sent_message(call)``)."""
        query_id = str(4_000_000_000_000_000_000 + next(self._ids))
        self._callback_queries[query_id] = False
        chat_id = int(message["chat"]["id"])
        return {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": query_id,
                "from": self._as_user(user),
                "message": copy.deepcopy(message),
                "chat_instance": str(abs(chat_id) * 7919 + 1_234_567),
                "data": data,
            },
        }

    def inline_query_update(
        self, user: Json | int, query: str, *, offset: str = "", chat_type: str = "sender"
    ) -> Json:
        query_id = str(5_000_000_000_000_000_000 + next(self._ids))
        self._inline_queries[query_id] = False
        return {
            "update_id": next(self._update_ids),
            "inline_query": {
                "id": query_id,
                "from": self._as_user(user),
                "query": query,
                "offset": offset,
                "chat_type": chat_type,
            },
        }

    @staticmethod
    def message_of(update: Json) -> Json:
        """The Message inside an update (a message, or the message of a callback query)."""
        if "message" in update:
            message: Json = copy.deepcopy(update["message"])
            return message
        query = update.get("callback_query")
        if isinstance(query, dict) and "message" in query:
            inner: Json = copy.deepcopy(query["message"])
            return inner
        raise ValueError(f"update has no message: {sorted(update)}")

    def _user_message_update(
        self,
        chat_id: int,
        user: Json | int,
        content: Json,
        reply_to: Json | None,
        chat_type: str | None,
        thread_id: int | None = None,
    ) -> Json:
        sender = self._as_user(user)
        if thread_id is not None:
            root = self._topic_root(chat_id, thread_id)  # create_topic made the chat a forum
            # A topic message that replies to nothing replies to the topic's service message.
            reply_to = reply_to or root
        elif chat_id not in self._chats or chat_type is not None:
            self.register_chat(chat_id, chat_type=chat_type)
        message: Json = {
            "message_id": self._next_message_id(chat_id),
            "from": sender,
            "chat": copy.deepcopy(self._chats[chat_id]),
            "date": now(),
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            message["is_topic_message"] = True
        if reply_to is not None:
            replied = copy.deepcopy(reply_to)
            replied.pop("reply_to_message", None)
            message["reply_to_message"] = replied
        message.update(copy.deepcopy(content))
        self._store_message(chat_id, message)
        return {"update_id": next(self._update_ids), "message": message}

    # ------------------------------------------------------------- edited and business updates

    def edited_update(
        self, update: Json, *, text: str | None = None, caption: str | None = None
    ) -> Json:
        """The message of a ``message`` (``business_message``) update edited by its sender: an
        ``edited_message`` (``edited_business_message``) with ``edit_date`` set and the new
        text or caption, if given."""
        kind = "business_message" if "business_message" in update else "message"
        message: Json = copy.deepcopy(update[kind])
        message["edit_date"] = now()
        if text is not None:
            message["text"] = text
            message.pop("entities", None)
            found = detect_entities(text)
            if found:
                message["entities"] = found
        if caption is not None:
            message.pop("caption_entities", None)
            _add_caption(message, caption)
        return {"update_id": next(self._update_ids), f"edited_{kind}": message}

    def business_update(self, update: Json, *, connection_id: str = "business-1") -> Json:
        """The message of a ``message`` update (from a builder above) as a ``business_message``:
        one a customer sent to a business account the bot is connected to."""
        message: Json = copy.deepcopy(update["message"])
        message["business_connection_id"] = connection_id
        return {"update_id": next(self._update_ids), "business_message": message}

    # --------------------------------------------------------- who a message is sent as

    def as_channel(self, update: Json, channel_id: int, title: str) -> Json:
        """The message of a group ``message`` update posted "as a channel", the way Telegram
        shows it: ``sender_chat`` is the channel, ``from`` the placeholder user every channel
        post shares."""
        channel: Json = {"id": channel_id, "type": "channel", "title": title}
        return self._resend(update, {"from": dict(CHANNEL_BOT), "sender_chat": channel})

    def as_forward(self, update: Json, original_sender: Json) -> Json:
        """The message of a ``message`` update as a forward of `original_sender`'s message: it
        carries ``forward_origin`` and keeps the original caption."""
        origin: Json = {"type": "user", "sender_user": original_sender, "date": now() - 60}
        return self._resend(update, {"forward_origin": origin})

    def as_automatic_forward(self, update: Json, channel_id: int, title: str) -> Json:
        """The message of a group ``message`` update as a linked channel's post, automatically
        forwarded into its discussion group: from Telegram's service account, ``sender_chat``
        the channel, ``is_automatic_forward``."""
        channel: Json = {"id": channel_id, "type": "channel", "title": title}
        origin: Json = {"type": "channel", "chat": channel, "message_id": 7, "date": now()}
        changes: Json = {
            "from": dict(SERVICE_ACCOUNT),
            "sender_chat": channel,
            "is_automatic_forward": True,
            "forward_origin": origin,
        }
        return self._resend(update, changes)

    def _resend(self, update: Json, changes: Json) -> Json:
        message: Json = copy.deepcopy(update["message"])
        message.update(copy.deepcopy(changes))
        self._store_message(int(message["chat"]["id"]), message)
        return {"update_id": update["update_id"], "message": message}

    # ------------------------------------------------------------------------------ delivery

    def push_update(self, update: Json) -> None:
        """Queues an update for getUpdates (assigns an ``update_id`` if missing)."""
        queued = copy.deepcopy(update)
        queued.setdefault("update_id", next(self._update_ids))
        self._updates.append(queued)
        self._updates_changed.notify()

    async def post_webhook(
        self, update: Json, *, secret: str | _Default | None = _Default.REGISTERED
    ) -> int:
        """POSTs an update to the webhook set with setWebhook; returns the HTTP status.

        ``X-Telegram-Bot-Api-Secret-Token`` carries the registered secret_token by default,
        ``secret`` overrides it (None omits the header).
        """
        if self.webhook_url is None:
            raise AssertionError("no webhook is set (the bot never called setWebhook)")
        token = self.webhook_secret if isinstance(secret, _Default) else secret
        headers = {"X-Telegram-Bot-Api-Secret-Token": token} if token is not None else {}
        async with (
            ClientSession(timeout=ClientTimeout(total=30)) as session,
            session.post(self.webhook_url, json=update, headers=headers) as response,
        ):
            await response.read()
            return response.status

    async def wait_until_polling(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Waits until a getUpdates long poll is pending (the bot is idle, waiting for updates)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._polls_pending == 0:
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                raise AssertionError(f"no getUpdates long poll became pending within {timeout}s")
            await self._polling_changed.wait(remaining)

    # ------------------------------------------------------------------------------ methods

    async def _get_updates(self, params: Json, uploads: dict[str, Upload]) -> Any:
        if self.webhook_url is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = [str(kind) for kind in allowed] or None
        self._poll_generation += 1
        generation = self._poll_generation
        self._poll_terminated_by = "other getUpdates request"
        self._updates_changed.notify()  # terminates an older pending long poll
        self._confirm_updates(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    f"Conflict: terminated by {self._poll_terminated_by}; make sure that only "
                    "one bot instance is running",
                )
            batch = self._deliverable_updates(limit)
            remaining = deadline - loop.time()
            if batch or self._closing or remaining <= 0:
                return batch
            self._polls_pending += 1
            self._polling_changed.notify()
            try:
                await self._updates_changed.wait(remaining)
            finally:
                self._polls_pending -= 1

    def _confirm_updates(self, offset: int) -> None:
        if offset > 0:
            self._updates = [u for u in self._updates if int(u["update_id"]) >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _deliverable_updates(self, limit: int) -> list[Json]:
        if self._allowed_updates is None:
            keep = [u for u in self._updates if _update_type(u) not in _NOT_DEFAULT_UPDATES]
        else:
            keep = [u for u in self._updates if _update_type(u) in self._allowed_updates]
        self._updates = keep
        return copy.deepcopy(keep[:limit])

    async def _probe_webhook(self, url: str) -> None:
        """Records whether a loopback webhook's port accepts connections (webhook_probes)."""
        parsed = urllib.parse.urlsplit(url)
        if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
            return
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parsed.hostname, port), 2)
        except (OSError, TimeoutError):
            self.webhook_probes.append(False)
            return
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        self.webhook_probes.append(True)

    async def _set_webhook(self, params: Json, uploads: dict[str, Upload]) -> Any:
        url = params.get("url")
        if not url:
            return await self._delete_webhook(params, uploads)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and (
            not isinstance(secret, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret)
        ):
            raise bad("secret token contains unallowed characters")
        self.webhook_url = url
        self.webhook_secret = secret
        await self._probe_webhook(url)
        allowed = params.get("allowed_updates")
        self.webhook_allowed_updates = list(allowed) if isinstance(allowed, list) else None
        max_connections = params.get("max_connections")
        self.webhook_max_connections = int(max_connections) if max_connections else 40
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        self._poll_generation += 1
        self._poll_terminated_by = "setWebhook request"
        self._updates_changed.notify()
        return WithDescription(True, "Webhook was set")

    async def _delete_webhook(self, params: Json, uploads: dict[str, Upload]) -> Any:
        was_set = self.webhook_url is not None
        self.webhook_url = None
        self.webhook_secret = None
        self.webhook_allowed_updates = None
        self.webhook_max_connections = None
        if params.get("drop_pending_updates") is True:
            self._updates.clear()
        return WithDescription(
            True, "Webhook was deleted" if was_set else "Webhook is already deleted"
        )

    async def _get_webhook_info(self, params: Json, uploads: dict[str, Upload]) -> Any:
        info: Json = {
            "url": self.webhook_url or "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook_url is not None:
            info["max_connections"] = self.webhook_max_connections or 40
            info["ip_address"] = "127.0.0.1"
            if self.webhook_allowed_updates is not None:
                info["allowed_updates"] = list(self.webhook_allowed_updates)
        return info

    async def _answer_callback_query(self, params: Json, uploads: dict[str, Upload]) -> Any:
        query_id = str(params.get("callback_query_id") or "")
        if self._callback_queries.get(query_id, True):
            raise bad(_QUERY_TOO_OLD)
        text = params.get("text")
        if isinstance(text, str) and len(text) > _MAX_CALLBACK_ANSWER:
            raise bad("MESSAGE_TOO_LONG")
        self._callback_queries[query_id] = True
        return True

    async def _answer_inline_query(self, params: Json, uploads: dict[str, Upload]) -> Any:
        query_id = str(params.get("inline_query_id") or "")
        if self._inline_queries.get(query_id, True):
            raise bad(_QUERY_TOO_OLD)
        results = params.get("results")
        if not isinstance(results, list) or len(results) > 50:
            raise bad("can't parse inline query results JSON object")
        ids = [str(result.get("id")) for result in results if isinstance(result, dict)]
        if len(ids) != len(results) or any(not result_id for result_id in ids):
            raise bad("RESULT_ID_INVALID")
        if len(set(ids)) != len(ids):
            raise bad("RESULT_ID_DUPLICATE")
        self._inline_queries[query_id] = True
        return True


def _add_caption(content: Json, caption: str | None) -> None:
    if caption:
        content["caption"] = caption
        entities = detect_entities(caption)
        if entities:
            content["caption_entities"] = entities
