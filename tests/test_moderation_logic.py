"""Moderation without Telegram: blocklist matching, rules as JSON, quotas counted from the
edits table (SQLite and PostgreSQL, including two requests racing for the last slot), spend,
button data and catalogs."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from telegram import Chat

from bot import approval_panel as approvals
from bot.blocklist import find_blocked, normalize, parse_phrases
from bot.buttons import parse_remove, remove_data
from bot.formats import format_wait
from bot.handlers import moderation_views as views
from bot.i18n import Translator
from bot.preferences import reset
from domain.edit import NewEdit
from storage.chat_settings import ChatPrefs
from storage.db import Database
from storage.edits import LimitReached
from storage.moderation import (
    DAY,
    Moderation,
    Quota,
    QuotaHit,
    WhoMayEdit,
    quota_guard,
)
from tests.pg import PostgresServer
from tests.test_db import new_edit

GROUP = -100_123


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.new_database().replace("postgresql://", "postgresql+asyncpg://", 1)
    database = Database(url)
    await database.migrate()
    yield database
    await database.close()


# Blocklist ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "prompt", "blocked"),
    [
        ("cat", "a Cat!", True),
        ("cat", "CAT food", True),
        ("cat", "a category chart", False),
        ("cat", "bobcat", False),
        ("cat", "cat_food", False),  # an underscore joins words
        ("cat", "cat-food", True),
        ("hot dog", "a HOT \n  Dog please", True),
        ("hot dog", "hotdog", False),
        ("кот", "Рыжий КОТ спит", True),
        ("кот", "котлета", False),
        ("кот", "скот", False),
        ("straße", "STRASSE", True),  # case folding, not just lowering
        ("cat", "ＣＡＴ", True),  # full-width letters (NFKC)
        ("café", "cafe\u0301 au lait", True),  # a decomposed accent (NFKC composes it)
        ("cafe", "café", False),  # é is a letter: "cafe" is not a whole word there
        ("क", "कि", False),  # a Devanagari vowel sign (a combining mark) continues the word
        ("क", "क ख", True),
        ("c++", "learn C++ now", True),
        ("4k", "make it 4K", True),
        ("4k", "make it 24k", False),
    ],
)
def test_blocklist_matches_whole_words_in_any_script(
    phrase: str, prompt: str, blocked: bool
) -> None:
    assert (find_blocked(prompt, [normalize(phrase)]) is not None) is blocked


def test_phrases_typed_after_block() -> None:
    phrases, too_long = parse_phrases("Hot   Dog, кот;\nCAT, cat, " + "x" * 101)
    assert phrases == ["hot dog", "кот", "cat"]
    assert too_long == ["x" * 101]
    assert parse_phrases(" , ;") == ([], [])


# Rules ----------------------------------------------------------------------------------------


def test_rules_round_trip_as_json_and_defaults_store_nothing() -> None:
    assert Moderation().to_json() == {} and not Moderation().binds
    rules = Moderation(
        who=WhoMayEdit.APPROVED,
        approval=True,
        member_daily=3,
        group_daily=50,
        cooldown=60,
        safety_locked=True,
        blocklist=("hot dog",),
        allowed={2002: "Bob"},
        banned={2005: "Eve"},
    )
    assert Moderation.from_json(rules.to_json()) == rules and rules.binds
    prefs = ChatPrefs(lang="ru", params={"seed": 1}, moderation=rules)
    assert ChatPrefs.from_json(prefs.to_json()) == prefs
    assert reset(prefs) == ChatPrefs(lang="ru", moderation=rules)  # /settings reset keeps it
    assert Moderation(safety_locked=True).binds is False  # enforced on params, refuses nothing


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        {"who": "nobody", "member_daily": -3, "cooldown": True, "approval": "yes"},
        {"blocklist": "cat", "allowed": ["x"], "banned": {"not a number": "x"}},
    ],
)
def test_malformed_rules_fall_back_to_the_defaults(data: object) -> None:
    assert Moderation.from_json(data) == Moderation()


def test_member_lists_and_phrases_change_purely() -> None:
    rules = Moderation().with_member("banned", 7, "Eve").with_member("allowed", 8, "Bob")
    assert rules.banned == {7: "Eve"} and rules.allowed == {8: "Bob"}
    assert rules.with_member("banned", 7, None).banned == {}
    rules = rules.with_phrases(add=("a", "b", "a")).with_phrases(remove=("a",))
    assert rules.blocklist == ("b",)
    assert rules.with_limit("m", 3).member_daily == 3
    assert rules.with_limit("g", 9).group_daily == 9
    assert rules.with_limit("c", 60).cooldown == 60


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "1 s"),
        (45, "45 s"),
        (60, "1 min"),
        (61, "2 min"),
        (3599.5, "1 h"),
        (3600, "1 h"),
        (3660, "1 h 1 min"),
        (DAY - 1, "24 h"),
    ],
)
def test_waits_read_naturally_rounded_up(seconds: float, text: str) -> None:
    translator = Translator()
    assert format_wait(lambda key, **p: translator.tr("en", key, **p), seconds) == text


# Quotas ---------------------------------------------------------------------------------------


async def add(
    db: Database, key: str, *, user: int = 7, at: float, decision: str | None = None
) -> int:
    edit = await db.edits.create(new_edit(key, chat_id=GROUP, user_id=user))
    assert edit is not None
    await db.edits.update_fields(edit.id, created_at=at, decision=decision)
    return edit.id


async def test_quotas_count_the_edits_table_and_say_when(db: Database) -> None:
    now = 1_000_000.0
    await add(db, "old", at=now - DAY - 5)  # outside the window
    await add(db, "a", at=now - 5000)
    await add(db, "b", at=now - 3000)
    await add(db, "rejected", at=now - 10, decision="rejected")  # not counted
    await add(db, "expired", at=now - 10, decision="expired")  # not counted
    await add(db, "other", user=8, at=now - 100)

    member = Quota(GROUP, 7, member_daily=2)
    # Two in the window for a limit of two: a slot frees when the older one is a day old.
    assert await db.moderation.quota_hit(member, now) == QuotaHit("member", 2, now - 5000 + DAY)
    assert await db.moderation.quota_hit(Quota(GROUP, 7, member_daily=3), now) is None
    group = Quota(GROUP, 9, group_daily=3)
    assert await db.moderation.quota_hit(group, now) == QuotaHit("group", 3, now - 5000 + DAY)
    cooldown = Quota(GROUP, 7, cooldown=3600)
    assert await db.moderation.quota_hit(cooldown, now) == QuotaHit(
        "cooldown", 3600, now - 3000 + 3600
    )
    assert await db.moderation.quota_hit(Quota(GROUP, 7, cooldown=60), now) is None
    assert (
        await db.moderation.quota_hit(Quota(-1, 7, member_daily=1, group_daily=1, cooldown=60), now)
        is None
    )


async def test_simultaneous_requests_never_exceed_a_limit(db: Database) -> None:
    """Twelve requests at once for three slots: exactly three are recorded."""
    quota = Quota(GROUP, 7, member_daily=3)

    async def request(i: int) -> bool:
        edit = NewEdit(**{**new_edit(f"race:{i}").__dict__, "chat_id": GROUP, "user_id": 7})
        try:
            return await db.edits.create(edit, guard=quota_guard(quota)) is not None
        except LimitReached:
            return False

    outcomes = await asyncio.gather(*(request(i) for i in range(12)))
    assert outcomes.count(True) == 3
    count = (await db.execute(sa.text("SELECT count(*) FROM edits"))).scalar()
    assert count == 3  # the losers' inserts were rolled back

    cooldown = Quota(GROUP, 8, cooldown=600)
    results = await asyncio.gather(
        *(
            db.edits.create(
                NewEdit(**{**new_edit(f"cd:{i}").__dict__, "chat_id": GROUP, "user_id": 8}),
                guard=quota_guard(cooldown),
            )
            for i in range(6)
        ),
        return_exceptions=True,
    )
    assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
    assert all(isinstance(r, LimitReached) for r in results if isinstance(r, BaseException))


async def test_a_guarded_repeat_of_the_same_update_is_just_a_repeat(db: Database) -> None:
    guard = quota_guard(Quota(GROUP, 7, member_daily=5))
    first = NewEdit(**{**new_edit("same").__dict__, "chat_id": GROUP})
    assert await db.edits.create(first, guard=guard) is not None
    assert await db.edits.create(first, guard=guard) is None


async def test_spend_per_period_and_top_members(db: Database) -> None:
    now = time.time()
    for key, user, age, credits, sent in (
        ("a", 7, 100, 4.0, True),
        ("b", 7, 3 * DAY, 2.5, True),
        ("c", 8, 40 * DAY, 10.0, True),
        ("d", 8, 200, None, True),  # polled: no credit report
        ("e", 9, 10, None, False),  # never sent to the provider
    ):
        edit_id = await add(db, key, user=user, at=now - age)
        await db.edits.update_fields(edit_id, credits=credits, task_id=f"t-{key}" if sent else None)
    await db.edits.update_fields(1, user_name="Bob")
    spend = await db.moderation.usage(chat_id=GROUP, now=now)
    assert (spend["day"].edits, spend["day"].credits) == (2, 4.0)
    assert (spend["week"].edits, spend["week"].credits) == (3, 6.5)
    assert (spend["all"].edits, spend["all"].credits) == (4, 16.5)
    own = await db.moderation.usage(chat_id=GROUP, user_id=7, now=now)
    assert (own["month"].edits, own["month"].credits) == (2, 6.5)
    assert (await db.moderation.usage(user_id=99, now=now))["all"].edits == 0
    top = await db.moderation.top_spenders(GROUP, since=now - 30 * DAY)
    assert [(m.user_id, m.name, m.edits, m.credits) for m in top] == [
        (7, "Bob", 2, 6.5),
        (8, None, 1, 0.0),
    ]


async def test_the_moderation_migration_goes_down_and_up(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from storage.db import MIGRATIONS_DIR

    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}")
    await database.migrate()
    edit = await database.edits.create(new_edit(user_name="Bob"))
    assert edit is not None

    def downgrade(sync_conn: sa.Connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = sync_conn
        command.downgrade(cfg, "0003")

    await database.run_sync(downgrade)
    info = await database.execute(sa.text("PRAGMA table_info(edits)"))
    columns = {row[1] for row in info.all()}
    assert "user_name" not in columns and "decision" not in columns and "prompt" in columns
    await database.migrate()
    again = await database.edits.get(edit.id)
    assert again is not None and again.prompt == edit.prompt and again.user_name is None
    await database.close()


# Buttons and catalogs -------------------------------------------------------------------------


def test_button_data_round_trips_within_telegram_limits() -> None:
    assert parse_remove(remove_data(12)) == 12
    assert parse_remove(remove_data(10**17)) == 10**17
    # The data names the edit only: a span of message ids is no part of it.
    for forged in ("r1:x:", "r1:x:1:2", "r1:x:1:2:3", "r1:x:1:2:11", "r1:a:1", "r1:x:a"):
        assert parse_remove(forged) is None, forged
    assert approvals.parse(approvals.approve_data(5)) == (True, 5)
    assert approvals.parse(approvals.reject_data(5)) == (False, 5)
    assert approvals.parse("a1:y:") is None and approvals.parse("a1:m:5") is None

    translator = Translator()
    chat = Chat(GROUP, "supergroup", title="x" * 128)
    rules = Moderation(
        who=WhoMayEdit.APPROVED,
        blocklist=tuple(f"phrase number {i} " + "y" * 80 for i in range(40)),
        banned={-(10**13) + i: "N" * 64 for i in range(40)},
        allowed={10**12 + i: "M" for i in range(3)},
    )
    for lang in ("en", "ru"):
        ctx = views.PanelContext(lang, translator, chat)
        rendered = [
            views.home(ctx, rules),
            views.who_view(ctx, rules),
            views.words_view(ctx, rules),
            views.members_view(ctx, dict(rules.banned), role="banned"),
            views.members_view(ctx, dict(rules.allowed), role="allowed"),
            *(views.limit_view(ctx, rules, kind) for kind in ("m", "g", "c")),
        ]
        for text, markup in rendered:
            assert markup is not None and len(text) < 4096
            for row in markup.inline_keyboard:
                for button in row:
                    assert isinstance(button.callback_data, str)
                    assert len(button.callback_data.encode()) <= 64
                    assert re.match(views.PATTERN, button.callback_data)


MODULES = ("policy.py", "blocklist.py", "buttons.py", "delivery.py", "handlers")
KEY = re.compile(
    r"\"((?:access|time|moderation|approval|remove|modlog|usage|error|result|settings)"
    r"\.[a-z_]+(?:\.[a-z_]+)*)\""
)


def test_every_moderation_text_is_in_both_catalogs() -> None:
    root = Path(__file__).parent.parent / "bot"
    files = [path for name in MODULES for path in sorted((root / name).glob("**/*.py"))]
    files += [root / name for name in MODULES if name.endswith(".py")]
    keys = {key for path in files for key in KEY.findall(path.read_text())}
    keys |= {f"moderation.limit.{kind}" for kind in ("cooldown", "member", "group")}
    keys |= {f"moderation.who.{who.value}" for who in WhoMayEdit}
    keys |= {f"moderation.opt.{kind}" for kind in views.LIMIT_FIELDS}
    keys |= {f"moderation.help.{kind}" for kind in views.LIMIT_FIELDS}
    keys |= {f"approval.panel.{outcome}" for outcome in ("approved", "rejected")}
    keys |= {f"approval.toast.{outcome}" for outcome in ("approved", "rejected")}
    keys |= {f"modlog.decision.{decision}" for decision in ("approved", "rejected")}
    keys |= {f"usage.period.{name}" for name in ("day", "week", "month", "all")}
    keys |= {"error.rejected", "error.approval_expired"}  # failure_key(error_code)
    translator = Translator()
    assert len(keys) > 100
    for lang in ("en", "ru"):
        assert sorted(key for key in keys if key not in translator.keys(lang)) == [], lang
    assert set(translator.keys("en")) == set(translator.keys("ru"))
