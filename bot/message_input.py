"""What a message gives an edit: the image it carries and the prompt it states."""

from __future__ import annotations

import mimetypes
import re
import unicodedata

from telegram import Message

from domain.edit import InputPhoto

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


def own_caption(message: Message) -> str | None:
    """The caption as the sender's own words: a forwarded message's caption was written by
    someone else, so it is neither a prompt nor addressed to the bot (nor an album's mask
    marker). A forwarded photo is a photo without a prompt."""
    return None if message.forward_origin is not None else message.caption


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
