"""Chaos under real-world timing: SIGKILL the real service (`python -m bot`, webhook mode)
at random moments, several times, while the provider duplicates some callbacks and loses
others, then check that every photo ended delivered exactly once or failed with a message.

Each cycle starts the service on the same DATA_DIR and port, sends a wave of photo updates
(each from its own user and chat, so everything said in a chat belongs to one edit) and
kills the process at a moment drawn from a seeded generator, in one of four phases:

* intake: while the wave is arriving at the webhook (after some of it was answered 200;
  like Telegram, the test sends again, after the restart, every update not answered 200);
* submission: while create requests are on the wire (the fake answers them late, after
  making the task) or waiting for the rate limiter or a 429 back-off;
* flood: while a delivery waits out a Telegram flood wait (429, `retry_after` twice the
  delivery lease);
* delivery: while results are being sent (Telegram answers a few sendPhoto late).

Each of the four phases comes once, in a random order, plus one drawn at random. The
provider's tasks succeed with three callbacks, one, or none (then only the sweeper's status
queries find them), or fail (with a callback, or found by a status query answering 501);
the first two are held until their edit ended (they expire, unless their submission was cut
off). Leases are a second, so the restarted process takes the dead one's work over as it
would in production, only sooner.

After a last restart and quiesce: one edit per photo update; never two provider tasks for
one edit; each edit `delivered` with one result, or `failed`/`expired` with one failure
message. A message sent twice is allowed only in the documented window: Telegram accepted
it from a process that was killed before the database recorded it (`delivered`, or
`notified_at` for a failure notice). The test attributes every repeat to such a process (by
when Telegram received and answered it, and what the database held after the kill) and
counts them; every result accepted from a dying process and not recorded was sent again.
"Editing your photo…" messages never removed or rewritten are counted too;
each must come from a process killed while preparing that edit's photos.

The seed is printed with the counts (`pytest -s`); `CHAOS_SEED=<n>` repeats a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.i18n import Translator
from tests.conftest import KIE_KEY, TOKEN, free_port
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie, FakeTask
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_server import ApiCall
from tests.reliability import Service, eventually, read_rows, service_env

Json = dict[str, Any]

SEED_VARIABLE = "CHAOS_SEED"
HMAC_KEY = "chaos-hmac-key"
PHASES = ("intake", "submission", "flood", "delivery")
WAVE = 8  # photo updates per cycle
FINAL_WAVE = 4  # sent to the last run, which is not killed
FIRST_USER = 70_000
HELD = 2  # the first tasks created finish only once their edit ended
FLOOD_RETRY_AFTER = 2  # seconds: twice DELIVERY_LEASE
ENDED = ("delivered", "failed", "expired")
# A message sent again was answered by Telegram at most this long before its sender died
# (one Bot API answer and one commit, on a loaded machine).
WINDOW = 3.0
# Sends Telegram answers late in a delivery phase (the others are answered at once).
SLOW_SENDS = 4
# A bound on those repeats: a few sends in flight at each of five kills.
MAX_REPEATS = 2 * WAVE

TIMING = {
    # One-second leases, renewed five times a second: a dead process's work is taken over
    # about a second after the restart.
    "SUBMIT_LEASE": "1",
    "DELIVERY_LEASE": "1",
    "NOTIFY_LEASE": "1",
    "POLL_LEASE": "1",
    "LEASE_RENEW_INTERVAL": "0.2",
    "UPDATE_LEASE": "1",
    "KIE_RATE_LIMIT": "4/1",  # a wave waits for the rate limiter
    "PROVIDER_BACKOFF_BASE": "0.5",  # a refused create request waits about that long
    "CALLBACK_GRACE": "1.5",
    "TASK_TIMEOUT": "12",
}


@pytest.fixture
async def kie() -> AsyncIterator[FakeKie]:
    """Callbacks retried twice over about a second: those sent while the service is down
    are lost (only the sweeper's status queries find those tasks)."""
    fake = FakeKie(
        KIE_KEY,
        hmac_key=HMAC_KEY,
        credits=10_000.0,
        fail_record_code=501,  # a failed task's recordInfo as its callback (documented)
        callback_backoff=(0.3, 0.6),
        callback_retries=2,
    )
    await fake.start()
    yield fake
    await fake.stop()


class Webhook:
    """Telegram's side of the webhook: an update is sent until it is answered 200; one
    answered 200 is never sent again."""

    def __init__(self, tg: FakeTelegram) -> None:
        self.tg = tg
        self.unacked: dict[int, Json] = {}
        self.acked: list[int] = []
        self._gate = asyncio.Semaphore(8)

    async def send(self, updates: list[Json]) -> None:
        for update in updates:
            self.unacked.setdefault(update["update_id"], update)
        await asyncio.gather(*(self._send(update) for update in updates))

    async def _send(self, update: Json) -> None:
        async with self._gate:
            try:
                status = await self.tg.post_webhook(update)
            except (aiohttp.ClientError, TimeoutError):
                return  # the process died: Telegram tries again later
        if status == 200 and self.unacked.pop(update["update_id"], None) is not None:
            self.acked.append(update["update_id"])


class Flood:
    """Telegram's flood control, armed for a few seconds from the first send it refuses."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.began: float | None = None

    def arm(self, seconds: float) -> None:
        self.seconds, self.began = seconds, None

    def __call__(self, params: Json) -> bool:
        if self.seconds <= 0:
            return False
        now = time.monotonic()
        if self.began is None:
            self.began = now
        if now < self.began + self.seconds:
            return True
        self.seconds = 0.0
        return False


@dataclass
class Run:
    """One life of the process: when it started and died, and the edits' rows at death."""

    phase: str
    started: float
    died: float | None = None
    rows: dict[int, Json] = field(default_factory=dict)


class Chaos:
    def __init__(self, tg: FakeTelegram, kie: FakeKie, tmp_path: Path, rng: random.Random) -> None:
        self.tg = tg
        self.kie = kie
        self.rng = rng
        data_dir = tmp_path / "data"
        env = service_env(tg, kie, data_dir, free_port()) | TIMING
        self.service = Service(env | {"KIE_WEBHOOK_HMAC_KEY": HMAC_KEY}, tmp_path)
        self.db_url = f"sqlite+aiosqlite:///{(data_dir / 'bot.sqlite3').resolve()}"
        self.webhook = Webhook(tg)
        self.flood = Flood()
        self.updates: list[Json] = []
        self.runs: list[Run] = []
        self.refused_creates = 0
        tg.fail(
            "sendPhoto",
            429,
            f"Too Many Requests: retry after {FLOOD_RETRY_AFTER}",
            times=10**9,
            retry_after=FLOOD_RETRY_AFTER,
            when=self.flood,
        )

    # ------------------------------------------------------------------------ the process

    async def start(self, phase: str) -> None:
        self.runs.append(Run(phase, time.monotonic()))
        await self.service.start(self.tg, within=60)

    async def kill(self) -> None:
        await self.service.kill()
        run = self.runs[-1]
        run.died = time.monotonic()
        run.rows = {row["id"]: row for row in await read_rows(self.db_url)}

    def run_of(self, call: ApiCall) -> Run:
        """The process that sent `call`: the last one started before Telegram received it
        (a process is dead before the next one starts)."""
        return [run for run in self.runs if run.started <= call.received][-1]

    # ---------------------------------------------------------------------------- traffic

    def new_updates(self, count: int) -> list[Json]:
        batch = []
        for _ in range(count):
            n = len(self.updates)
            user = FIRST_USER + n
            update = self.tg.photo_update(
                user,
                self.tg.user(user),
                make_jpeg(64, 48, (n * 37 % 255, 90, 160)),
                caption=f"edit number {n}",
            )
            self.updates.append(update)
            batch.append(update)
        return batch

    def script_tasks(self, count: int) -> None:
        """What each provider task will do, in the order they are created."""
        for n in range(count):
            roll = self.rng.random()
            if n < HELD:
                self.kie.next_outcome(hold=True, callbacks=2)
            elif roll < 0.15:
                # Failed; with no callback, the status query (a 501 answer) must see it.
                failure = ("500", "Internal server error")
                self.kie.next_outcome(failure, callbacks=self.rng.choice((0, 2)))
            elif roll < 0.35:
                self.kie.next_outcome(callbacks=0)  # lost: only a status query finds it
            elif roll < 0.55:
                self.kie.next_outcome(callbacks=1)
            else:
                gap = self.rng.choice((0.0, 0.3))
                self.kie.next_outcome(callbacks=3, callback_gap=gap)  # duplicated

    def creates(self) -> int:
        return sum(1 for _, path in self.kie.requests if path.endswith("/createTask"))

    # ----------------------------------------------------------------------------- phases

    async def cycle(self, phase: str) -> None:
        await self.start(phase)
        updates = [*self.webhook.unacked.values(), *self.new_updates(WAVE)]
        since = time.monotonic()
        sending = asyncio.ensure_future(self._arm_and_send(phase, updates))
        try:
            await self._until_the_moment(phase, since, len(updates))
            await self.kill()
        finally:
            await sending
            self.kie.slow_answers("/createTask", 0)
            self.tg.delay("sendPhoto", 0)

    async def _arm_and_send(self, phase: str, updates: list[Json]) -> None:
        if phase == "submission":
            self.kie.slow_answers("/createTask", 0.6)  # the task exists before its id is out
            refusals = self.rng.randint(0, 2)
            if refusals:
                self.refused_creates += refusals
                self.kie.fail_next("/createTask", 429, http_status=True, times=refusals)
        elif phase == "flood":
            self.flood.arm(self.rng.uniform(2.5, 4.0))
        elif phase == "delivery":
            self.tg.delay("sendPhoto", 0.6, times=SLOW_SENDS)
        await self.webhook.send(updates)

    async def _until_the_moment(self, phase: str, since: float, count: int) -> None:
        """Wait for the phase to be under way, then a random while."""
        rng = self.rng
        if phase == "intake":
            acked = len(self.webhook.acked)
            enough = rng.randint(1, count - 1)
            await eventually(
                lambda: len(self.webhook.acked) - acked >= enough, within=30, what="acks"
            )
            pause = rng.uniform(0.0, 0.05)
        elif phase == "submission":
            creates = self.creates()
            await eventually(lambda: self.creates() > creates, within=30, what="a create")
            pause = rng.uniform(0.0, 0.8)
        elif phase == "flood":

            def refused() -> bool:
                calls = self.tg.calls_of("sendPhoto")
                return any(c.status == 429 and c.received >= since for c in calls)

            await eventually(refused, within=30, what="a flood wait")
            pause = rng.uniform(0.0, FLOOD_RETRY_AFTER)
        else:
            await eventually(self._delivering, within=30, what="a delivery")
            pause = rng.uniform(0.0, 0.8)
        await asyncio.sleep(pause)

    async def _delivering(self) -> bool:
        """A result is being sent (its edit `succeeded`, under a delivery lease)."""
        rows = await read_rows(self.db_url)
        now = time.time()
        return any(row["state"] == "succeeded" and (row["lease_until"] or 0) > now for row in rows)

    async def finish(self) -> list[Json]:
        """The last run: nothing killed; wait until every edit ended and was told."""
        await self.start("final")
        await self.webhook.send([*self.webhook.unacked.values(), *self.new_updates(FINAL_WAVE)])
        assert not self.webhook.unacked
        rows: list[Json] = []

        async def settled() -> bool:
            nonlocal rows
            rows = await read_rows(self.db_url)
            state = {row["id"]: row["state"] for row in rows}
            for task in self._held():
                if state.get(_edit_of(task)) in ENDED:
                    self.kie.release(task.task_id)  # it finishes after its edit ended
            return (
                len(rows) == len(self.updates)
                and all(
                    row["state"] in ENDED
                    and (row["state"] == "delivered" or row["notified_at"] is not None)
                    for row in rows
                )
                and not self.kie._background  # every callback made or given up
            )

        await eventually(settled, within=90, what="every edit to end")
        return rows

    def _held(self) -> list[FakeTask]:
        return [t for t in self.kie.tasks.values() if t.outcome.hold and not t.released.is_set()]


def _edit_of(task: FakeTask) -> int:
    assert task.callback_url is not None
    return int(task.callback_url.split("?")[0].rsplit("/", 1)[1])


def _to(chat_id: int, calls: list[ApiCall]) -> list[ApiCall]:
    """The calls Telegram carried out in one chat, in the order it received them."""
    chat = str(chat_id)
    mine = [c for c in calls if c.ok and str(c.params.get("chat_id")) == chat]
    return sorted(mine, key=lambda c: c.received)


def _story(chaos: Chaos, row: Json) -> str:
    """What happened to one edit: its row, every call to its chat with the process that
    made it, and the row at each death (for failure messages)."""
    chat = str(row["chat_id"])
    lines = [f"edit {row['id']}: {row['state']} {row['error_code']} task {row['task_id']}"]
    for call in sorted(chaos.tg.calls, key=lambda c: c.received):
        if str(call.params.get("chat_id")) == chat:
            run = chaos.run_of(call)
            text = str(call.params.get("text", ""))[:40]
            lines.append(
                f"  run {chaos.runs.index(run) + 1} ({run.phase}) {call.method} {text!r} "
                f"-> {call.status}, {call.at - (run.died or call.at):+.2f}s from its death"
            )
    for n, run in enumerate(chaos.runs[:-1], start=1):
        dead = run.rows.get(row["id"], {})
        lines.append(f"  run {n} killed: {dead.get('state')}, notified {dead.get('notified_at')}")
    return "\n".join(lines)


def _repeats(chaos: Chaos, row: Json, calls: list[ApiCall], recorded: str) -> int:
    """How many of `calls` (one message, sent again) repeat the first; each repeat must be
    the documented window: the earlier call was made by a process that was killed before
    the database recorded it (the edit's `recorded` column still unset at its death), and
    Telegram answered it at most WINDOW before that death. Each process sends once."""
    earlier = [chaos.run_of(call) for call in calls[:-1]]
    for call, run in zip(calls, earlier, strict=False):
        assert run.died is not None, _story(chaos, row)  # the last run is never killed
        at_death = run.rows.get(row["id"], {})
        assert not _is_recorded(at_death, recorded), _story(chaos, row)
        assert call.at >= run.died - WINDOW, _story(chaos, row)
    assert len({id(run) for run in earlier}) == len(earlier), _story(chaos, row)
    return len(earlier)


def _status_messages_left(chaos: Chaos, rows: list[Json], working: str) -> int:
    """How many "Editing your photo…" messages were neither removed nor rewritten. Each must
    come from a process killed while that edit was being prepared: its id is recorded
    with the photos stored (or before a wait for the rate limiter), not earlier."""
    tg = chaos.tg
    touched = {
        (str(c.params["chat_id"]), c.params["message_id"])
        for c in tg.calls_of("deleteMessage") + tg.calls_of("editMessageText")
    }
    edit_in = {str(row["chat_id"]): row for row in rows}
    left = 0
    for call in tg.calls_of("sendMessage"):
        chat = str(call.params["chat_id"])
        if not call.ok or call.params.get("text") != working:
            continue
        if (chat, call.result["message_id"]) in touched:
            continue
        left += 1
        run, row = chaos.run_of(call), edit_in[chat]
        at_death = run.rows.get(row["id"], {})
        assert run.died is not None, _story(chaos, row)
        assert at_death.get("state") == "queued", _story(chaos, row)
        assert at_death.get("status_message_id") is None, _story(chaos, row)
    return left


def _says_progress(tr: Callable[..., str], text: str) -> bool:
    """A rewrite of the status message saying where the edit is (`bot.status_messages`)."""
    head = text.split("\n", 1)[0]
    patterns = [
        tr("en", "status.sent"),
        tr("en", "status.running", percent="§"),
        tr("en", "status.busy", time="§"),
    ]
    return any(re.fullmatch(re.escape(p).replace("§", ".+"), head) for p in patterns)


def _is_recorded(row: Json, recorded: str) -> bool:
    if recorded == "delivered":
        return row.get("state") == "delivered"
    return row.get(recorded) is not None


async def test_random_sigkills_deliver_each_edit_once_or_fail_it_with_a_message(
    tg: FakeTelegram, kie: FakeKie, tmp_path: Path
) -> None:
    seed = int(os.environ.get(SEED_VARIABLE) or random.randrange(2**32))
    print(f"chaos seed {seed} (repeat with {SEED_VARIABLE}={seed})")
    rng = random.Random(seed)
    chaos = Chaos(tg, kie, tmp_path, rng)
    phases = [*rng.sample(PHASES, len(PHASES)), rng.choice(PHASES)]
    total = WAVE * len(phases) + FINAL_WAVE
    chaos.script_tasks(total)
    started = time.monotonic()
    try:
        for phase in phases:
            await chaos.cycle(phase)
        rows = await chaos.finish()
    finally:
        await chaos.service.close()

    tr = Translator().tr
    working = tr("en", "edit.queued")
    uncertain = {tr("en", "error.submit_interrupted"), tr("en", "error.submit_uncertain")}
    report = [f"seed {seed}: {time.monotonic() - started:.0f}s"]
    for run in chaos.runs[:-1]:
        at_death = Counter(row["state"] for row in run.rows.values())
        report.append(f"killed in {run.phase}: {dict(sorted(at_death.items()))}")

    # One edit per photo update, and never two provider tasks for one edit.
    messages = [tg.message_of(update) for update in chaos.updates]
    assert sorted((row["chat_id"], row["message_id"]) for row in rows) == sorted(
        (m["chat"]["id"], m["message_id"]) for m in messages
    )
    tasks_of = Counter(_edit_of(task) for task in kie.tasks.values())
    assert max(tasks_of.values()) == 1, report
    assert chaos.creates() == len(kie.tasks) + chaos.refused_creates, report

    results_again = notices_again = 0
    texts = tg.calls_of("sendMessage") + tg.calls_of("editMessageText")
    for row in rows:
        results = _to(row["chat_id"], tg.calls_of("sendPhoto"))
        said = _to(row["chat_id"], texts)
        # The status message's own rewrites (where the edit is, its place in line) are
        # neither notices nor repeats of them: a later run may well say "sent" once the
        # task is out.
        said = [call for call in said if not _says_progress(tr, call.params.get("text", ""))]
        status = [call for call in said if str(call.params.get("text")).startswith(working)]
        notices = [call for call in said if call not in status]
        assert sum(call.method == "sendMessage" for call in status) <= 1, _story(chaos, row)
        if row["state"] == "delivered":
            assert results, _story(chaos, row)
            task = kie.tasks[row["task_id"]]
            assert _edit_of(task) == row["id"]
            assert results[-1].files["photo"] == task.results[0]  # the user's own result
            results_again += _repeats(chaos, row, results, "delivered")
            # Told the submission was cut off (a kill, or a create request answered late),
            # then the task's callback delivered it after all.
            assert all(call.params["text"] in uncertain for call in notices), _story(chaos, row)
            if row["notified_at"] is not None:
                assert notices, _story(chaos, row)
            if notices:
                notices_again += _repeats(chaos, row, notices, "notified_at")
        else:
            assert row["state"] in ("failed", "expired"), _story(chaos, row)
            assert results == [], _story(chaos, row)
            assert notices, _story(chaos, row)
            notices_again += _repeats(chaos, row, notices, "notified_at")

    # Counted from Telegram's side: every result it accepted from a process that died
    # before recording the delivery was sent again (at least once), and only those were.
    edit_in = {str(row["chat_id"]): row["id"] for row in rows}
    unrecorded = sum(
        1
        for call in tg.calls_of("sendPhoto")
        if call.ok
        and (run := chaos.run_of(call)).died is not None
        and run.rows.get(edit_in[str(call.params["chat_id"])], {}).get("state") != "delivered"
    )
    assert results_again == unrecorded, report
    left = _status_messages_left(chaos, rows, working)
    ended = Counter(row["state"] for row in rows)
    codes = Counter(row["error_code"] for row in rows if row["state"] != "delivered")
    report.append(f"ended {dict(ended)}, failures {dict(codes)}")
    report.append(
        f"sent again in the documented window: {results_again} results, "
        f"{notices_again} failure notices; 'Editing your photo…' left behind: {left}"
    )
    print("\n".join(report))
    assert results_again + notices_again <= MAX_REPEATS, report
    logs = chaos.service.stderr()
    for secret in (TOKEN, TOKEN.split(":")[1], KIE_KEY, HMAC_KEY):
        assert secret not in logs
