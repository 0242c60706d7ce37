"""The /settings menu as text and inline keyboards (pure rendering, no I/O).

Callback data is versioned and compact, always within Telegram's 64 bytes:

    s1:home            the main menu          s1:o:<code>        an option's sub-menu
    s1:v:<code>:<i>    choose choice i        s1:t:<code>        ask for text (ForceReply)
    s1:c:<code>        clear (random seed)    s1:models          the model list
    s1:m:<model key>   choose a model         s1:langs           the language list
    s1:gens            the generating models  s1:g:<model key>   choose one (/imagine)
    s1:l:<lang|auto>   choose a language      s1:file            toggle "send as files"
    s1:reset           back to defaults       s1:close           close the menu
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from telegram import Chat, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ChatType

from bot.buttons import in_rows, shorten
from bot.i18n import Translator
from bot.preferences import chosen_generator, chosen_model, current, generators, model_key
from bot.providers.base import ModelOption
from bot.providers.registry import ProviderRegistry
from storage.chat_settings import ChatPrefs
from storage.moderation import SAFETY_OPTION

PREFIX = "s1"
PATTERN = rf"^{PREFIX}:"
LABEL_MAX = 60

View = tuple[str, InlineKeyboardMarkup | None]


@dataclass(frozen=True)
class MenuContext:
    """What rendering a menu needs: who reads it, which chat, which models exist."""

    lang: str
    translator: Translator
    registry: ProviderRegistry
    default_model: str
    chat: Chat
    default_generator: str = ""

    def tr(self, key: str, **params: Any) -> str:
        return self.translator.tr(self.lang, key, **params)

    def option_text(self, option: ModelOption, part: str, **params: Any) -> str:
        """An option's "label", "help" or "ask" text: the catalog entry's own words in the
        reader's language (else English) for options the message catalogs do not know."""
        own = option.texts.get(part, {})
        text = own.get(self.lang) or own.get("en")
        if text is None:
            key = "opt" if part == "label" else part
            return self.tr(f"settings.{key}.{option.name}", **params)
        try:
            return text % params if params else text
        except (KeyError, ValueError, TypeError):
            return text

    @property
    def group(self) -> bool:
        return self.chat.type != ChatType.PRIVATE


def data(*parts: object) -> str:
    return ":".join((PREFIX, *(str(part) for part in parts)))


def _button(text: str, *parts: object) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data(*parts))


def _back(ctx: MenuContext) -> list[InlineKeyboardButton]:
    return [_button(ctx.tr("settings.btn.back"), "home")]


def value_label(ctx: MenuContext, option: ModelOption, value: Any) -> str:
    """How a value reads (plain text: escape it for HTML)."""
    if value is None:
        return ctx.tr(f"settings.value.{option.unset}")
    if isinstance(value, bool):
        return ctx.tr("settings.value.on" if value else "settings.value.off")
    if option.value_names is not None:
        return ctx.tr(f"settings.{option.value_names}.{value}")
    if isinstance(value, float):
        return f"{value:g}"
    return shorten(str(value), LABEL_MAX)


def language_name(ctx: MenuContext, lang: str | None) -> str:
    if lang is None or lang not in ctx.translator.catalogs:
        return ctx.tr("settings.value.lang_auto")
    return ctx.translator.tr(lang, "lang.name")


def _line(title: str, value: str) -> str:
    return f"{title}: <b>{html.escape(value)}</b>"


def locked(ctx: MenuContext, prefs: ChatPrefs, option: ModelOption) -> bool:
    """The group's moderation locked this option on (the safety checker)."""
    return ctx.group and prefs.moderation.safety_locked and option.name == SAFETY_OPTION


def home(ctx: MenuContext, prefs: ChatPrefs) -> View:
    """The main menu: every setting with its current value, a button per sub-menu."""
    spec = chosen_model(prefs, ctx.registry, ctx.default_model)
    options = spec.options.values()
    if ctx.group:
        title = ctx.tr("settings.title.group", title=html.escape(ctx.chat.title or ""))
    else:
        title = ctx.tr("settings.title.private")
    lines = [title, "", _line(ctx.tr("settings.opt.model"), spec.title)]
    drawing = _generator(ctx, prefs)
    if drawing is not None:
        lines.append(_line(ctx.tr("settings.opt.generator"), drawing))
    for option in options:
        if locked(ctx, prefs, option):
            label = value_label(ctx, option, True) + " 🔒"
        else:
            label = value_label(ctx, option, current(prefs, option))
        lines.append(_line(ctx.option_text(option, "label"), label))
    file_state = ctx.tr("settings.value.on" if prefs.send_as_file else "settings.value.off")
    lines.append(_line(ctx.tr("settings.opt.send_as_file"), file_state))
    lines.append(_line(ctx.tr("settings.opt.lang"), language_name(ctx, prefs.lang)))
    if ctx.group:
        lines += ["", ctx.tr("settings.group_note")]
    keyboard = [[_button(ctx.tr("settings.opt.model"), "models")]]
    if drawing is not None:
        keyboard[0].append(_button(ctx.tr("settings.opt.generator"), "gens"))
    keyboard += in_rows(
        [_button(ctx.option_text(option, "label"), "o", option.code) for option in options],
        2,
    )
    keyboard.append([_button(f"{ctx.tr('settings.opt.send_as_file')}: {file_state}", "file")])
    keyboard.append(
        [
            _button(ctx.tr("settings.opt.lang"), "langs"),
            _button(ctx.tr("settings.btn.reset"), "reset"),
        ]
    )
    keyboard.append([_button(ctx.tr("settings.btn.close"), "close")])
    return "\n".join(lines), InlineKeyboardMarkup(keyboard)


