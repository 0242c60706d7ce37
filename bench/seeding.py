"""Edits in flight without sending them: `submitted` rows written before the bot starts."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa

from bench.fakes import BenchKie
from bench.measure import Json
from domain import steps
from domain.edit import InputPhoto, NewEdit
from storage.db import Database
from storage.dbconn import DbConn
from storage.schema import edits
from tests.fakes._common import FakeTask, Outcome


@dataclass(frozen=True)
class CallbackTarget:
    """An edit waiting for its callback: where to POST it and the task to describe."""

    path: str  # /callbacks/kie/<id>?token=...
    edit_id: int
    task: FakeTask

    @classmethod
    def of(cls, task: FakeTask) -> CallbackTarget:
        """The target of a task the bot created (its callback URL names the edit)."""
        assert task.callback_url is not None
        url = urlsplit(task.callback_url)
        return cls(f"{url.path}?{url.query}", int(url.path.rsplit("/", 1)[1]), task)


async def seed_in_flight(
    workdir: Path, port: int, kie: BenchKie, count: int
) -> list[CallbackTarget]:
    """Put `count` submitted edits into a fresh database with the bot's own storage layer.

    One edit is made with `Database.create_edit` + `transition` (so every column the schema
    has is filled as the bot fills it); the rest are copies of its row with their own ids,
    dedupe keys, chats, tokens and task ids, inserted in bulk.
    """
    database = workdir / "data" / "bot.sqlite3"
    database.parent.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite+aiosqlite:///{database}")
    try:
        await db.migrate()
        stamp = time.time()
        template = await db.edits.create(
            NewEdit(
                dedupe_key="seed:0",
                chat_id=900_000,
                chat_type="private",
                user_id=900_000,
                message_id=1,
                lang="en",
                provider="kie",
                model="qwen/image-edit",
                prompt="make the sky purple (seeded)",
                callback_token=secrets.token_urlsafe(24),
                inputs=[InputPhoto(file_id="seeded", width=1280, height=960)],
            )
        )
        assert template is not None
        await db.edits.transition(template.id, steps.BEGIN_SUBMIT)
        await db.edits.transition(
            template.id,
            steps.RECORD_TASK,
            task_id=uuid.uuid4().hex,
            submitted_at=stamp,
            next_check_at=stamp + 3600,
        )
        row = dict((await db.execute(sa.select(edits))).mappings().one())
        rows: list[Json] = []
        for i in range(1, count):
            clone = dict(row)
            del clone["id"]
            clone.update(
                dedupe_key=f"seed:{i}",
                chat_id=900_000 + i // 4,
                user_id=900_000 + i // 4,
                message_id=1 + i,
                callback_token=secrets.token_urlsafe(24),
                task_id=uuid.uuid4().hex,
            )
            rows.append(clone)

        async def insert(conn: DbConn) -> None:
            for chunk in range(0, len(rows), 2000):
                await conn.execute(edits.insert(), rows[chunk : chunk + 2000])

        await db.transaction(insert)
        seeded = (
            await db.execute(
                sa.select(edits.c.id, edits.c.callback_token, edits.c.task_id, edits.c.prompt)
            )
        ).all()
    finally:
        await db.close()
    base = f"http://127.0.0.1:{port}"
    targets = []
    for edit_id, token, task_id, prompt in seeded:
        url = f"{base}/callbacks/kie/{edit_id}?token={token}"
        task = FakeTask(
            task_id=task_id,
            api="jobs",
            model="qwen/image-edit",
            request={
                "model": "qwen/image-edit",
                "input": {"prompt": prompt, "image_url": f"{base}/files/seeded.jpg"},
                "callBackUrl": url,
            },
            callback_url=url,
            input_urls=[],
            outcome=Outcome(),
        )
        kie.set_phase(task, "generating")
        targets.append(CallbackTarget.of(task))
    return targets
