"""Albums: the photos of one media group become one edit.

Telegram delivers an album as one message per photo. Each is buffered in the database;
once the group has been quiet for `ALBUM_QUIET` seconds, exactly one worker (of any
replica) claims it and starts the edit. The photo captioned `mask` (or `#mask`, `маска`)
is the inpainting mask for models that take one (KIE 4o Image); the other caption is the
prompt. The edit then starts as a single photo's would (`bot.edit_requests`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from telegram import Bot, Message
from telegram.constants import ChatType

from bot.edit_requests import edit_or_ask
from bot.message_input import extract_prompt, input_photo, is_mask_caption, own_caption
from bot.origin import Origin, answer
from bot.services import Services
from domain.edit import AlbumItem, InputPhoto

log = logging.getLogger(__name__)

ALBUM_QUIET = 1.2


async def collect(bot: Bot, services: Services, message: Message, origin: Origin) -> None:
    """Buffer one album message and make sure someone flushes the album when it is complete."""
    assert message.media_group_id is not None
    photo = input_photo(message)
    added = await services.db.albums.add_item(
        AlbumItem(
            chat_id=origin.chat_id,
            message_id=origin.message_id,
            media_group_id=message.media_group_id,
            user_id=origin.user_id,
            chat_type=origin.chat_type,
            lang=origin.lang,
            caption=own_caption(message),
            photo=photo,
            thread_id=origin.thread_id,
        )
    )
    if added:
        services.tracker.spawn(
            flush_when_quiet(bot, services, origin.chat_id, message.media_group_id),
            name=f"album-{origin.chat_id}-{message.media_group_id}",
        )


async def flush_when_quiet(bot: Bot, services: Services, chat_id: int, group_id: str) -> None:
    """Wait until the album got no new photo for ALBUM_QUIET seconds, then claim and edit it."""
    while True:
        last = await services.db.albums.last_item_at(chat_id, group_id)
        if last is None:
            return  # someone else flushed it
        remaining = last + ALBUM_QUIET - time.time()
        if remaining > 0:
            await asyncio.sleep(remaining)
            continue
        items = await services.db.albums.claim(
            chat_id, group_id, quiet_since=time.time() - ALBUM_QUIET
        )
        if items is None:
            continue  # a photo arrived meanwhile, or another worker won: look again
        await edit_album(bot, services, items)
        return


async def edit_album(bot: Bot, services: Services, items: list[AlbumItem]) -> None:
    """Turn a complete album into one edit (or one clear refusal)."""
    if not items:
        return
    group = items[0].chat_type != ChatType.PRIVATE
    username = bot.username
    prompt_item: AlbumItem | None = None
    prompt: str | None = None
    for item in items:
        if item.caption and not is_mask_caption(item.caption):
            prompt = extract_prompt(item.caption, username, group=group)
            prompt_item = item
            break
    if group and prompt is None:
        return  # an album in a group that does not address the bot
    anchor = prompt_item or items[0]
    origin = Origin(
        anchor.chat_id,
        anchor.chat_type,
        anchor.message_id,
        anchor.user_id,
        anchor.lang,
        thread_id=anchor.thread_id,
    )
    inputs: list[InputPhoto] = []
    for item in items:
        if item.photo is None:
            await answer(bot, origin, services.tr(origin.lang, "error.unsupported_file"))
            return
        role = "mask" if is_mask_caption(item.caption) else "image"
        inputs.append(InputPhoto(**{**item.photo.__dict__, "role": role}))
    if sum(1 for photo in inputs if photo.role == "mask") > 1:
        await answer(bot, origin, services.tr(origin.lang, "error.input.too_many_masks"))
        return
    await edit_or_ask(bot, services, origin, inputs, prompt or "")


async def recover(bot: Bot, services: Services) -> None:
    """Flush albums left open by a restart (run by the sweeper)."""
    for chat_id, group_id in await services.db.albums.stalled(quiet_since=time.time() - 10):
        await flush_when_quiet(bot, services, chat_id, group_id)
