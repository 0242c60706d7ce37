"""The Telegram side of the edit lifecycle: fetching input photos, sending results and notices.

Telegram errors are mapped here once: 403 → ChatUnreachable (stop sending there), flood
control / 5xx / timeouts → retryable DeliveryFailed; user-facing texts come only from the
catalogs.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from telegram import (
    Bot,
    File,
    InlineKeyboardMarkup,
    InputFile,
    InputMediaPhoto,
    Message,
    ReplyParameters,
)
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.warnings import PTBUserWarning

from bot.buttons import result_keyboard
from bot.formats import message_params, plain_reason
from bot.i18n import Translator
from bot.lifecycle.context import (
    ChatUnreachable,
    Delivered,
    DeliveryFailed,
    PhotoUnavailable,
    Progress,
)
from bot.operator_langs import OperatorLanguages
from bot.providers.registry import ProviderRegistry, UnknownModel
from bot.results import ResultFetcher, ResultImage
from bot.rewrite import any_error, rewrite, unchanged
from bot.status_messages import clear_status, show_place, show_status
from bot.telegram_limits import limit_args
from domain.edit import Edit, InputPhoto

log = logging.getLogger(__name__)
# Error codes whose details are placeholders the bot stored itself (lifecycle.submission).
OWN_PARAMS = ("input:", "image:")

T = TypeVar("T")

PHOTO_MAX_BYTES = 10 * 1024 * 1024
PHOTO_MAX_DIMENSIONS = 10000
PHOTO_MAX_RATIO = 20
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024
# Uploads get generous timeouts: a send that times out after Telegram took it would be
# repeated by the retry, so a timeout should only mean "Telegram is really not answering".
UPLOAD_TIMEOUT = 60.0
# Downloads of input photos are idempotent: a shorter timeout, then a retry.
DOWNLOAD_TIMEOUT = 30.0


# `api_call` uses `Bot.do_api_request` on purpose for these methods (PTB suggests the typed one).
RAW_METHODS = ("sendMessage", "sendPhoto")
warnings.filterwarnings(
    "ignore",
    message=rf"Please use 'Bot\.({'|'.join(RAW_METHODS)})' instead",
    category=PTBUserWarning,
)


def reply_to(message_id: int) -> ReplyParameters:
    """Answer as a reply to `message_id`, still sent if that message was deleted meanwhile."""
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


async def api_call(
    bot: Bot, method: str, params: dict[str, Any], *, io_timeout: float | None = None, **how: bool
) -> dict[str, Any]:
    """A Bot API call whose answer is returned as JSON, not as PTB objects.

    For the hot path's sends, of whose answer only a field or two is read: building the
    answered Message (and the message it replies to) as PTB objects costs about half a
    millisecond of CPU each. Errors are PTB's own, as with the typed methods. `how`: how the
    message may wait under Telegram's limits (`limit_args` in bot/telegram_limits.py).
    """
    if method not in RAW_METHODS:
        raise ValueError(f"{method} is not one of {RAW_METHODS}")
    kwargs = {key: value for key, value in params.items() if value is not None}
    extra: dict[str, Any] = limit_args(bot, **how)
    if io_timeout is not None:
        extra.update(read_timeout=io_timeout, write_timeout=io_timeout)
    result = await bot.do_api_request(method, api_kwargs=kwargs, **extra)
    if not isinstance(result, dict):
        raise TelegramError(f"{method} answered {type(result).__name__}, not a message")
    return result


async def telegram_call(call: Callable[[], Awaitable[T]], *, attempts: int = 3) -> T:
    """Run a Bot API call, retrying transient faults, mapping the rest once."""
    for attempt in range(attempts):
        try:
            return await call()
        except (Forbidden, ChatMigrated) as exc:
            raise ChatUnreachable(exc.message) from exc
        except InvalidToken as exc:
            raise DeliveryFailed("telegram_unauthorized", exc.message) from exc
        except BadRequest as exc:
            if "chat not found" in exc.message.lower():
                raise ChatUnreachable(exc.message) from exc
            raise DeliveryFailed("telegram_bad_request", exc.message, permanent=True) from exc
        except RetryAfter as exc:
            if attempt + 1 >= attempts:
                raise DeliveryFailed("telegram_flood", exc.message) from exc
            await asyncio.sleep(_seconds(exc.retry_after))
        except (TimedOut, NetworkError) as exc:
            if attempt + 1 >= attempts:
                raise DeliveryFailed("telegram_unavailable", exc.message) from exc
            await asyncio.sleep(0.5 * 2**attempt)
        except TelegramError as exc:  # e.g. an answer that is not JSON: transient
            raise DeliveryFailed("telegram_error", exc.message) from exc
    raise AssertionError("unreachable")


def _seconds(value: Any) -> float:
    total = getattr(value, "total_seconds", None)
    return float(total()) if callable(total) else float(value)


def failure_key(error_code: str | None, known: Callable[[str], bool]) -> tuple[str, str | None]:
    """The catalog key for an edit's error code, and the parameter name it carries."""
    code = error_code or "generic"
    head, _, tail = code.partition(":")
    candidates: list[str] = []
    if head in ("input", "image", "photo"):
        candidates.append(f"error.{head}.{tail}")
        candidates.append(f"error.{head}")
    elif head == "task_failed":
        candidates.append("error.task_failed")
    elif head == "validation":
        candidates.append("error.validation")
    else:
        candidates.append(f"error.{head}")
    for key in candidates:
        if known(key):
            return key, tail or None
    return "error.generic", None


