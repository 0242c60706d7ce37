"""Property-based fuzzing (hypothesis) of the routes anyone on the internet can reach.

The real bot (with a KIE webhook HMAC key) runs with the fakes on an event loop in a
background thread; every example is one real HTTP request to it. Properties:

* /callbacks/...: no input ever produces a 5xx; without the edit's token nothing changes;
  with it (even correctly signed), a refused (4xx) callback changes nothing either.
* /files/...: no input produces a 5xx; only the exact signed URL serves the file.

Strategies lean towards almost-valid requests (the real key, token, task id or signature
with one part wrong), where a parser is most likely to trip.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from bot.app import create_app, start_serving
from bot.config import load_settings
from bot.keys import SERVICES
from bot.providers.kie import signature
from bot.web import make_runner
from domain import steps
from domain.edit import Edit, EditState, NewEdit
from storage.blobs import LocalBlobStore
from storage.db import Database
from tests.conftest import CHAT_ID, KIE_KEY, TOKEN, USER_ID, free_port
from tests.fakes.images import make_jpeg
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram

T = TypeVar("T")
HMAC_KEY = "fuzz-hmac-key"

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Harness:
    """The bot and its fakes on a private event loop; `run` executes a coroutine there."""

    loop: asyncio.AbstractEventLoop
    url: str = ""
    edit: Edit | None = None
    db: Database | None = None
    file_url: str = ""
    file_bytes: bytes = b""
    resources: dict[str, Any] = field(default_factory=dict)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def victim(self) -> Edit:
        assert self.edit is not None
        return self.edit

    def row(self, edit_id: int | None = None) -> Edit:
        """An edit's row (the victim's by default) as the bot's database has it now."""
        assert self.db is not None
        edit = self.run(self.db.edits.get(self.victim.id if edit_id is None else edit_id))
        assert edit is not None
        return edit

    def fresh_edit(self) -> Edit:
        """A new edit waiting for its provider task, made directly in the database."""
        db = self.db
        assert db is not None

        async def make() -> Edit:
            new = await db.edits.create(
                NewEdit(
                    dedupe_key=f"fuzz:{uuid.uuid4().hex}",
                    chat_id=CHAT_ID,
                    chat_type="private",
                    user_id=USER_ID,
                    message_id=1,
                    lang="en",
                    provider="kie",
                    model="qwen/image-edit",
                    prompt="x",
                    callback_token=secrets.token_urlsafe(24),
                    inputs=[],
                    state=EditState.SUBMITTING,
                )
            )
            assert new is not None
            now = time.time()
            edit = await db.edits.transition(
                new.id,
                steps.RECORD_TASK,
                task_id=uuid.uuid4().hex,
                submitted_at=now,
                next_check_at=now + 3600,
            )
            assert edit is not None
            return edit

        return self.run(make())

    def send(
        self, method: str, url: URL, *, data: bytes | None = None, headers: Any = None
    ) -> tuple[int, bytes]:
        async def go() -> tuple[int, bytes]:
            session: aiohttp.ClientSession = self.resources["session"]
            async with session.request(method, url, data=data, headers=headers) as resp:
                return resp.status, await resp.read()

        return self.run(go())


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-loop", daemon=True)
    thread.start()
    h = Harness(loop)

    async def start() -> None:
        tg, kie = FakeTelegram(TOKEN), FakeKie(KIE_KEY, hmac_key=HMAC_KEY)
        await tg.start()
        await kie.start()
        h.resources.update(tg=tg, kie=kie)
        port = free_port()
        config = load_settings(
            _env_file=None,
            BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=tg.url,
            KIE_API_KEY=KIE_KEY,
            KIE_API_URL=kie.url,
            KIE_UPLOAD_URL=kie.url,
            KIE_WEBHOOK_HMAC_KEY=HMAC_KEY,
            DATA_DIR=str(tmp_path_factory.mktemp("fuzz") / "data"),
            HOST="127.0.0.1",
            PORT=port,
            PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
            CALLBACK_GRACE=3600,
            TELEGRAM_MAX_RATE=1000,
            TELEGRAM_CHAT_RATE="1000/1",
            TELEGRAM_GROUP_RATE="1000/1",
            RESULT_ALLOW_PRIVATE=True,
        )
        app = create_app(config)
        runner = make_runner(app, handle_signals=False)
        await start_serving(runner, "127.0.0.1", port)
        h.resources["runner"] = runner
        h.resources["session"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        h.url = f"http://127.0.0.1:{port}"
        await tg.wait_for("setWebhook")
        # The victim: an edit submitted to the provider, whose task never finishes.
        kie.next_outcome(hold=True, callbacks=0)
        update = tg.photo_update(CHAT_ID, tg.user(USER_ID), make_jpeg(64, 64), caption="x")
        assert await tg.post_webhook(update) == 200
        h.db = app[SERVICES].db
        deadline = time.monotonic() + 10
        while h.edit is None and time.monotonic() < deadline:
            edit = await h.db.edits.get(1)
            if edit is not None and edit.state is EditState.SUBMITTED:
                h.edit = edit
            await asyncio.sleep(0.02)
        assert h.edit is not None, "the victim edit was never submitted"
        store = app[SERVICES].blobs
        assert isinstance(store, LocalBlobStore)
        h.file_bytes = make_jpeg(32, 32)
        h.file_url = (await store.put(h.file_bytes, extension="jpg")).url

    async def stop() -> None:
        kie: FakeKie = h.resources["kie"]
        kie.release_all()
        await h.resources["session"].close()
        await h.resources["runner"].cleanup()
        await kie.stop()
        await h.resources["tg"].stop()

    h.run(start())
    try:
        yield h
    finally:
        h.run(stop())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def _url(base: str, *parts: str, query: dict[str, str]) -> URL:
    path = "/".join(quote(part, safe="") for part in parts)
    qs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())
    return URL(f"{base}/{path}" + (f"?{qs}" if qs else ""), encoded=True)


