"""A fake Telegram Bot API server for the test suite.

The real python-telegram-bot client talks to it over HTTP on 127.0.0.1::

    async with FakeTelegram() as fake:
        app = (
            Application.builder()
            .token(fake.token)
            .base_url(fake.base_url)          # f"{fake.url}/bot"
            .base_file_url(fake.base_file_url)  # f"{fake.url}/file/bot"
            .request(fast_request())  # optional: skips reloading the CA bundle per Bot
            .get_updates_request(fast_request())
            .build()
        )
        fake.push_update(fake.photo_update(chat_id, user_id, jpeg_bytes, caption="/edit sky"))
        [call] = await fake.wait_for("sendPhoto")

Served routes:

* ``GET|POST /bot{token}/{method}`` - Bot API methods (method names are case-insensitive,
  like on the real server). A wrong token answers 401 ``Unauthorized``, a method the Bot API
  does not have answers 404 ``Not Found``.
* ``GET /file/bot{token}/{file_path}`` - the bytes of a registered file.

The fake models what the bot uses, and checks it as strictly as Telegram: the methods and
parameters listed in `FakeTelegram.__init__`, ``parse_mode=HTML``, photos and documents
uploaded or sent by file_id. A method, parameter, parse mode or file source outside that is
valid for Telegram but answers 500 here and lands in `FakeTelegram.server_errors` (see
`tests.fakes.telegram_errors.NotModelled`): model it before the bot starts using it.

Where the parts live (one class each, stacked into `FakeTelegram`):

* `tests.fakes.telegram_server` - the HTTP routes, parameter decoding, the call record
  (`ApiCall`, `wait_for`) and the failures and delays tests arm;
* `tests.fakes.telegram_messages` - sending, editing and deleting messages, bot commands;
* `tests.fakes.telegram_updates` - update builders, getUpdates long polling, the webhook,
  callback and inline queries;
* `tests.fakes.telegram_chats` - users, chats, members and the messages of every chat;
* `tests.fakes.telegram_files` - registered files and photo sizes;
* `tests.fakes.telegram_payments` - invoices and payments in Telegram Stars, refunds;
* `tests.fakes.telegram_text` - HTML parsing into entities, text and caption limits.

Realistic behaviours worth knowing:

* Malformed HTML answers ``400 Bad Request: can't parse entities: ...`` like Telegram does;
  leading and trailing whitespace of texts and captions is trimmed.
* Texts are limited to 4096 and captions to 1024 characters (UTF-16 code units), inline
  ``callback_data`` to 1-64 bytes (``BUTTON_DATA_INVALID``).
* Photos must be decodable images (else ``IMAGE_PROCESS_FAILED``); the fake produces
  2-3 ``PhotoSize`` entries (real downscaled JPEG thumbnails, the uploaded bytes last).
* Forum topics: `create_topic` makes a supergroup a forum (``chat.is_forum``) and opens a
  topic; update builders take ``thread_id`` (``is_topic_message``, and a message replying to
  nothing replies to the topic's ``forum_topic_created`` message, as on Telegram). A send
  lands in ``message_thread_id`` (an unknown topic or a chat without topics: ``400 message
  thread not found``), else in the topic of the message it replies to, else in General.
* ``getUpdates`` answers ``409 Conflict`` while a webhook is set, and a newer ``getUpdates``
  terminates an older pending one with ``409 Conflict: terminated by other getUpdates request``.

Updates reach the bot through :meth:`FakeTelegram.push_update` (getUpdates long polling) or
:meth:`FakeTelegram.post_webhook`. All methods must be called from the event loop that runs
the fake.

Some error texts for rare cases (media group sizes, oversized photos) are approximations.
"""

from __future__ import annotations

from typing import Final

from tests.fakes.telegram_messages import MessageMethods
from tests.fakes.telegram_payments import PaymentMethods
from tests.fakes.telegram_server import ApiServer

__all__ = ["FakeTelegram"]

DEFAULT_TOKEN: Final = "123456:TEST-token-for-the-fake-telegram-api-0"

_SEND: Final = frozenset({"chat_id", "message_thread_id", "reply_parameters", "reply_markup"})
_CAPTIONED: Final = _SEND | {"caption", "parse_mode"}


class FakeTelegram(ApiServer, MessageMethods, PaymentMethods):
    """An in-process fake of the Telegram Bot API (see the module docstring)."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, username: str = "edit_test_bot") -> None:
        super().__init__(token, username)
        self._routes.update(
            {
                "getMe": (self._get_me, frozenset()),
                "getUpdates": (
                    self._get_updates,
                    frozenset({"offset", "limit", "timeout", "allowed_updates"}),
                ),
                "setWebhook": (
                    self._set_webhook,
                    frozenset(
                        {
                            "url",
                            "secret_token",
                            "allowed_updates",
                            "max_connections",
                            "drop_pending_updates",
                        }
                    ),
                ),
                "deleteWebhook": (self._delete_webhook, frozenset({"drop_pending_updates"})),
                "getWebhookInfo": (self._get_webhook_info, frozenset()),
                "getFile": (self._get_file, frozenset({"file_id"})),
                "sendMessage": (self._send_message, _SEND | {"text", "parse_mode"}),
                "sendPhoto": (self._send_photo, _CAPTIONED | {"photo"}),
                "sendDocument": (self._send_document, _CAPTIONED | {"document"}),
                "sendMediaGroup": (
                    self._send_media_group,
                    frozenset({"chat_id", "message_thread_id", "media", "reply_parameters"}),
                ),
                "editMessageText": (
                    self._edit_message_text,
                    frozenset({"chat_id", "message_id", "text", "parse_mode", "reply_markup"}),
                ),
                "deleteMessage": (self._delete_message, frozenset({"chat_id", "message_id"})),
                "deleteMessages": (self._delete_messages, frozenset({"chat_id", "message_ids"})),
                "answerCallbackQuery": (
                    self._answer_callback_query,
                    frozenset({"callback_query_id", "text", "show_alert"}),
                ),
                "answerInlineQuery": (
                    self._answer_inline_query,
                    frozenset(
                        {"inline_query_id", "results", "cache_time", "is_personal", "button"}
                    ),
                ),
                "setMyCommands": (
                    self._set_my_commands,
                    frozenset({"commands", "scope", "language_code"}),
                ),
                "getChatMember": (self._get_chat_member, frozenset({"chat_id", "user_id"})),
                **self.payment_routes(),
            }
        )
