"""The settings layer offers whatever a model's spec describes, from any provider.

A provider made up here declares options no shipped model has; the real bot (fake Telegram,
fake KIE for uploads) offers them in /settings, refuses what the spec or the provider
refuses, stores the rest and sends it with the next edit. The shipped models' options are
checked against their own validators, since the menu offers exactly what a spec lists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from bot import builders as app_module
from bot.app import create_app, start_serving
from bot.handlers.settings_views import data
from bot.i18n import Translator
from bot.providers.base import (
    InputRejected,
    ModelOption,
    ModelSpec,
    SubmitRequest,
    TaskState,
    TaskStatus,
    check_prompt_and_images,
    option_table,
)
from bot.providers.catalog import models_for
from bot.providers.kie import jobs_api
from bot.providers.kie4o import kie4o_api
from bot.providers.odkkk import odkkk_api
from bot.web import make_runner
from domain.errors import CallbackRejected, ProviderError
from tests.conftest import CHAT_ID, USER_ID, RunningBot, SettingsFactory
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.test_e2e_settings import Chat, data_of, force_reply, keyboard, photo, stored

ACME = ModelSpec(
    id="acme:styler",
    provider="acme",
    api_model="styler-2",
    title="Acme Styler",
    options=option_table(
        ModelOption("style", "sty", choices=(None, "noir", "pastel"), value_names="style"),
        ModelOption("strength", "str", choices=(0.5, 1), default=1),
        ModelOption("caption", "cap", kind="text", unset="none", max_length=12),
    ),
)
ACME_TEXTS = {
    "settings.opt.style": "🎨 Style",
    "settings.help.style": "The look of the result.",
    "settings.style.noir": "Noir",
    "settings.style.pastel": "Pastel",
    "settings.opt.strength": "💪 Strength",
    "settings.help.strength": "How strongly the style applies.",
    "settings.opt.caption": "🏷 Caption",
    "settings.help.caption": "Text written under the picture.",
    "settings.ask.caption": "🏷 Send the caption (up to %(limit)s characters).",
}


class AcmeProvider:
    """A provider family the settings code has never heard of; its results are its inputs."""

    name = "acme"
    rate_limit = None  # no limit on new tasks: every turn is free

    def __init__(self) -> None:
        self.models = {ACME.id: ACME}
        self.requests: list[SubmitRequest] = []

    def accepts_callback_url(self, url: str) -> bool:
        return False

    def validate(self, request: SubmitRequest) -> None:
        check_prompt_and_images(request)
        caption = request.params.get("caption")
        if caption is not None and not str(caption).replace(" ", "").isalpha():
            raise InputRejected("param_choice", param="caption", choices="letters and spaces")

    async def submit(self, request: SubmitRequest) -> str:
        self.requests.append(request)
        return f"acme-{len(self.requests)}"

    def retry_delay(self, attempt: int, error: ProviderError) -> float | None:
        return None

    async def status(self, task_id: str) -> TaskStatus:
        request = self.requests[int(task_id.removeprefix("acme-")) - 1]
        return TaskStatus(TaskState.SUCCEEDED, task_id=task_id, result_urls=request.image_urls)

    def parse_callback(
        self, body: Any, headers: Mapping[str, str], *, task_id: str | None = None
    ) -> TaskStatus:
        raise CallbackRejected("acme does not call back", status=404)

    async def fallback_download_url(self, url: str) -> str | None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
async def acme_bot(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[RunningBot, AcmeProvider]]:
    """The real bot with the Acme family enabled next to KIE, and catalog texts for it."""
    acme = AcmeProvider()
    shipped = app_module.build_providers
    monkeypatch.setattr(
        app_module,
        "build_providers",
        lambda settings, transport: [*shipped(settings, transport), acme],
    )
    translator = Translator()
    translator.catalogs["en"].update(ACME_TEXTS)
    settings = make_settings(webhook=True)
    app = create_app(settings, translator=translator)
    runner = make_runner(app, handle_signals=False)
    await start_serving(runner, settings.host, settings.port)
    bot = RunningBot(app, runner, f"http://127.0.0.1:{settings.port}", settings)
    try:
        yield bot, acme
    finally:
        await bot.stop()


async def test_a_new_models_options_are_offered_checked_and_sent(
    tg: FakeTelegram, kie: FakeKie, acme_bot: tuple[RunningBot, AcmeProvider]
) -> None:
    bot, acme = acme_bot
    await tg.wait_for("setWebhook")
    me = Chat(tg, CHAT_ID, tg.user(USER_ID))
    models = await me.command("/model")
    models = await me.tap(models, "Acme Styler · acme")
    assert (await stored(bot, CHAT_ID)).model == "acme:styler"

    menu = await me.tap(models, "⚙️ All settings")
    assert "Model: Acme Styler" in menu["text"]
    assert "🎨 Style: Model default" in menu["text"] and "💪 Strength: 1" in menu["text"]
    assert "🏷 Caption: None" in menu["text"]
    assert "🖼 Images" not in [text for text, _ in keyboard(menu)]  # Qwen's, not Acme's

    state = await me.tap(menu, "🎨 Style")
    assert [text for text, _ in keyboard(state)] == [
        "✅ Model default",
        "Noir",
        "Pastel",
        "⬅️ Back",
    ]
    assert data_of(state, "Pastel") == "s1:v:sty:2"
    state = await me.tap(menu, "Noir")
    assert "Now: Noir" in state["text"]
    for forged in ("s1:v:sty:3", "s1:o:ar", "s1:v:n:1"):  # past the spec's list; Qwen's codes
        answer = await me.press(menu, forged)
        assert answer.params["text"] == "This button is no longer valid."
    await me.tap(menu, "🎨 Style")
    await me.tap(menu, "⬅️ Back")
    await me.tap(menu, "💪 Strength")
    await me.tap(menu, "0.5")
    await me.tap(menu, "⬅️ Back")

    await me.tap(menu, "🏷 Caption")
    await me.tap(menu, "✍️ Enter text")
    question = (await tg.wait_for("sendMessage", force_reply))[-1]
    assert "up to 12 characters" in question.params["text"]
    too_long = await me.type_answer(question, "a caption far too long")
    assert "22 characters, the limit is 12" in too_long.params["text"] and force_reply(too_long)
    refused = await me.type_answer(too_long, "noir 1947")
    assert refused.params["text"] == "⚙️ The setting caption must be one of: letters and spaces."
    confirmed = await me.type_answer(refused, "soft light")
    assert confirmed.params["text"] == "✅ 🏷 Caption: soft light"

    chosen = {"style": "noir", "strength": 0.5, "caption": "soft light"}
    assert dict((await stored(bot, CHAT_ID)).params) == chosen
    sent = await photo(tg, me, "make it moody")
    await me.reply_of(sent, method="sendPhoto")
    assert [(r.model.id, dict(r.params)) for r in acme.requests] == [("acme:styler", chosen)]
    assert not kie.tasks

    models = await me.command("/model")
    await me.tap(models, "Qwen Image Edit · kie")
    prefs = await stored(bot, CHAT_ID)
    assert prefs.model == "qwen/image-edit" and dict(prefs.params) == {}


def shipped_models() -> list[tuple[ModelSpec, Any]]:
    """Every model the catalog ships, with its family's validator."""
    families = [
        (models_for("kie"), jobs_api().validate),
        (models_for("apikley"), jobs_api().validate),
        (models_for("kie-4o"), kie4o_api().validate),
        (models_for("odkkk"), odkkk_api().validate),
    ]
    return [(spec, validate) for models, validate in families for spec in models.values()]