# Strategies -----------------------------------------------------------------------------

REAL = "<real>"  # placeholder for the victim's real value, filled in by the test

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
task_ids = st.just(REAL) | st.text(max_size=40) | json_values
# Shapes close to a real callback, so the parser gets past its first checks.
callback_like = st.fixed_dictionaries(
    {
        "code": st.sampled_from([200, 501, 500, 0, "200", None]) | json_values,
        "msg": st.text(max_size=20) | json_values,
        "data": st.fixed_dictionaries(
            {
                "taskId": task_ids,
                "state": st.sampled_from(["success", "fail", "generating", "waiting", "SUCCESS"])
                | st.text(max_size=10)
                | json_values,
                "resultJson": st.sampled_from(
                    [
                        '{"resultUrls": ["http://127.0.0.1:9/x.png"]}',
                        '{"resultUrls": ["file:///etc/passwd"]}',
                        '{"resultUrls": []}',
                        "{",
                        "",
                    ]
                )
                | st.text(max_size=60)
                | json_values,
                "failCode": json_values,
                "failMsg": json_values,
                "consumeCredits": json_values,
            },
            optional={"extra": json_values},
        )
        | json_values,
    }
)
raw_bodies = st.binary(max_size=300) | st.sampled_from(
    [b"", b"{", b"[" * 5000, b'{"a": NaN}', b'"\\udc00"', b"\xef\xbb\xbf{}", b"1e999999"]
)
header_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\r\n"), max_size=40
)
timestamps = st.just("now") | st.integers(-(2**40), 2**40).map(str) | header_text
segments = st.text(max_size=24).filter(lambda s: s not in (".", ".."))


@st.composite
def signed_callbacks(draw: st.DrawFn, task_id: str) -> tuple[bytes, dict[str, str]]:
    """A body plus KIE signature headers: valid, mismatched or garbage."""
    if draw(st.booleans()):
        body_value: Any = draw(callback_like)
        if isinstance(body_value.get("data"), dict) and body_value["data"].get("taskId") == REAL:
            body_value["data"]["taskId"] = task_id
        body = json.dumps(body_value).encode()
        data = body_value.get("data")
        signed_id = str(data.get("taskId")) if isinstance(data, dict) else task_id
    else:
        body, signed_id = draw(raw_bodies), task_id
    stamp = draw(timestamps)
    if stamp == "now":
        stamp = str(int(time.time()))
    headers: dict[str, str] = {"X-Webhook-Timestamp": stamp}
    kind = draw(st.sampled_from(["valid", "garbage", "none", "other-id"]))
    if kind == "valid" and stamp.isascii():
        headers["X-Webhook-Signature"] = signature(HMAC_KEY, signed_id, stamp)
    elif kind == "other-id" and stamp.isascii():
        headers["X-Webhook-Signature"] = signature(HMAC_KEY, signed_id + "x", stamp)
    elif kind == "garbage":
        headers["X-Webhook-Signature"] = draw(header_text)
    extra = draw(st.dictionaries(st.from_regex(r"\AX-[A-Za-z0-9-]{1,12}\Z"), header_text))
    return body, {**extra, **headers}


