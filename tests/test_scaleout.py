"""Several replicas behind one URL: PostgreSQL + S3 shared, any replica takes any request.

Two `python -m bot` processes share a PostgreSQL database (a real server on 127.0.0.1) and
an S3 bucket (moto on 127.0.0.1); a small round-robin load balancer in front of them is the
public URL, so Telegram updates, album messages and provider callbacks (duplicates included)
land on alternating replicas.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from domain.edit import EditState
from storage.db import Database
from tests.conftest import CHAT_ID, USER_ID, free_port
from tests.fakes.balancer import RoundRobin
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3
from tests.fakes.telegram import FakeTelegram
from tests.pg import PostgresServer
from tests.reliability import Service, eventually, read_rows, service_env


@dataclass
class Cluster:
    replicas: list[Service]
    balancer: RoundRobin
    database_url: str
    bucket: str

    async def rows(self) -> list[dict[str, Any]]:
        return await read_rows(_asyncpg(self.database_url))


@pytest.fixture
async def cluster(
    tmp_path: Path,
    tg: FakeTelegram,
    kie: FakeKie,
    postgres: PostgresServer,
    s3_server: MotoS3,
) -> AsyncIterator[Cluster]:
    balancer = RoundRobin(free_port())
    database_url = postgres.new_database()
    bucket = await s3_server.create_bucket()
    replicas: list[Service] = []
    for n in range(2):
        port = free_port()
        workdir = tmp_path / f"replica{n}"
        workdir.mkdir()
        env = service_env(tg, kie, workdir / "data", port)
        env.update(
            {
                "PUBLIC_BASE_URL": balancer.url,
                "DATABASE_URL": database_url,
                "STORAGE": "s3",
                "S3_BUCKET": bucket,
                "S3_ENDPOINT_URL": s3_server.url,
                "S3_REGION": REGION,
                "S3_ACCESS_KEY_ID": ACCESS_KEY,
                "S3_SECRET_ACCESS_KEY": SECRET_KEY,
                "DEFAULT_MODEL": "google/nano-banana-edit",
                "CALLBACK_GRACE": "1",
            }
        )
        replicas.append(Service(env, workdir, f"replica{n}", public_url=balancer.url))
    balancer.upstreams = [replica.url for replica in replicas]
    await balancer.start()
    try:
        # Start one after the other: both run the migrations (advisory-locked) and set the
        # same webhook; the second finds the schema already current.
        for replica in replicas:
            await replica.start(tg, within=60)
        yield Cluster(replicas, balancer, database_url, bucket)
    finally:
        for replica in replicas:
            await replica.close()
        await balancer.stop()


def delivered_per_message(tg: FakeTelegram) -> Counter[int]:
    """How many successful result sends each original message got."""
    counts: Counter[int] = Counter()
    for call in tg.calls_of("sendPhoto"):
        if call.ok:
            counts[int(call.params["reply_parameters"]["message_id"])] += 1
    return counts


async def test_replicas_share_state_and_deliver_each_edit_once(
    cluster: Cluster, tg: FakeTelegram, kie: FakeKie, s3_server: MotoS3
) -> None:
    singles = 16
    for n in range(singles):
        # Duplicated callbacks (3 deliveries each, spread over both replicas); every fourth
        # task sends none, so the replicas' sweepers must find it by polling.
        kie.next_outcome(callbacks=0 if n % 4 == 0 else 3)
    kie.next_outcome(callbacks=2)  # the album's task
    user = tg.user(USER_ID)
    originals: list[int] = []
    for n in range(singles):
        update = tg.photo_update(CHAT_ID, user, make_jpeg(320, 240), caption=f"edit {n}")
        originals.append(tg.message_of(update)["message_id"])
        assert await tg.post_webhook(update) == 200
    album = [
        tg.photo_update(
            CHAT_ID,
            user,
            make_jpeg(200, 200, color=(60 * i, 0, 0)),
            caption="one scene" if i == 0 else None,
            media_group_id="cluster-album",
        )
        for i in range(3)
    ]
    for update in album:
        assert await tg.post_webhook(update) == 200  # alternating replicas
    album_first = tg.message_of(album[0])["message_id"]
    expected = {*originals, album_first}

    async def all_delivered() -> bool:
        rows = await cluster.rows()
        return len(rows) == len(expected) and all(
            row["state"] == EditState.DELIVERED.value for row in rows
        )

    await eventually(all_delivered, within=90, what="every edit delivered")
    # Let every duplicate callback and sweeper pass run out before counting.
    await kie.wait_for(
        lambda: all(task.finished for task in kie.tasks.values()), 10, "tasks finished"
    )
    await eventually(lambda: _callbacks_settled(kie), within=30, what="callback retries to settle")
    counts = delivered_per_message(tg)
    assert set(counts) == expected
    assert all(count == 1 for count in counts.values()), counts
    assert len(kie.tasks) == len(expected)  # never submitted twice
    album_tasks = [t for t in kie.tasks.values() if len(t.input_urls) == 3]
    assert len(album_tasks) == 1  # the album became one edit across replicas
    # Both replicas took Telegram updates and provider callbacks.
    for replica in cluster.replicas:
        assert cluster.balancer.hits[(replica.url, "telegram")] > 0
        assert cluster.balancer.hits[(replica.url, "callbacks")] > 0
    # Input photos were in the shared bucket, fetched by the provider from S3.
    assert all(url.startswith(s3_server.url) for t in kie.tasks.values() for url in t.input_urls)


def _callbacks_settled(kie: FakeKie) -> bool:
    """Every callback attempt got an answer (none is still in flight)."""
    return all(attempt.status is not None or attempt.error for attempt in kie.callbacks)


async def test_a_killed_replica_is_covered_by_the_other(
    cluster: Cluster, tg: FakeTelegram, kie: FakeKie
) -> None:
    edits = 8
    for n in range(edits):
        kie.next_outcome(hold=True, callbacks=0 if n % 2 else 1)
    user = tg.user(USER_ID)
    originals = []
    for n in range(edits):
        update = tg.photo_update(CHAT_ID, user, make_jpeg(256, 256), caption=f"held {n}")
        originals.append(tg.message_of(update)["message_id"])
        assert await tg.post_webhook(update) == 200

    async def all_submitted() -> bool:
        rows = await cluster.rows()
        return len(rows) == edits and all(r["state"] == EditState.SUBMITTED.value for r in rows)

    await eventually(all_submitted, within=60, what="every edit submitted")
    dead, alive = cluster.replicas
    await dead.kill()  # SIGKILL: no cleanup at all
    kie.release_all()  # tasks finish: callbacks hit the balancer, which skips the dead replica

    async def all_delivered() -> bool:
        rows = await cluster.rows()
        return all(r["state"] == EditState.DELIVERED.value for r in rows)

    await eventually(all_delivered, within=90, what="the surviving replica to deliver all")
    counts = delivered_per_message(tg)
    assert set(counts) == set(originals)
    assert all(count == 1 for count in counts.values()), counts
    assert len(kie.tasks) == edits
    assert alive.process is not None and alive.process.returncode is None


async def test_group_limits_hold_across_replicas(
    cluster: Cluster, tg: FakeTelegram, kie: FakeKie
) -> None:
    group_id = -100_777
    tg.register_chat(group_id, chat_type="supergroup", title="Shared")
    database = Database(_asyncpg(cluster.database_url))
    try:
        await database.chat_settings.update(
            group_id,
            lambda prefs: replace(
                prefs, moderation=replace(prefs.moderation, member_daily=1, group_daily=2)
            ),
            user_id=USER_ID,
        )
    finally:
        await database.close()
    members = [tg.user(3001, first_name="Bob"), tg.user(3002, first_name="Eve")]
    updates = [
        tg.photo_update(
            group_id,
            members[i % 2],
            make_jpeg(200, 150),
            caption=f"/edit hat {i}",
            chat_type="supergroup",
        )
        for i in range(6)
    ]
    # All at once, alternating between the replicas: each replica counts from the database.
    statuses = await asyncio.gather(*(tg.post_webhook(update) for update in updates))
    assert statuses == [200] * 6
    refusals = await tg.wait_for(
        "sendMessage", lambda c: "Try again in" in str(c.params.get("text")), count=4, timeout=60
    )
    await tg.wait_for("sendPhoto", count=2, timeout=60)
    rows = await cluster.rows()
    assert len(rows) == 2 and len(kie.tasks) == 2
    assert sorted(row["user_id"] for row in rows) == [3001, 3002]  # one each: member limit 1
    assert len(refusals) == 4


def _asyncpg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://")