def request(spec: ModelSpec, params: dict[str, Any]) -> SubmitRequest:
    return SubmitRequest(model=spec, prompt="x", image_urls=("https://x.invalid/",), params=params)


@pytest.mark.parametrize(
    ("spec", "validate"), [pytest.param(*model, id=model[0].id) for model in shipped_models()]
)
def test_every_offered_value_is_one_the_model_takes(spec: ModelSpec, validate: Any) -> None:
    for option in spec.options.values():
        assert len(data("v", option.code, len(option.choices)).encode()) <= 64
        if option.kind == "choice":
            assert option.default in option.choices, option.name
            for choice in option.choices:
                validate(request(spec, {option.name: choice}))
        if option.kind == "text" and option.max_length:
            validate(request(spec, {option.name: "x" * option.max_length}))
            with pytest.raises(InputRejected):
                validate(request(spec, {option.name: "x" * (option.max_length + 1)}))


def test_a_code_names_the_same_option_on_every_model() -> None:
    """A menu drawn for one model may be pressed after a switch to another."""
    by_code: dict[str, ModelOption] = {}
    by_name: dict[str, ModelOption] = {}
    for spec, _validate in shipped_models():
        codes = [option.code for option in spec.options.values()]
        assert len(codes) == len(set(codes)), spec.id
        for option in spec.options.values():
            assert by_code.setdefault(option.code, option) == option
            assert by_name.setdefault(option.name, option) == option
    assert len(by_code) == 14
