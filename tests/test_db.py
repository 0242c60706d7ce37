"""The edit state machine's storage, on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.config import load_settings
from domain import steps
from domain.edit import AlbumItem, EditState, InputPhoto, NewEdit
from storage.albums import CLOSED_RETENTION
from storage.db import Database
from storage.schema import album_items, albums, blocked_chats, edits
from tests.pg import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres")
        url = server.new_database()
    settings = load_settings(
        _env_file=None,
        BOT_TOKEN="123456:TEST-token-for-the-fake-telegram-api-0",
        KIE_API_KEY="k",
        DATABASE_URL=url,
    )
    database = Database(settings.resolved_database_url)
    await database.migrate()
    yield database
    await database.close()


def new_edit(key: str = "msg:1:1", **overrides: object) -> NewEdit:
    values: dict[str, object] = {
        "dedupe_key": key,
        "chat_id": -100123456789,
        "chat_type": "supergroup",
        "user_id": 7,
        "message_id": 42,
        "lang": "en",
        "provider": "kie",
        "model": "qwen/image-edit",
        "prompt": "add a hat",
        "callback_token": "t",
        "inputs": [InputPhoto(file_id="f1", width=10, height=20)],
        "params": {"seed": 1},
    }
    values.update(overrides)
    return NewEdit(**values)  # type: ignore[arg-type]


async def test_create_round_trips_and_dedupes(db: Database) -> None:
    edit = await db.edits.create(new_edit())
    assert edit is not None and edit.state is EditState.QUEUED
    assert edit.inputs == [InputPhoto(file_id="f1", width=10, height=20)]
    assert edit.params == {"seed": 1} and edit.chat_id == -100123456789
    assert await db.edits.create(new_edit()) is None  # the same Telegram update again
    fetched = await db.edits.get(edit.id)
    assert fetched == edit


async def test_transition_happens_once_under_concurrency(db: Database) -> None:
    edit = await db.edits.create(new_edit())
    assert edit is not None
    results = await asyncio.gather(
        *(db.edits.transition(edit.id, steps.BEGIN_SUBMIT, task_id=f"t{i}") for i in range(20))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    stored = await db.edits.get(edit.id)
    assert stored is not None and stored.state is EditState.SUBMITTING
    assert stored.task_id == winners[0].task_id
    assert await db.edits.transition(edit.id, steps.CANCEL_UNSENT) is None


async def test_leases_exclude_other_workers_until_they_expire(db: Database) -> None:
    edit = await db.edits.create(new_edit(state=EditState.SUCCEEDED))
    assert edit is not None
    claims = await asyncio.gather(
        *(db.edits.claim(edit.id, [EditState.SUCCEEDED], f"w{i}", 60) for i in range(10))
    )
    assert len([c for c in claims if c is not None]) == 1
    assert await db.edits.due([EditState.SUCCEEDED], now=time.time()) == []
    await db.edits.release(edit.id, "someone-else")  # not the holder: nothing changes
    assert await db.edits.claim(edit.id, [EditState.SUCCEEDED], "w-late", 60) is None
    assert await db.edits.claim(edit.id, [EditState.QUEUED], "w-x", 60) is None
    due = await db.edits.due([EditState.SUCCEEDED], now=time.time() + 120)
    assert [e.id for e in due] == [edit.id]


async def test_a_fenced_step_by_a_former_lease_holder_changes_nothing(db: Database) -> None:
    edit = await db.edits.create(new_edit(state=EditState.SUCCEEDED))
    assert edit is not None
    # w1's lease ran out (a stalled worker) and w2 took the edit over.
    assert await db.edits.claim(edit.id, [EditState.SUCCEEDED], "w1", -1) is not None
    taken = await db.edits.claim(edit.id, [EditState.SUCCEEDED], "w2", 60)
    assert taken is not None and taken.lease_owner == "w2"
    assert (
        await db.edits.transition(edit.id, steps.DELIVER, owner="w1", result_file_ids=["x"]) is None
    )
    assert await db.edits.renew(["w1"], 60) == set()  # nor can it extend a lease it lost
    assert await db.edits.get(edit.id) == taken  # not a field changed
    delivered = await db.edits.transition(edit.id, steps.DELIVER, owner="w2", result_file_ids=["y"])
    assert delivered is not None and delivered.state is EditState.DELIVERED
    assert delivered.result_file_ids == ["y"] and delivered.lease_owner is None


async def test_renewing_extends_only_the_leases_still_held(db: Database) -> None:
    now = time.time()
    held = await db.edits.create(new_edit("a", lease_owner="w1", lease_until=now + 1))
    other = await db.edits.create(new_edit("b", lease_owner="w2", lease_until=now + 1))
    assert held is not None and other is not None
    assert await db.edits.renew(["w1", "gone"], 300) == {"w1"}
    renewed, untouched = await db.edits.get(held.id), await db.edits.get(other.id)
    assert renewed is not None and renewed.lease_until is not None
    assert renewed.lease_until >= now + 299 and renewed.updated_at == held.updated_at
    assert untouched == other


async def test_due_edits_respect_next_check(db: Database) -> None:
    first = await db.edits.create(new_edit("a", state=EditState.SUBMITTED))
    second = await db.edits.create(new_edit("b", state=EditState.SUBMITTED))
    assert first and second
    await db.edits.update_fields(
        second.id, only_in=[EditState.SUBMITTED], next_check_at=time.time() + 60
    )
    due = await db.edits.due([EditState.SUBMITTED], now=time.time())
    assert [e.id for e in due] == [first.id]


async def test_a_status_message_turn_is_taken_once_across_replicas(db: Database) -> None:
    edit = await db.edits.create(new_edit(state=EditState.SUBMITTED))
    assert edit is not None
    await db.edits.update_fields(edit.id, status_message_id=77)
    shown = (EditState.QUEUED, EditState.SUBMITTED)

    async def turn(words: str, now: float, interval: float = 5.0) -> bool:
        return await db.edit_status.take_turn(
            edit.id, words, now=now, interval=interval, states=shown
        )

    later = edit.created_at + 5.0  # the message went out with the edit: its first turn
    assert not await turn("running:50:10", later - 0.1)
    taken = await asyncio.gather(*(turn(f"running:{p}:10", later) for p in (50, 55, 60, 65)))
    assert taken.count(True) == 1
    assert not await turn("running:70:10", later + 4.9)  # within the interval
    assert await turn("running:70:10", later + 5.0)
    assert not await turn("running:70:10", later + 20.0)  # the same words
    await db.edits.transition(edit.id, steps.SUCCEED, result_urls=["https://r/1.png"])
    assert not await turn("running:75:5", later + 40.0)  # the result replaces the message


async def test_typical_duration_is_the_median_of_recent_successes(db: Database) -> None:
    assert await db.edit_status.typical_duration("qwen/image-edit") is None
    runs = [
        (EditState.DELIVERED, 10.0),
        (EditState.SUCCEEDED, 14.0),
        (EditState.DELIVERED, 11.0),
        (EditState.FAILED, 2.0),  # no result: not how long a result takes
        (EditState.DELIVERED, 30.0),
    ]
    for n, (state, seconds) in enumerate(runs):
        edit = await db.edits.create(new_edit(f"msg:1:{n}", state=state))
        assert edit is not None
        await db.edits.update_fields(edit.id, submitted_at=1000.0, finished_at=1000.0 + seconds)
    other = await db.edits.create(new_edit("msg:2:1", state=EditState.DELIVERED, model="x"))
    assert other is not None
    await db.edits.update_fields(other.id, submitted_at=1000.0, finished_at=1100.0)
    assert await db.edit_status.typical_duration("qwen/image-edit") == 12.5
    assert await db.edit_status.typical_duration("qwen/image-edit", recent=2) == 20.5  # 30, 11
    # Only the bot's latest edits count: the newest one is another model's.
    assert await db.edit_status.typical_duration("qwen/image-edit", window=1) is None


async def test_failure_notice_is_marked_once(db: Database) -> None:
    edit = await db.edits.create(new_edit(state=EditState.FAILED))
    assert edit is not None
    pending = await db.edits.unnotified(older_than=time.time() + 1)
    assert [e.id for e in pending] == [edit.id]
    assert await db.edits.claim(edit.id, [EditState.FAILED], "notice", 60) is not None
    assert await db.edits.mark_notified(edit.id, "notice") is True
    assert await db.edits.mark_notified(edit.id, "notice") is False
    assert await db.edits.unnotified(older_than=time.time() + 1) == []
    marked = await db.edits.get(edit.id)
    assert marked is not None and marked.lease_owner is None and marked.lease_until is None


async def test_a_notice_recorded_late_leaves_another_workers_lease(db: Database) -> None:
    # The edit moved on while its notice was out (a late success) and is being delivered.
    edit = await db.edits.create(new_edit(state=EditState.SUCCEEDED))
    assert edit is not None
    delivering = await db.edits.claim(edit.id, [EditState.SUCCEEDED], "delivery", 60)
    assert delivering is not None
    assert await db.edits.mark_notified(edit.id, "notice") is True
    after = await db.edits.get(edit.id)
    assert after is not None and after.notified_at is not None
    assert (after.lease_owner, after.lease_until) == ("delivery", delivering.lease_until)


async def test_pending_prompt_is_taken_once(db: Database) -> None:
    photo = InputPhoto(file_id="p", kind="document", mime_type="image/png")
    await db.prompts.put(1, 2, 3, [photo])
    assert await db.prompts.take(1, 2, max_age=60) == (3, [photo])
    assert await db.prompts.take(1, 2, max_age=60) is None


async def test_album_is_claimed_by_exactly_one_worker(db: Database) -> None:
    for message_id in (10, 11, 12):
        item = AlbumItem(
            chat_id=5,
            message_id=message_id,
            media_group_id="g",
            user_id=7,
            chat_type="private",
            lang="en",
            caption="x" if message_id == 10 else None,
            photo=InputPhoto(file_id=f"f{message_id}"),
        )
        assert await db.albums.add_item(item)
    assert await db.albums.claim(5, "g", quiet_since=time.time() - 60) is None  # not quiet yet
    claims = await asyncio.gather(
        *(db.albums.claim(5, "g", quiet_since=time.time() + 1) for _ in range(8))
    )
    won = [c for c in claims if c is not None]
    assert len(won) == 1
    assert [item.message_id for item in won[0]] == [10, 11, 12]
    late = AlbumItem(
        chat_id=5,
        message_id=13,
        media_group_id="g",
        user_id=7,
        chat_type="private",
        lang="en",
        caption=None,
        photo=None,
    )
    assert await db.albums.add_item(late) is False


def album_item(chat_id: int, message_id: int, group: str = "g") -> AlbumItem:
    return AlbumItem(
        chat_id=chat_id,
        message_id=message_id,
        media_group_id=group,
        user_id=7,
        chat_type="private",
        lang="en",
        caption=None,
        photo=InputPhoto(file_id=f"f{message_id}"),
    )


async def test_closed_albums_are_forgotten_after_the_retention(db: Database) -> None:
    """Claiming an album forgets albums closed long enough ago that Telegram can no longer
    repeat their messages; a recently closed one still recognises a repeat."""
    now = time.time()
    for chat_id, last_item_at in ((1, now - CLOSED_RETENTION - 60), (2, now - 3600)):
        await db.execute(
            albums.insert().values(
                chat_id=chat_id,
                media_group_id="old",
                state="closed",
                last_item_at=last_item_at,
                created_at=last_item_at - 5,
            )
        )
    assert await db.albums.add_item(album_item(3, 30))
    claimed = await db.albums.claim(3, "g", quiet_since=time.time() + 1)
    assert claimed is not None and [item.message_id for item in claimed] == [30]
    rows = await db.execute(sa.select(albums.c.chat_id, albums.c.state).order_by(albums.c.chat_id))
    assert [tuple(row) for row in rows.all()] == [(2, "closed"), (3, "closed")]
    assert await db.albums.add_item(album_item(2, 20, "old")) is False  # a repeat: still known
    assert await db.albums.add_item(album_item(3, 31)) is False
    left = await db.execute(sa.select(sa.func.count()).select_from(album_items))
    assert left.scalar_one() == 0


async def blocked_chats_of(db: Database) -> dict[int, str]:
    rows = await db.execute(sa.select(blocked_chats.c.chat_id, blocked_chats.c.reason))
    return {int(chat_id): str(reason) for chat_id, reason in rows.all()}


async def test_blocked_chats(db: Database) -> None:
    await db.chats.block(9, "Forbidden: bot was blocked by the user")
    await db.chats.block(9, "again")
    assert await blocked_chats_of(db) == {9: "Forbidden: bot was blocked by the user"}
    failed = await db.edits.create(new_edit("msg:9:1", chat_id=9, state=EditState.FAILED))
    assert failed is not None
    claimed = await db.edits.claim_for_chat(failed.id, [EditState.FAILED], "w", 60)
    assert claimed is not None and claimed[1] is True  # the delivery sees the block
    await db.edits.release(failed.id, "w")
    # The chat writes to the bot again: the new edit's insert unblocks it.
    assert await db.edits.create(new_edit("msg:9:2", chat_id=9), unblock_chat=True)
    assert await blocked_chats_of(db) == {}
    claimed = await db.edits.claim_for_chat(failed.id, [EditState.FAILED], "w", 60)
    assert claimed is not None and claimed[1] is False


async def test_migrations_upgrade_an_existing_database_in_place(tmp_path: Path) -> None:
    """A database at revision 0001 with data upgrades to head without losing the data."""
    from alembic import command
    from alembic.config import Config

    from storage.db import MIGRATIONS_DIR

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    database = Database(url)

    def upgrade_to(revision: str) -> Callable[[sa.Connection], None]:
        def run(sync_conn: sa.Connection) -> None:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, revision)

        return run

    await database.run_sync(upgrade_to("0001"))
    # A row as revision 0001 knew it (columns of later revisions do not exist yet).
    old = new_edit()
    await database.execute(
        edits.insert().values(
            dedupe_key=old.dedupe_key,
            chat_id=old.chat_id,
            chat_type=old.chat_type,
            user_id=old.user_id,
            message_id=old.message_id,
            lang=old.lang,
            provider=old.provider,
            model=old.model,
            prompt=old.prompt,
            params=old.params,
            inputs=[item.to_json() for item in old.inputs],
            state=old.state.value,
            callback_token=old.callback_token,
            created_at=1.0,
            updated_at=2.0,
        )
    )
    await database.migrate()
    again = await database.edits.get(1)
    assert again is not None
    assert (again.prompt, again.params, again.inputs, again.state) == (
        old.prompt,
        old.params,
        old.inputs,
        EditState.QUEUED,
    )
    assert (again.created_at, again.updated_at, again.user_name, again.decision) == (
        1.0,
        2.0,
        None,
        None,
    )
    newer = await database.edits.create(new_edit("msg:1:2", user_name="Bob"))
    assert newer is not None and newer.user_name == "Bob"
    version = (await database.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar()
    assert version is not None and version != "0001"
    await database.close()


async def test_an_edit_that_ends_gives_its_lease_back(db: Database) -> None:
    edit = await db.edits.create(new_edit(lease_owner="w1", lease_until=time.time() + 60))
    assert edit is not None and edit.id
    moved = await db.edits.transition(edit.id, steps.BEGIN_SUBMIT)
    assert moved is not None  # not an end: the lease stays
    row = (await db.execute(sa.select(edits.c.lease_owner).where(edits.c.id == edit.id))).one()
    assert row[0] == "w1"
    ended = await db.edits.transition(edit.id, steps.INTERRUPT)
    assert ended is not None
    row = (
        await db.execute(
            sa.select(edits.c.lease_owner, edits.c.lease_until).where(edits.c.id == edit.id)
        )
    ).one()
    assert tuple(row) == (None, None)


async def test_updates_are_recorded_once_and_resumed_in_order(db: Database) -> None:
    """db.updates: a repeated update_id records nothing; what a dead owner left undone is
    claimed by one process, oldest first, once its lease ran out; done rows are pruned."""
    updates = db.updates
    assert await updates.record(12, '{"update_id": 12}', "dead", 60) is True
    assert await updates.record(12, '{"update_id": 12, "again": 1}', "other", 60) is False
    assert await updates.record_many(
        [(11, '{"update_id": 11}'), (12, "{}"), (13, '{"update_id": 13}'), (13, "{}")],
        "dead",
        60,
    ) == [11, 13]
    assert await updates.count_pending() == 3
    assert await updates.claim_stale("me", 60) == []  # the owner's leases still run

    await db.execute(sa.text("UPDATE updates SET lease_until = 1"))  # the owner died long ago
    claims = await asyncio.gather(*(updates.claim_stale(f"w{n}", 60) for n in range(5)))
    [won] = [claim for claim in claims if claim]  # one process takes them
    assert won == [(11, '{"update_id": 11}'), (12, '{"update_id": 12}'), (13, '{"update_id": 13}')]
    winner = f"w{claims.index(won)}"

    await updates.done(12)
    await updates.done(12)
    assert await updates.count_pending() == 2
    await updates.release(winner)  # a graceful shutdown: the rest is free at once
    assert [update_id for update_id, _ in await updates.claim_stale("next", 60)] == [11, 13]
    assert await updates.record(12, "{}", "late", 60) is False  # done, still recognised
    assert await updates.prune(done_before=time.time() - 3600) == 0
    assert await updates.prune(done_before=time.time() + 1) == 1
    assert await updates.count_pending() == 2


async def test_an_operator_incident_opens_once_reminds_after_a_while_and_closes(
    db: Database,
) -> None:
    code = "insufficient_credits@kie-playground"  # longer than the first schema allowed
    assert await db.alerts.open(code, remind_after=3600)
    assert not await db.alerts.open(code, remind_after=3600)  # open already: no second alert
    assert await db.alerts.is_open(code)
    assert await db.alerts.open(code, remind_after=0)  # open that long: one reminder
    assert await db.alerts.close(code)
    assert not await db.alerts.close(code)
    assert await db.alerts.open(code, remind_after=3600)  # a new incident
