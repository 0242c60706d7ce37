"""The same service on PostgreSQL: only DATABASE_URL changes."""

from __future__ import annotations

from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, BotStarter, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.pg import PostgresServer


async def test_edit_delivered_with_postgresql(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    postgres: PostgresServer,
) -> None:
    settings = make_settings(DATABASE_URL=postgres.new_database())
    assert settings.resolved_database_url.startswith("postgresql+asyncpg://")
    bot = await start_bot(settings)
    assert bot.services.db.dialect == "postgresql"
    await tg.wait_for("setWebhook")
    image = make_jpeg(640, 480)
    update = tg.photo_update(CHAT_ID, tg.user(USER_ID), image, caption="make it night")
    assert await tg.post_webhook(update) == 200
    await tg.wait_for("sendPhoto")
    edit = await bot.wait_state(EditState.DELIVERED)
    task = next(iter(kie.tasks.values()))
    assert edit.task_id == task.task_id and task.inputs == [image]
    assert tg.files_sent_to(CHAT_ID) == task.results
    # The result's message is on record for its buttons (a second record of it is no error).
    message_id = tg.sent_message(tg.calls_of("sendPhoto")[0])["message_id"]
    records = bot.services.db.result_messages
    await records.record(edit.id, CHAT_ID, [message_id])
    assert await records.of_edit(edit.id, CHAT_ID) == [message_id]
    assert await records.edit_of(CHAT_ID, message_id) == edit.id
