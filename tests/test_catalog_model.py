"""A jobs-API model added by a catalog entry alone (MODEL_CATALOG_FILE), no code.

The real bot with the fake Bot API and the fake KIE: the model is offered by /model, its
options (one of them unknown to the message catalogs) are in /settings, its limits are
checked before anything is spent, and an edit reaches KIE's createTask as the entry lays
it out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.providers.base import InputRejected
from tests.conftest import CHAT_ID, USER_ID, BotStarter, SettingsFactory
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.test_e2e_settings import Chat, keyboard, photo, stored

# Seedream 4.0 edit as KIE's model page documents it (tests/fakes/kie.py follows it).
SEEDREAM_V4 = """
[options.image_resolution]
code = "res"
texts.label = { en = "📐 Resolution", ru = "📐 Разрешение" }
texts.help = { en = "Pixels of the result.", ru = "Сколько пикселей в результате." }

[[models]]
id = "bytedance/seedream-v4-edit"
title = "Seedream 4.0 Edit"
family = "jobs"
model = "bytedance/seedream-v4-edit"
providers = ["kie"]
capabilities = ["edit"]
credits = 5

[models.prompt]
field = "input.prompt"
max_length = 5000

[models.images]
field = "input.image_urls"
max_count = 10
max_megabytes = 10

[models.params.image_size]
field = "input.image_size"
values = ["square", "square_hd", "portrait_4_3", "portrait_3_2", "portrait_16_9",
          "landscape_4_3", "landscape_3_2", "landscape_16_9", "landscape_21_9"]
offer = ["square_hd", "portrait_4_3", "portrait_16_9", "landscape_4_3", "landscape_16_9"]
auto = ["square_hd", "portrait_4_3", "portrait_3_2", "portrait_16_9", "landscape_4_3",
        "landscape_3_2", "landscape_16_9", "landscape_21_9"]

[models.params.image_size.ratios]
square_hd = "1:1"
portrait_4_3 = "3:4"
portrait_3_2 = "2:3"
portrait_16_9 = "9:16"
landscape_4_3 = "4:3"
landscape_3_2 = "3:2"
landscape_16_9 = "16:9"
landscape_21_9 = "21:9"

[models.params.image_resolution]
field = "input.image_resolution"
values = ["1K", "2K", "4K"]
default = "1K"

[models.params.max_images]
type = "integer"
field = "input.max_images"
min = 1
max = 6
menu = false
when_unset = 1

[models.params.seed]
type = "integer"
field = "input.seed"
min = 0
max = 2147483647
"""
MODEL = "bytedance/seedream-v4-edit"


async def test_a_model_added_only_in_the_catalog_is_offered_checked_and_sent(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "models.toml"
    catalog.write_text(SEEDREAM_V4)
    bot = await start_bot(make_settings(MODEL_CATALOG_FILE=str(catalog)))
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))

    # A setting of the default model that the new one takes too, and one it does not.
    menu = await me.command("/settings")
    await me.tap(menu, "🖼 Images")
    await me.tap(menu, "2")
    await me.tap(menu, "⬅️ Back")
    await me.tap(menu, "📐 Output size")
    await me.tap(menu, "Square HD")

    models = await me.command("/model")
    assert "Seedream 4.0 Edit · kie" in [text for text, _ in keyboard(models)]
    models = await me.tap(models, "Seedream 4.0 Edit · kie")
    prefs = await stored(bot, CHAT_ID)
    assert prefs.model == MODEL and dict(prefs.params) == {"image_size": "square_hd"}

    menu = await me.tap(models, "⚙️ All settings")
    assert "Model: Seedream 4.0 Edit" in menu["text"]
    assert "📐 Resolution: 1K" in menu["text"] and "Seed: Random" in menu["text"]
    assert "🖼 Images" not in [text for text, _ in keyboard(menu)]
    state = await me.tap(menu, "📐 Resolution")
    assert "Pixels of the result." in state["text"]
    assert [text for text, _ in keyboard(state)] == ["✅ 1K", "2K", "4K", "⬅️ Back"]
    await me.tap(menu, "4K")
    await me.tap(menu, "⬅️ Back")
    await me.tap(menu, "📐 Output size")
    await me.tap(menu, "Auto (from the photo)")

    # Checked against the entry's limits before anything is spent.
    check = bot.services.edits.check_request
    for prompt, params, code in [
        ("x" * 5001, {}, "prompt_too_long"),
        ("x", {"image_resolution": "8K"}, "param_choice"),
        ("x", {"max_images": 7}, "param_range"),
        ("x", {"image_size": "huge"}, "param_choice"),
    ]:
        with pytest.raises(InputRejected) as refused:
            check(MODEL, prompt, 1, params)
        assert refused.value.code == code
    with pytest.raises(InputRejected) as refused:
        check(MODEL, "x", 11, {})
    assert refused.value.code == "too_many_images"
    assert not kie.tasks

    sent = await photo(tg, me, "make it a watercolour")
    await me.reply_of(sent, method="sendPhoto")
    (task,) = kie.tasks.values()
    assert task.request["model"] == MODEL
    assert task.request["input"] == {
        "prompt": "make it a watercolour",
        "image_urls": [task.input_urls[0]],
        "image_size": "landscape_4_3",  # chosen from the photo's shape among `auto`
        "image_resolution": "4K",
        "max_images": 1,
    }
    edit = await bot.edit()
    assert edit.model == MODEL and edit.cost_estimate == 5