def option_view(ctx: MenuContext, prefs: ChatPrefs, option: ModelOption) -> View:
    """One option: what it does, its value, and the values the model offers for it."""
    value = current(prefs, option)
    lines = [
        f"<b>{ctx.option_text(option, 'label')}</b>",
        ctx.option_text(option, "help"),
        "",
        _line(ctx.tr("settings.now"), value_label(ctx, option, value)),
    ]
    keyboard: list[list[InlineKeyboardButton]] = []
    if locked(ctx, prefs, option):  # only "On", and why
        lines += ["", ctx.tr("settings.safety_locked")]
        keyboard = [[_button("✅ " + value_label(ctx, option, True), "v", option.code, 0)]]
    elif option.kind == "choice":
        buttons = [
            _button(
                ("✅ " if choice == value else "") + value_label(ctx, option, choice),
                "v",
                option.code,
                index,
            )
            for index, choice in enumerate(option.choices)
        ]
        width = 2 if option.value_names is not None or None in option.choices else 4
        keyboard = in_rows(buttons, width)
    elif option.kind == "text":
        row = [_button(ctx.tr("settings.btn.enter_text"), "t", option.code)]
        if value is not None:
            row.append(_button(ctx.tr("settings.btn.clear"), "c", option.code))
        keyboard = [row]
    else:  # seed
        random_mark = "✅ " if value is None else ""
        keyboard = [
            [
                _button(random_mark + ctx.tr("settings.btn.seed_random"), "c", option.code),
                _button(ctx.tr("settings.btn.seed_fixed"), "t", option.code),
            ]
        ]
    keyboard.append(_back(ctx))
    return "\n".join(lines), InlineKeyboardMarkup(keyboard)


def model_view(ctx: MenuContext, prefs: ChatPrefs) -> View:
    """The models of the enabled providers; choosing one drops what it does not support."""
    spec = chosen_model(prefs, ctx.registry, ctx.default_model)
    lines = [
        f"<b>{ctx.tr('settings.opt.model')}</b>",
        ctx.tr("settings.help.model"),
        "",
        _line(ctx.tr("settings.now"), spec.title),
    ]
    keyboard = [
        [
            _button(
                ("✅ " if model.id == spec.id else "") + f"{model.title} · {model.provider}",
                "m",
                model_key(model.id),
            )
        ]
        for model in ctx.registry.models.values()
        if model.edits  # models that only generate from text are not for editing
    ]
    keyboard.append([_button(ctx.tr("settings.btn.all"), "home")])
    return "\n".join(lines), InlineKeyboardMarkup(keyboard)


def _generator(ctx: MenuContext, prefs: ChatPrefs) -> str | None:
    """The title of the model /imagine draws with, when there is a choice (else None)."""
    if len(generators(ctx.registry)) < 2:
        return None
    spec = chosen_generator(prefs, ctx.registry, ctx.default_generator, ctx.default_model)
    return spec.title if spec is not None else None


def generator_view(ctx: MenuContext, prefs: ChatPrefs) -> View:
    """The models that draw from text alone; the chosen one draws every /imagine."""
    spec = chosen_generator(prefs, ctx.registry, ctx.default_generator, ctx.default_model)
    lines = [
        f"<b>{ctx.tr('settings.opt.generator')}</b>",
        ctx.tr("settings.help.generator"),
        "",
        _line(ctx.tr("settings.now"), spec.title if spec is not None else "—"),
    ]
    keyboard = [
        [
            _button(
                ("✅ " if spec is not None and model.id == spec.id else "")
                + f"{model.title} · {model.provider}",
                "g",
                model_key(model.id),
            )
        ]
        for model in generators(ctx.registry)
    ]
    keyboard.append([_button(ctx.tr("settings.btn.all"), "home")])
    return "\n".join(lines), InlineKeyboardMarkup(keyboard)


def language_view(ctx: MenuContext, prefs: ChatPrefs) -> View:
    lines = [
        f"<b>{ctx.tr('settings.opt.lang')}</b>",
        ctx.tr("settings.help.lang"),
        "",
        _line(ctx.tr("settings.now"), language_name(ctx, prefs.lang)),
    ]

    def choice(lang: str | None) -> InlineKeyboardButton:
        mark = "✅ " if lang == prefs.lang else ""
        return _button(mark + language_name(ctx, lang), "l", lang or "auto")

    # Each language is named in itself; two to a row keeps the longer names whole on phones.
    languages = [choice(lang) for lang in ctx.translator.languages]
    keyboard = [[choice(None)], *in_rows(languages, 2), _back(ctx)]
    return "\n".join(lines), InlineKeyboardMarkup(keyboard)


def closed(ctx: MenuContext) -> View:
    return ctx.tr("settings.closed"), None