# Properties --------------------------------------------------------------------------------


@FUZZ
@given(
    provider=st.sampled_from(["kie", "odkkk", "kie-4o"]) | segments,
    edit_id=st.sampled_from([REAL, "2", "0", "-1", "01", "1.0", "１"]) | segments,
    token=st.sampled_from(["", "prefix", "suffix", "upper"]) | st.text(max_size=40),
    data=st.data(),
)
def test_callback_route_without_the_token_never_fails_or_changes_anything(
    harness: Harness, provider: str, edit_id: str, token: str, data: st.DataObject
) -> None:
    victim = harness.victim
    real = victim.callback_token
    token = {"prefix": real[:-1], "suffix": real + "x", "upper": real.upper()}.get(token, token)
    if token == real:
        token += "x"
    edit_id = str(victim.id) if edit_id == REAL else edit_id
    body, headers = data.draw(signed_callbacks(victim.task_id or ""))
    before = harness.row()
    url = _url(harness.url, "callbacks", provider, edit_id, query={"token": token})
    status, _ = harness.send("POST", url, data=body, headers=headers)
    assert 400 <= status < 500, (status, url, body[:80])
    assert harness.row() == before


@FUZZ
@given(data=st.data())
def test_callback_route_with_the_token_never_fails(harness: Harness, data: st.DataObject) -> None:
    edit = harness.fresh_edit()  # an accepted callback starts background work on its edit
    body, headers = data.draw(signed_callbacks(edit.task_id or ""))
    url = _url(harness.url, "callbacks", "kie", str(edit.id), query={"token": edit.callback_token})
    status, _ = harness.send("POST", url, data=body, headers=headers)
    assert status < 500, (status, body[:80], headers)
    if status >= 400:
        assert harness.row(edit.id) == edit


@st.composite
def file_urls(draw: st.DrawFn, real: URL) -> tuple[str, str, str]:
    """(key, exp, sig): mostly the real URL with one or two parts replaced."""
    key, exp, sig = real.path.rsplit("/", 1)[-1], real.query["exp"], real.query["sig"]
    replace = draw(st.sets(st.sampled_from(["key", "exp", "sig"]), max_size=3))
    if "key" in replace:
        key = draw(st.sampled_from([key[:-1], key.upper(), key + "/", "../" + key]) | segments)
    if "exp" in replace:
        exp = draw(
            st.sampled_from(["", "0", "9" * 30, "²", "١٢٣", "-1", " " + exp, exp + ".0"])
            | st.text(max_size=20)
        )
    if "sig" in replace:
        sig = draw(st.sampled_from(["", sig[:-1], sig + "=", "é" * len(sig)]) | header_text)
    return key, exp, sig


@FUZZ
@given(data=st.data(), method=st.sampled_from(["GET", "HEAD", "POST"]))
def test_files_route_serves_only_the_exact_signed_url(
    harness: Harness, data: st.DataObject, method: str
) -> None:
    real = URL(harness.file_url)
    key, exp, sig = data.draw(file_urls(real))
    url = _url(harness.url, "files", key, query={"exp": exp, "sig": sig})
    status, body = harness.send(method, url)
    assert status < 500, (status, url)
    exact = (key, exp, sig) == (real.path.rsplit("/", 1)[-1], real.query["exp"], real.query["sig"])
    if status == 200:
        assert exact and method in ("GET", "HEAD")
        assert method == "HEAD" or body == harness.file_bytes
    else:
        assert not (exact and method == "GET"), f"the signed URL itself was refused: {status}"


def test_files_route_known_edge_cases(harness: Harness) -> None:
    """Inputs that once produced 500s, checked every run (the fuzzer finds them only by luck)."""
    real = URL(harness.file_url)
    key, exp, sig = real.path.rsplit("/", 1)[-1], real.query["exp"], real.query["sig"]
    for k, e, s in [
        (key, "²", sig),  # str.isdigit() is true, int() refuses it
        (key, "١٢٣٤٥٦٧٨٩٠", sig),  # Arabic-Indic digits
        (key, exp, "é" * len(sig)),  # compare_digest refuses non-ASCII str
        (key, "9" * 40, sig),
        (key, exp, ""),
    ]:
        status, _ = harness.send("GET", _url(harness.url, "files", k, query={"exp": e, "sig": s}))
        assert status == 404, (e, s)
    assert harness.send("GET", real)[0] == 200
