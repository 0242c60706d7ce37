"""The /moderation panel as text and inline keyboards (pure rendering, no I/O).

Callback data, always within Telegram's 64 bytes:

    m1:home              the panel              m1:who               who may edit
    m1:w:<who>           choose who may edit    m1:appr              toggle approval
    m1:safe              toggle the safety lock m1:lim:<kind>        a limit's choices
    m1:set:<kind>:<i>    choose choice i        m1:words             the blocklist
    m1:unw:<key>         unblock a phrase       m1:bans / m1:ok      banned / approved members
    m1:unban:<user id>   unban                  m1:deny:<user id>    remove an approval
    m1:close             close the panel

Limit kinds: `m` edits per member per day, `g` per group per day, `c` the cooldown (s).
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from typing import Any, Literal

from telegram import Chat, InlineKeyboardButton, InlineKeyboardMarkup

from bot.buttons import in_rows, shorten
from bot.formats import format_wait
from bot.i18n import Translator
from storage.moderation import Moderation, WhoMayEdit

PREFIX = "m1"
PATTERN = rf"^{PREFIX}:"
LIST_MAX = 30  # members or phrases shown with a button each
LABEL_MAX = 40
TEXT_BUDGET = 3000  # of Telegram's 4096 characters per message, for a list's lines

LimitKind = Literal["m", "g", "c"]
LIMIT_FIELDS: dict[LimitKind, str] = {"m": "member_daily", "g": "group_daily", "c": "cooldown"}
LIMIT_CHOICES: dict[LimitKind, tuple[int, ...]] = {
    "m": (0, 1, 3, 5, 10, 20, 50),
    "g": (0, 10, 25, 50, 100, 250, 500),
    "c": (0, 30, 60, 300, 900, 3600),
}

View = tuple[str, InlineKeyboardMarkup | None]


@dataclass(frozen=True)
class PanelContext:
    """Who reads the panel and which group it is about."""

    lang: str
    translator: Translator
    chat: Chat

    def tr(self, key: str, **params: Any) -> str:
        return self.translator.tr(self.lang, key, **params)


def data(*parts: object) -> str:
    return ":".join((PREFIX, *(str(part) for part in parts)))


def _button(text: str, *parts: object) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=data(*parts))


def _back(ctx: PanelContext) -> list[InlineKeyboardButton]:
    return [_button(ctx.tr("moderation.btn.back"), "home")]


def _bullets(ctx: PanelContext, lines: list[str]) -> list[str]:
    """As many lines as fit the message, then how many more there are."""
    shown: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) > TEXT_BUDGET:
            shown.append(ctx.tr("moderation.more", n=len(lines) - len(shown)))
            break
        shown.append(line)
        used += len(line) + 1
    return shown


def phrase_key(phrase: str) -> str:
    """A short stable key for a blocked phrase (phrases may be longer than callback data)."""
    return hashlib.sha256(phrase.encode()).hexdigest()[:10]


def on_off(ctx: PanelContext, value: bool) -> str:
    return ctx.tr("moderation.value.on" if value else "moderation.value.off")


def limit_label(ctx: PanelContext, kind: LimitKind, value: int) -> str:
    if not value:
        return ctx.tr("moderation.value.no_limit")
    if kind == "c":
        return format_wait(ctx.tr, value)
    return str(value)


def who_label(ctx: PanelContext, who: WhoMayEdit) -> str:
    return ctx.tr(f"moderation.who.{who.value}")


def _line(title: str, value: str) -> str:
    return f"{title}: <b>{html.escape(value)}</b>"


def home(ctx: PanelContext, mod: Moderation) -> View:
    """Every rule with its current value, a button per rule."""
    title = ctx.tr("moderation.title", title=html.escape(ctx.chat.title or ""))
    who = who_label(ctx, mod.who)
    if mod.who is WhoMayEdit.APPROVED:
        who += f" ({len(mod.allowed)})"
    words = ", ".join(mod.blocklist[:10]) + (" …" if len(mod.blocklist) > 10 else "")
    lines = [
        title,
        "",
        _line(ctx.tr("moderation.opt.who"), who),
        _line(ctx.tr("moderation.opt.approval"), on_off(ctx, mod.approval)),
        _line(ctx.tr("moderation.opt.m"), limit_label(ctx, "m", mod.member_daily)),
        _line(ctx.tr("moderation.opt.g"), limit_label(ctx, "g", mod.group_daily)),
        _line(ctx.tr("moderation.opt.c"), limit_label(ctx, "c", mod.cooldown)),
        _line(ctx.tr("moderation.opt.safety"), on_off(ctx, mod.safety_locked)),
        _line(
            ctx.tr("moderation.opt.blocklist"),
            words or ctx.tr("moderation.value.none"),
        ),
        _line(ctx.tr("moderation.opt.banned"), str(len(mod.banned))),
        "",
        ctx.tr("moderation.hint"),
    ]
    keyboard = [
        [_button(f"{ctx.tr('moderation.opt.who')}: {who_label(ctx, mod.who)}", "who")],
        [_button(f"{ctx.tr('moderation.opt.approval')}: {on_off(ctx, mod.approval)}", "appr")],
        [
            _button(ctx.tr("moderation.opt.m"), "lim", "m"),
            _button(ctx.tr("moderation.opt.g"), "lim", "g"),
        ],
        [
            _button(ctx.tr("moderation.opt.c"), "lim", "c"),
            _button(f"{ctx.tr('moderation.opt.safety')}: {on_off(ctx, mod.safety_locked)}", "safe"),
        ],
        [
            _button(ctx.tr("moderation.btn.words", n=len(mod.blocklist)), "words"),
            _button(ctx.tr("moderation.btn.bans", n=len(mod.banned)), "bans"),
            _button(ctx.tr("moderation.btn.approved", n=len(mod.allowed)), "ok"),
        ],
        [_button(ctx.tr("moderation.btn.close"), "close")],
    ]
    return "\n".join(lines), InlineKeyboardMarkup(keyboard)


def who_view(ctx: PanelContext, mod: Moderation) -> View:
    lines = [
        f"<b>{ctx.tr('moderation.opt.who')}</b>",
        ctx.tr("moderation.help.who"),
    ]
    buttons = [
        _button(("✅ " if who is mod.who else "") + who_label(ctx, who), "w", who.value)
        for who in WhoMayEdit
    ]
    return "\n".join(lines), InlineKeyboardMarkup([*in_rows(buttons, 1), _back(ctx)])


def limit_view(ctx: PanelContext, mod: Moderation, kind: LimitKind) -> View:
    value: int = getattr(mod, LIMIT_FIELDS[kind])
    lines = [
        f"<b>{ctx.tr(f'moderation.opt.{kind}')}</b>",
        ctx.tr(f"moderation.help.{kind}"),
        "",
        _line(ctx.tr("moderation.now"), limit_label(ctx, kind, value)),
    ]
    buttons = [
        _button(("✅ " if choice == value else "") + limit_label(ctx, kind, choice), "set", kind, i)
        for i, choice in enumerate(LIMIT_CHOICES[kind])
    ]
    return "\n".join(lines), InlineKeyboardMarkup([*in_rows(buttons, 4), _back(ctx)])


def words_view(ctx: PanelContext, mod: Moderation) -> View:
    """The blocked phrases, each with a button that unblocks it."""
    lines = [f"<b>{ctx.tr('moderation.opt.blocklist')}</b>", ctx.tr("moderation.help.words"), ""]
    if mod.blocklist:
        lines += _bullets(ctx, [f"• {html.escape(phrase)}" for phrase in mod.blocklist])
    else:
        lines.append(ctx.tr("moderation.value.none"))
    buttons = [
        _button(f"✖️ {shorten(phrase, LABEL_MAX)}", "unw", phrase_key(phrase))
        for phrase in mod.blocklist[:LIST_MAX]
    ]
    return "\n".join(lines), InlineKeyboardMarkup([*in_rows(buttons, 2), _back(ctx)])


def members_view(
    ctx: PanelContext, members: dict[int, str], *, role: Literal["banned", "allowed"]
) -> View:
    """Banned (or approved) members, each with a button that lifts it."""
    title, help_key, action = (
        ("moderation.opt.banned", "moderation.help.bans", "unban")
        if role == "banned"
        else ("moderation.opt.approved", "moderation.help.approved", "deny")
    )
    lines = [f"<b>{ctx.tr(title)}</b>", ctx.tr(help_key), ""]
    if members:
        lines += _bullets(
            ctx,
            [
                f"• {html.escape(name)} (<code>{user_id}</code>)"
                for user_id, name in members.items()
            ],
        )
    else:
        lines.append(ctx.tr("moderation.value.none"))
    buttons = [
        _button(f"✖️ {shorten(name, LABEL_MAX)}", action, user_id)
        for user_id, name in list(members.items())[:LIST_MAX]
    ]
    return "\n".join(lines), InlineKeyboardMarkup([*in_rows(buttons, 2), _back(ctx)])


def closed(ctx: PanelContext) -> View:
    return ctx.tr("moderation.closed"), None
