"""Albums: one media group becomes one edit; single-image models say so; masks for 4o."""

from __future__ import annotations

from domain.edit import EditState
from tests.conftest import CHAT_ID, USER_ID, BotStarter, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram


async def send_album(
    tg: FakeTelegram, images: list[bytes], captions: list[str | None], group: str = "album-1"
) -> list[dict[str, object]]:
    updates = [
        tg.photo_update(CHAT_ID, tg.user(USER_ID), image, caption=caption, media_group_id=group)
        for image, caption in zip(images, captions, strict=True)
    ]
    for update in updates:
        assert await tg.post_webhook(update) == 200
    return [tg.message_of(update) for update in updates]


async def test_album_becomes_one_edit_for_a_multi_image_model(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    bot = await start_bot(make_settings(DEFAULT_MODEL="google/nano-banana-edit"))
    await tg.wait_for("setWebhook")
    images = [make_jpeg(400, 300, color=(200, 10 * i, 0)) for i in range(3)]
    messages = await send_album(tg, images, ["put them on a beach", None, None])
    sent = await tg.wait_for("sendPhoto")
    assert sent[0].params["reply_parameters"]["message_id"] == messages[0]["message_id"]
    assert len(kie.tasks) == 1
    task = next(iter(kie.tasks.values()))
    assert task.model == "google/nano-banana-edit"
    assert len(task.request["input"]["image_urls"]) == 3
    assert task.inputs == images
    edit = await bot.wait_state(EditState.DELIVERED)
    assert len(edit.inputs) == 3 and len(await bot.edits()) == 1


async def test_album_for_a_single_image_model_is_refused_clearly(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    await start_bot(make_settings())
    await tg.wait_for("setWebhook")
    await send_album(tg, [make_jpeg(64, 64)] * 3, ["make it pop", None, None])
    refusal = await tg.wait_for(
        "sendMessage", lambda c: "takes at most 1 image(s), you sent 3" in c.params["text"]
    )
    assert refusal and not kie.tasks


async def test_album_without_caption_asks_once_then_uses_all_photos(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    await start_bot(make_settings(DEFAULT_MODEL="google/nano-banana-edit"))
    await tg.wait_for("setWebhook")
    images = [make_jpeg(300, 300, color=(0, 0, 40 * i)) for i in range(2)]
    await send_album(tg, images, [None, None], group="album-2")
    ask = await tg.wait_for("sendMessage", lambda c: "What should I change" in c.params["text"])
    assert len(ask) == 1
    prompt = tg.text_update(
        CHAT_ID, tg.user(USER_ID), "merge into one scene", reply_to=tg.sent_message(ask[0])
    )
    assert await tg.post_webhook(prompt) == 200
    await tg.wait_for("sendPhoto")
    task = next(iter(kie.tasks.values()))
    assert task.inputs == images
    assert task.request["input"]["prompt"] == "merge into one scene"


async def test_mask_with_a_model_without_masks_is_explained(
    tg: FakeTelegram, kie: FakeKie, make_settings: SettingsFactory, start_bot: BotStarter
) -> None:
    await start_bot(make_settings(DEFAULT_MODEL="google/nano-banana-edit"))
    await tg.wait_for("setWebhook")
    await send_album(
        tg, [make_jpeg(64, 64), make_jpeg(64, 64)], ["add a garden", "mask"], group="album-3"
    )
    await tg.wait_for("sendMessage", lambda c: "does not use masks" in c.params["text"])
    assert not kie.tasks
