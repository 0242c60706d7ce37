"""Helpers shared by handlers: who is asking, what photo, what prompt."""

from __future__ import annotations

import logging
import math
import mimetypes
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from telegram import Bot, CallbackQuery, Message, Update, User
from telegram.constants import ChatType
from telegram.error import BadRequest

from bot.buttons import shorten
from bot.delivery import reply_to
from domain.edit import Edit, InputPhoto

if TYPE_CHECKING:
    from bot.services import BotContext

IMAGE_MIME_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/heic",
        "image/heif",
        "image/bmp",
        "image/x-ms-bmp",
        "image/tiff",
        "image/gif",
        "image/jpg",
    }
)
MASK_MARKERS = frozenset({"mask", "#mask", "маска", "#маска"})
_EDIT_COMMAND = re.compile(r"^/edit(?:@(\w+))?(?=\s|$)", re.IGNORECASE)
CALLBACK_ANSWER_MAX = 200

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """Where a request came from and where its answers go (a reply to `message_id`).

    `as_group`: sent by an anonymous admin writing as the group itself.
    """

    chat_id: int
    chat_type: str
    message_id: int
    user_id: int
    lang: str
    user_name: str = ""
    as_group: bool = False

    @classmethod
    def of(cls, message: Message, user: User, lang: str) -> Origin:
        sender_chat = message.sender_chat
        as_group = sender_chat is not None and sender_chat.id == message.chat_id
        return cls(
            message.chat_id,
            message.chat.type,
            message.message_id,
            user.id,
            lang,
            user_name=(sender_chat.title or "") if as_group and sender_chat else user.full_name,
            as_group=as_group,
        )

    @property
    def group(self) -> bool:
        return self.chat_type != ChatType.PRIVATE


async def answer(bot: Bot, origin: Origin, text: str, **kwargs: Any) -> Message:
    """Send `text` as a reply to the origin message (still sent if that was deleted)."""
    return await bot.send_message(
        origin.chat_id,
        text,
        reply_parameters=reply_to(origin.message_id),
        **kwargs,
    )


async def reply(message: Message, text: str, **kwargs: Any) -> Message:
    """Answer a message as a reply to it, still sent if the message was deleted meanwhile."""
    return await message.reply_text(
        text,
        reply_parameters=reply_to(message.message_id),
        **kwargs,
    )


async def answer_press(
    query: CallbackQuery, text: str | None = None, *, alert: bool = False
) -> None:
    """Answer a button press (once: a repeated update finds it answered, which is only logged)."""
    if text is not None:
        text = shorten(text, CALLBACK_ANSWER_MAX)
    try:
        await query.answer(text, show_alert=alert)
    except BadRequest as exc:
        if "query is too old" not in exc.message.lower():
            raise
        log.info("button press answered before", extra={"query_id": query.id})


def input_photo(message: Message) -> InputPhoto | None:
    """The image a message carries (largest photo size, or an image document)."""
    if message.photo:
        largest = message.photo[-1]
        return InputPhoto(
            file_id=largest.file_id,
            kind="photo",
            mime_type="image/jpeg",
            file_size=largest.file_size,
            width=largest.width,
            height=largest.height,
        )
    document = message.document
    if document is not None:
        mime = (document.mime_type or "").lower()
        if not mime and document.file_name:
            mime = (mimetypes.guess_type(document.file_name)[0] or "").lower()
        if mime in IMAGE_MIME_TYPES:
            return InputPhoto(
                file_id=document.file_id,
                kind="document",
                mime_type=mime,
                file_size=document.file_size,
            )
    return None


def carries_file(message: Message) -> bool:
    return bool(message.photo or message.document)