class TelegramPhotoSource:
    """Input photos come from Telegram's getFile."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def fetch(self, photo: InputPhoto) -> bytes:
        if photo.file_size is not None and photo.file_size > TELEGRAM_DOWNLOAD_LIMIT:
            raise PhotoUnavailable("too_big", f"{photo.file_size} bytes")
        for attempt in range(3):
            try:
                file = await self.bot.get_file(photo.file_id, read_timeout=DOWNLOAD_TIMEOUT)
                return await self._download(file)
            except BadRequest as exc:
                code = "too_big" if "too big" in exc.message.lower() else "gone"
                raise PhotoUnavailable(code, exc.message) from exc
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after))
            except (TimedOut, NetworkError) as exc:
                if attempt == 2:
                    raise PhotoUnavailable("download", exc.message) from exc
                await asyncio.sleep(0.5 * 2**attempt)
            except TelegramError as exc:
                raise PhotoUnavailable("download", exc.message) from exc
        raise PhotoUnavailable("download", "retries exhausted")

    async def _download(self, file: File) -> bytes:
        """The file's bytes as the HTTP client read them, without the two copies that
        `File.download_as_bytearray` (and turning its bytearray into bytes) would make."""
        url = file.file_path or ""
        if url.startswith(("https://", "http://")):
            return await self.bot.request.retrieve(url, read_timeout=DOWNLOAD_TIMEOUT)
        return bytes(await file.download_as_bytearray(read_timeout=DOWNLOAD_TIMEOUT))


class TelegramNotifier:
    """Sends results and failure notices as replies to the user's message, in the forum
    topic it was in (`Edit.thread_id`: the reply alone would land in General once the
    message is gone)."""

    def __init__(
        self,
        bot: Bot,
        translator: Translator,
        fetcher: ResultFetcher,
        registry: ProviderRegistry,
        admin_ids: Sequence[int],
        operator_langs: OperatorLanguages | None = None,
    ) -> None:
        self.bot = bot
        self.operator_langs = operator_langs
        self.translator = translator
        self.fetcher = fetcher
        self.registry = registry
        self.admin_ids = list(admin_ids)

    def _reply_to(self, edit: Edit) -> ReplyParameters:
        return reply_to(edit.message_id)

    async def deliver_result(self, edit: Edit) -> Delivered:
        provider = self.registry.provider(edit.provider)
        images = await asyncio.gather(
            *(self.fetcher.fetch(url, provider) for url in edit.result_urls)
        )
        caption = self.translator.tr(edit.lang, "result.caption")
        buttons = partial(
            result_keyboard,
            partial(self.translator.tr, edit.lang),
            edit.id,
            removable=edit.chat_type != "private",  # "Remove" for group admins
        )
        as_files = bool(edit.params.get("send_as_file")) or any(
            not _fits_photo(image) for image in images
        )
        extra: int | None = None  # the buttons' own message under an album
        if as_files:
            messages: list[Message] = []
            for index, image in enumerate(images):
                document = InputFile(
                    image.data, filename=f"edit-{edit.id}-{index + 1}.{image.extension}"
                )
                text = caption if index == 0 else None
                messages.append(
                    await telegram_call(
                        partial(
                            self.bot.send_document,
                            edit.chat_id,
                            document,
                            caption=text,
                            reply_parameters=self._reply_to(edit),
                            message_thread_id=edit.thread_id,
                            reply_markup=buttons(with_file=False)
                            if index == len(images) - 1
                            else None,
                            read_timeout=UPLOAD_TIMEOUT,
                            write_timeout=UPLOAD_TIMEOUT,
                        )
                    )
                )
        elif len(images) == 1:
            image = images[0]
            sent = await telegram_call(
                lambda: api_call(
                    self.bot,
                    "sendPhoto",
                    {
                        "chat_id": edit.chat_id,
                        "photo": InputFile(
                            image.data, filename=f"edit-{edit.id}.{image.extension}"
                        ),
                        "caption": caption,
                        "reply_parameters": self._reply_to(edit),
                        "message_thread_id": edit.thread_id,
                        "reply_markup": buttons(with_file=True),
                    },
                    io_timeout=UPLOAD_TIMEOUT,
                )
            )
            file_ids = [file_id] if (file_id := _sent_file_id(sent)) else []
            message_id = sent.get("message_id")
            return Delivered(file_ids, [message_id] if isinstance(message_id, int) else [])
        else:
            media = [
                InputMediaPhoto(
                    # attach=True: each photo its own multipart field (attach://<name>)
                    InputFile(
                        image.data,
                        filename=f"edit-{edit.id}-{i + 1}.{image.extension}",
                        attach=True,
                    ),
                    caption=caption if i == 0 else None,
                )
                for i, image in enumerate(images[:10])
            ]
            messages = list(
                await telegram_call(
                    lambda: self.bot.send_media_group(
                        edit.chat_id,
                        media,
                        reply_parameters=self._reply_to(edit),
                        message_thread_id=edit.thread_id,
                        read_timeout=UPLOAD_TIMEOUT,
                        write_timeout=UPLOAD_TIMEOUT,
                    )
                )
            )
            # Media groups cannot carry a keyboard: the buttons follow in a short message.
            extra = await self._send_buttons(edit, messages[0].message_id, buttons(with_file=True))
        file_ids = [file_id for message in messages if (file_id := _file_id(message))]
        message_ids = [message.message_id for message in messages]
        return Delivered(file_ids, message_ids if extra is None else [*message_ids, extra])

    async def _send_buttons(
        self, edit: Edit, reply_to_id: int, markup: InlineKeyboardMarkup
    ) -> int | None:
        """The result buttons under a media group (the id of their message); the results
        are out, so never raise."""
        try:
            sent = await telegram_call(
                partial(
                    self.bot.send_message,
                    edit.chat_id,
                    self.translator.tr(edit.lang, "result.buttons"),
                    reply_markup=markup,
                    reply_parameters=reply_to(reply_to_id),
                    message_thread_id=edit.thread_id,
                )
            )
        except (ChatUnreachable, DeliveryFailed) as exc:
            log.warning("result buttons not sent", extra={"edit_id": edit.id, "error": str(exc)})
            return None
        return sent.message_id

    async def send_files(
        self, edit: Edit, chat_id: int, reply_to_id: int, thread_id: int | None
    ) -> list[int]:
        """Send an edit's results again as documents: the original bytes, fetched anew, as
        replies to `reply_to_id` in the forum topic `thread_id`.

        Raises DeliveryFailed (`result_missing`/`result_refused`: the provider no longer has
        them) or ChatUnreachable. Returns the ids of the messages sent.
        """
        try:
            provider = self.registry.provider(edit.provider)
        except UnknownModel as exc:
            raise DeliveryFailed("result_missing", f"provider {edit.provider} is off") from exc
        if not edit.result_urls:
            raise DeliveryFailed("result_missing", "no result URLs")
        images = await asyncio.gather(
            *(self.fetcher.fetch(url, provider) for url in edit.result_urls)
        )
        sent: list[int] = []
        for index, image in enumerate(images):
            name = f"edit-{edit.id}-{index + 1}.{image.extension}"
            message = await telegram_call(
                partial(
                    self.bot.send_document,
                    chat_id,
                    InputFile(image.data, filename=name),
                    reply_parameters=reply_to(reply_to_id),
                    message_thread_id=thread_id,
                    read_timeout=UPLOAD_TIMEOUT,
                    write_timeout=UPLOAD_TIMEOUT,
                )
            )
            sent.append(message.message_id)
        return sent

    async def notify_failure(self, edit: Edit, returned: int = 0) -> None:
        key, param = failure_key(edit.error_code, lambda k: k in self.translator.keys("en"))
        if key == "error.task_failed" and not edit.inputs:
            key = "imagine.task_failed"  # a drawing (/imagine) has no photo to speak of
        params: dict[str, Any] = {"param": param or ""}
        if edit.error_code and edit.error_code.startswith(OWN_PARAMS):
            params.update(message_params(edit.error_detail))
        # Last: whatever the stored details say, the reason shown is bounded plain text.
        params["reason"] = plain_reason(edit.error_detail)
        text = self.translator.tr(edit.lang, key, **params)
        if returned:
            text += "\n" + self.translator.tr(edit.lang, "payments.returned", edits=returned)
        if edit.status_message_id is not None:
            try:
                await telegram_call(
                    lambda: self.bot.edit_message_text(
                        text, chat_id=edit.chat_id, message_id=edit.status_message_id
                    )
                )
                return
            except DeliveryFailed as exc:
                if isinstance(exc.__cause__, TelegramError) and unchanged(exc.__cause__):
                    # It already says so: shown by a pass that died before recording it.
                    return
                # Otherwise the status message is gone: send a fresh reply instead.
        await telegram_call(
            lambda: self.bot.send_message(
                edit.chat_id,
                text,
                reply_parameters=self._reply_to(edit),
                message_thread_id=edit.thread_id,
            )
        )
        if edit.approval_message_id is not None and edit.error_code == "approval_expired":
            # The request nobody decided on loses its buttons (best effort).
            text = self.translator.tr(edit.lang, "approval.panel.expired")
            await rewrite(
                self.bot, edit.chat_id, edit.approval_message_id, text, tolerate=any_error
            )

    async def alert_admins(self, incident: str, detail: str) -> None:
        for admin_id in self.admin_ids:
            lang = await self.operator_langs.of(admin_id) if self.operator_langs else "en"
            text = self.translator.tr(lang, "admin.incident", incident=incident, detail=detail)
            try:
                await telegram_call(partial(self.bot.send_message, admin_id, text))
            except (ChatUnreachable, DeliveryFailed):
                log.warning("could not alert an admin", extra={"admin_id": admin_id})

    async def show_progress(self, edit: Edit, progress: Progress) -> None:
        await show_status(self.bot, self.translator, edit, progress)

    async def show_place(self, edit: Edit, position: int, wait: float) -> None:
        await show_place(self.bot, self.translator, edit, position, wait)

    async def clear_status(self, edit: Edit) -> None:
        await clear_status(self.bot, edit)


def _fits_photo(image: ResultImage) -> bool:
    if len(image.data) > PHOTO_MAX_BYTES or image.width + image.height > PHOTO_MAX_DIMENSIONS:
        return False
    small, large = sorted((image.width, image.height))
    return small > 0 and large / small <= PHOTO_MAX_RATIO


def _sent_file_id(message: dict[str, Any]) -> str | None:
    """The file id of the largest size of a sent photo, from the Bot API's JSON answer."""
    sizes = message.get("photo")
    if isinstance(sizes, list) and sizes and isinstance(sizes[-1], dict):
        file_id = sizes[-1].get("file_id")
        return file_id if isinstance(file_id, str) else None
    return None


def _file_id(message: Message) -> str | None:
    if message.photo:
        return message.photo[-1].file_id
    if message.document:
        return message.document.file_id
    return None
