"""Result downloads reach public addresses only (server-side request forgery through result
URLs and their redirects), unless RESULT_ALLOW_PRIVATE allows private ranges."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest

from bot.result_addresses import address_allowed
from domain.edit import Edit, EditState
from tests.conftest import BotStarter, RunningBot, SettingsFactory
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.reliability import (
    ContentServer,
    callback_url,
    post,
    quiesce,
    send_edit,
    sent_ok,
    success_body,
)

IMAGE = make_jpeg(64, 64)


@pytest.mark.parametrize(
    ("address", "public", "private"),
    [
        ("8.8.8.8", True, True),
        ("2606:4700::1111", True, True),
        ("::ffff:8.8.8.8", True, True),
        ("127.0.0.1", False, True),
        ("127.5.6.7", False, True),
        ("::1", False, True),
        ("10.1.2.3", False, True),
        ("172.16.0.1", False, True),
        ("172.31.255.254", False, True),
        ("192.168.1.1", False, True),
        ("100.64.0.1", False, True),  # carrier-grade NAT
        ("fc00::1", False, True),
        ("fd12:3456::1", False, True),
        ("::ffff:127.0.0.1", False, True),  # IPv4-mapped IPv6
        ("::ffff:10.0.0.1", False, True),
        ("2002:7f00:1::1", False, True),  # 6to4 around 127.0.0.1
        # Never, whatever the setting: cloud metadata, link-local, multicast, reserved.
        ("169.254.169.254", False, False),
        ("169.254.0.1", False, False),
        ("::ffff:169.254.169.254", False, False),
        ("fe80::1", False, False),
        ("fec0::1", False, False),  # deprecated site-local
        ("224.0.0.1", False, False),
        ("239.255.255.250", False, False),
        ("ff02::1", False, False),
        ("240.0.0.1", False, False),
        ("255.255.255.255", False, False),
        ("0.0.0.0", False, False),
        ("::", False, False),
    ],
)
def test_address_check_over_the_ranges(address: str, public: bool, private: bool) -> None:
    ip = ip_address(address)
    assert address_allowed(ip, allow_private=False) is public
    assert address_allowed(ip, allow_private=True) is private


async def held(
    bot: RunningBot, tg: FakeTelegram, kie: FakeKie, edit_id: int = 1
) -> tuple[dict[str, Any], Edit]:
    await tg.wait_for("setWebhook")
    kie.next_outcome(hold=True, callbacks=0)
    message = await send_edit(bot, tg, f"edit {edit_id}")
    return message, await bot.wait_state(EditState.SUBMITTED, edit_id)


async def deliver(bot: RunningBot, edit: Edit, url: str, state: EditState) -> Edit:
    """The provider's callback announces `url` as the result; the edit then ends in `state`."""
    status, _ = await post(callback_url(bot, edit), json_body=success_body(edit.task_id or "", url))
    assert status == 200
    return await bot.wait_state(state, edit.id)


async def notice(tg: FakeTelegram, bot: RunningBot, key: str) -> None:
    text = bot.services.tr("en", key)
    await tg.wait_for("editMessageText", lambda c: c.params["text"] == text)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]"])
async def test_result_on_a_private_address_is_refused_by_default(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    host: str,
) -> None:
    bot = await start_bot(make_settings(RESULT_ALLOW_PRIVATE=False))
    message, edit = await held(bot, tg, kie)
    async with ContentServer({"/r.jpg": (IMAGE, "image/jpeg")}) as cdn:
        port = cdn.url.rsplit(":", 1)[1]
        failed = await deliver(bot, edit, f"http://{host}:{port}/r.jpg", EditState.FAILED)
        assert failed.error_code == "result_address"
        await notice(tg, bot, "error.result_address")
        await quiesce(bot)
        assert cdn.hits == []  # never even asked
    assert not sent_ok(tg, "sendPhoto", message)


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/latest/meta-data/",
        "http://[fe80::1]/",
        "http://224.0.0.1/",
    ],
)
async def test_redirect_to_a_refused_address_is_refused_even_with_private_allowed(
    tg: FakeTelegram,
    kie: FakeKie,
    make_settings: SettingsFactory,
    start_bot: BotStarter,
    target: str,
) -> None:
    bot = await start_bot(make_settings(RESULT_ALLOW_PRIVATE=True))
    message, edit = await held(bot, tg, kie)
    async with ContentServer({}, redirects={"/r.jpg": "/hop", "/hop": target}) as cdn:
        failed = await deliver(bot, edit, f"{cdn.url}/r.jpg", EditState.FAILED)
        assert failed.error_code == "result_address"
        await notice(tg, bot, "error.result_address")
        assert cdn.hits == ["/r.jpg", "/hop"]
    assert not sent_ok(tg, "sendPhoto", message)


async def test_redirects_are_followed_a_few_times_only(
    tg: FakeTelegram, kie: FakeKie, webhook_bot: RunningBot
) -> None:
    bot = webhook_bot
    redirects = {"/ok": "/1", "/1": "/2", "/2": "/r.jpg", "/loop": "/loop"}
    async with ContentServer({"/r.jpg": (IMAGE, "image/jpeg")}, redirects) as cdn:
        message, edit = await held(bot, tg, kie)
        await deliver(bot, edit, f"{cdn.url}/ok", EditState.DELIVERED)  # three redirects: fine
        [sent] = sent_ok(tg, "sendPhoto", message)
        assert sent.files["photo"] == IMAGE

        message, edit = await held(bot, tg, kie, edit_id=2)
        failed = await deliver(bot, edit, f"{cdn.url}/loop", EditState.FAILED)
        assert failed.error_code == "result_http"
        await quiesce(bot)
        assert cdn.hits.count("/loop") == 4  # the URL and three redirects, then no more
    assert not sent_ok(tg, "sendPhoto", message)