def extract_prompt(text: str, bot_username: str, *, group: bool) -> str | None:
    """The prompt in a caption or text; None when a group message is not meant for the bot.

    In groups only `/edit ...` (optionally `/edit@bot`) and messages mentioning the bot count;
    in private chats the whole text is the prompt.
    """
    stripped = text.strip()
    match = _EDIT_COMMAND.match(stripped)
    if match:
        addressee = match.group(1)
        if addressee and addressee.lower() != bot_username.lower():
            return None
        return stripped[match.end() :].strip()
    mention = f"@{bot_username}"
    if bot_username and mention.lower() in stripped.lower():
        pattern = r"[ \t]*" + re.escape(mention) + r"[ \t]*"
        return re.sub(pattern, " ", stripped, flags=re.IGNORECASE).strip()
    return None if group else stripped


def clean_prompt(text: str) -> str:
    """Drop control and invisible format characters, keep line breaks, trim blank runs."""
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in "\n\t":
            kept.append(char)
        elif category in ("Cc", "Cs", "Co") or (category == "Cf" and char != "\u200d"):
            continue
        else:
            kept.append(char)
    cleaned = "".join(kept)
    cleaned = re.sub(r"[ \t]+", " ", cleaned)
    cleaned = re.sub(r"\n{3,}", "\n\n", cleaned)
    return cleaned.strip()


def is_mask_caption(caption: str | None) -> bool:
    """An album photo captioned `mask` (or `#mask`, `маска`) is the 4o inpainting mask."""
    return caption is not None and caption.strip().lower() in MASK_MARKERS


def format_wait(tr: Callable[..., str], seconds: float) -> str:
    """A duration as people read it ("45 s", "12 min", "3 h 5 min"), rounded up."""
    if seconds < 60:
        return tr("time.seconds", n=max(1, math.ceil(seconds)))
    hours, minutes = divmod(math.ceil(seconds / 60), 60)
    if not hours:
        return tr("time.minutes", n=minutes)
    if not minutes:
        return tr("time.hours", n=hours)
    return tr("time.hours_minutes", h=hours, m=minutes)


async def admin_command(
    update: Update, context: BotContext, *, refusal: str = "moderation.admins_only"
) -> tuple[Message, User, str] | None:
    """The command's message, sender and language if a group admin sent it (anonymous admins
    included); otherwise answer why not (catalog key `refusal`) and return None."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return None
    services = context.services
    lang = await services.lang_for(user, message.chat)
    if message.chat.type == ChatType.PRIVATE:
        await reply(message, services.tr(lang, "moderation.groups_only"))
        return None
    if not await services.admins.may_change(
        context.bot, message.chat, user.id, sender_chat=message.sender_chat
    ):
        await reply(message, services.tr(lang, refusal))
        return None
    return message, user, lang


P = TypeVar("P")


class EditPress(NamedTuple, Generic[P]):
    """A button press about one edit, resolved: who pressed, where, which edit, what data
    (unpacks as `query, message, edit, data, lang`)."""

    query: CallbackQuery
    message: Message
    edit: Edit
    data: P
    lang: str


async def edit_press(
    update: Update,
    context: BotContext,
    parse: Callable[[str], P | None],
    edit_id: Callable[[P], int],
    *,
    same_chat: bool = True,
    admins_only: str | None = None,
) -> EditPress[P] | None:
    """Resolve a button press naming an edit; answer stale or forged presses and return None.

    With `same_chat`, the edit must belong to the chat the button is in (a forged button of
    another chat's edit is refused like an unknown one). With `admins_only` (a catalog key),
    only the chat's admins may press it; anyone else is told so in an alert.
    """
    query = update.callback_query
    if query is None or query.data is None:
        return None
    services = context.services
    message = query.message
    lang = await services.lang_for(query.from_user, message.chat if message else None)
    data = parse(query.data)
    edit = await services.db.edits.get(edit_id(data)) if data is not None else None
    if (
        data is None
        or edit is None
        or not isinstance(message, Message)
        or (same_chat and edit.chat_id != message.chat_id)
    ):
        await answer_press(query, services.tr(lang, "error.unknown_button"))
        return None
    if admins_only is not None and not await services.admins.may_change(
        context.bot, message.chat, query.from_user.id
    ):
        await answer_press(query, services.tr(lang, admins_only), alert=True)
        return None
    return EditPress(query, message, edit, data, lang)
