"""Shared machinery of the fake provider servers (FakeKie, FakeOdkkk).

A fake is a real aiohttp server on 127.0.0.1 with a random port. It records every
API call, really fetches input URLs (after `url_rewrites`), runs each task in a
background coroutine and POSTs callbacks with retries.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import aiohttp
from aiohttp import web
from PIL import Image, ImageOps

JSON = dict[str, Any]
MB = 1024 * 1024

# Phase names every fake runs through; each API maps them to its own words.
PHASES = ("waiting", "queuing", "generating", "success", "fail")
TERMINAL = ("success", "fail")

CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}


def now_ms() -> int:
    return int(time.time() * 1000)


def compact(obj: Any) -> str:
    """JSON text without spaces, as the providers write their JSON-string fields."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class InputError(Exception):
    """An input URL could not be used; `kind` is "download" (unreachable) or "content"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass
class Outcome:
    """What the next created task will do (see `FakeServer.next_outcome`)."""

    fail: tuple[str, str] | None = None
    delay: float | None = None
    callbacks: int = 1
    hold: bool = False
    callback_gap: float = 0.0


@dataclass
class FakeTask:
    """One task as the fake sees it; `state` uses the API's own state words."""

    task_id: str
    api: str  # "jobs" | "playground" | "gpt4o" | "odkkk"
    model: str
    request: JSON
    callback_url: str | None
    input_urls: list[str]
    outcome: Outcome
    mask_url: str | None = None
    state: str = "waiting"
    phase: str = "waiting"
    history: list[str] = field(default_factory=list)
    inputs: list[bytes] = field(default_factory=list)
    mask: bytes | None = None
    results: list[bytes] = field(default_factory=list)
    result_urls: list[str] = field(default_factory=list)
    fail_code: str | None = None
    fail_msg: str | None = None
    create_time: int = field(default_factory=now_ms)
    update_time: int = field(default_factory=now_ms)
    complete_time: int | None = None
    credits_consumed: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    released: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL

    @property
    def cost_time(self) -> int | None:
        """Milliseconds from creation to completion, None while running."""
        return None if self.complete_time is None else self.complete_time - self.create_time


@dataclass
class CallbackAttempt:
    """One POST of a callback: `status` is None when the connection failed."""

    task_id: str
    url: str
    sent_url: str
    body: Any
    headers: dict[str, str]
    attempt: int
    status: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Injection:
    path_suffix: str
    code: int
    msg: str | None
    http_status: bool
    remaining: int


def inspect_image(data: bytes, formats: Sequence[str] | None) -> tuple[str, tuple[int, int]]:
    """Pillow format and size of `data`; InputError("content") unless an allowed image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt, size = str(img.format), img.size
            img.verify()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError("content", f"not an image ({exc.__class__.__name__})") from exc
    if formats is not None and fmt not in formats:
        raise InputError("content", f"unsupported image type {fmt}")
    return fmt, size


def render_results(
    inputs: Sequence[bytes], count: int, ext: str, blank_size: tuple[int, int] = (64, 64)
) -> list[bytes]:
    """Fake "edits": variants of the first input (inverted, grayscale, mirrored…)."""
    if inputs:
        with Image.open(io.BytesIO(inputs[0])) as src:
            base = ImageOps.exif_transpose(src).convert("RGB")
    else:
        base = Image.new("RGB", blank_size, (30, 120, 200))
    fmt = "JPEG" if ext in ("jpg", "jpeg") else ext.upper()
    out: list[bytes] = []
    for n in range(count):
        img = ImageOps.invert(base) if n % 2 == 0 else ImageOps.grayscale(base).convert("RGB")
        if n >= 2:
            img = ImageOps.mirror(img)
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


class FakeServer:
    """Base of the fakes: lifecycle, request log, injections, fetching, tasks, callbacks."""

    #: path prefixes served without auth and not logged in `requests` (CDN-like)
    public_prefixes: tuple[str, ...] = ("/results/",)
    #: paths that create tasks (counted by `rate_limit`)
    generation_paths: tuple[str, ...] = ()
    callback_timeout: float = 15.0
    fetch_timeout: float = 30.0

    def __init__(
        self,
        api_key: str,
        *,
        task_delay: float = 0.05,
        callback_backoff: Sequence[float] = (0.05, 0.1, 0.2),
        callback_retries: int = 3,
        rate_limit: tuple[int, float] | None = None,
    ) -> None:
        self.api_key = api_key
        self.task_delay = task_delay
        self.callback_backoff: Sequence[float] = tuple(callback_backoff)
        self.callback_retries = callback_retries
        self.rate_limit = rate_limit
        self.url_rewrites: dict[str, str] = {}
        self.tasks: dict[str, FakeTask] = {}
        self.requests: list[tuple[str, str]] = []
        self.requested_at: list[float] = []  # when each of `requests` arrived (monotonic)
        self.callbacks: list[CallbackAttempt] = []
        self.fetched_urls: list[str] = []
        self._outcomes: deque[Outcome] = deque()
        self._injections: list[Injection] = []
        self._slow: dict[str, float] = {}
        self._rate_stamps: deque[float] = deque()
        self._results: dict[tuple[str, str], tuple[bytes, str]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._url: str | None = None

    # ----------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:41234" (only after `start`)."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._url

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=256 * MB)
        app.router.add_get("/results/{task_id}/{name}", self._handle_result)
        self.add_routes(app)
        self._session = aiohttp.ClientSession()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self._url = f"http://{host}:{port}"

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------- test controls
    def next_outcome(
        self,
        fail: tuple[str, str] | None = None,
        *,
        delay: float | None = None,
        callbacks: int = 1,
        hold: bool = False,
        callback_gap: float = 0.0,
    ) -> None:
        """Script the next created task (FIFO): `fail`=(code, message) makes it fail,
        `delay` overrides `task_delay`, `callbacks` = number of deliveries (0 = none,
        2+ = duplicates, `callback_gap` seconds apart), `hold` parks it in the generating
        phase until `release`."""
        self._outcomes.append(Outcome(fail, delay, callbacks, hold, callback_gap))

    def release(self, task_id: str) -> None:
        """Let a task created with `hold=True` finish."""
        self.tasks[task_id].released.set()

    def release_all(self) -> None:
        for task in self.tasks.values():
            task.released.set()

    def _inject(self, injection: Injection) -> None:
        self._injections.append(injection)

    def slow_answers(self, path_suffix: str, seconds: float) -> None:
        """Hold back the answers of API calls whose path ends with `path_suffix` for
        `seconds` after they were handled (0 stops it). A create request makes its task at
        once, but the task id reaches the client late: a client that dies meanwhile has
        paid for a task it never heard of, as over a slow network."""
        if seconds <= 0:
            self._slow.pop(path_suffix, None)
        else:
            self._slow[path_suffix] = seconds

    def rewrite(self, url: str) -> str:
        """Apply the longest matching `url_rewrites` prefix."""
        best = max((p for p in self.url_rewrites if url.startswith(p)), key=len, default=None)
        return url if best is None else self.url_rewrites[best] + url[len(best) :]

    async def wait_for(
        self, predicate: Callable[[], bool], within: float = 5.0, what: str = "condition"
    ) -> None:
        """Poll `predicate` every 10 ms until true; TimeoutError after `within` s."""
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{type(self).__name__}: timed out waiting for {what}")
            await asyncio.sleep(0.01)

    async def wait_task(self, task_id: str | None = None, within: float = 5.0) -> FakeTask:
        """Wait until the task (default: the last created) is finished; returns it."""
        await self.wait_for(lambda: bool(self.tasks) and task_id in (None, *self.tasks), within)
        tid = task_id or list(self.tasks)[-1]
        await self.wait_for(lambda: self.tasks[tid].finished, within, f"task {tid}")
        return self.tasks[tid]

    async def wait_callbacks(
        self, count: int = 1, within: float = 5.0, *, task_id: str | None = None
    ) -> list[CallbackAttempt]:
        """Wait until at least `count` callback attempts (of `task_id`) were recorded."""

        def matching() -> list[CallbackAttempt]:
            return [c for c in self.callbacks if task_id is None or c.task_id == task_id]

        await self.wait_for(lambda: len(matching()) >= count, within, f"{count} callbacks")
        return matching()

    # -------------------------------------------------------------- HTTP plumbing
    def is_public(self, path: str) -> bool:
        return path.startswith(self.public_prefixes)

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def error_response(
        self, request: web.Request, code: int, msg: str | None, *, http_status: bool | None
    ) -> web.Response:
        """The provider's error answer; `http_status` None means "the fake's default style"."""
        raise NotImplementedError

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if self.is_public(request.path):
            return await handler(request)
        self.requests.append((request.method, request.path))
        self.requested_at.append(time.monotonic())
        for inj in self._injections:
            if inj.remaining > 0 and request.path.endswith(inj.path_suffix):
                inj.remaining -= 1
                return self.error_response(request, inj.code, inj.msg, http_status=inj.http_status)
        if not self.authorized(request):
            return self.error_response(request, 401, None, http_status=None)
        if request.path in self.generation_paths and not self._rate_ok():
            return self.error_response(request, 429, None, http_status=None)
        response = await handler(request)
        hold = max((s for p, s in self._slow.items() if request.path.endswith(p)), default=0.0)
        if hold:
            await asyncio.sleep(hold)
        return response

    def _rate_ok(self) -> bool:
        if self.rate_limit is None:
            return True
        limit, window = self.rate_limit
        now = time.monotonic()
        while self._rate_stamps and self._rate_stamps[0] <= now - window:
            self._rate_stamps.popleft()
        if len(self._rate_stamps) >= limit:
            return False
        self._rate_stamps.append(now)
        return True

    @staticmethod
    async def read_json(request: web.Request) -> JSON | None:
        """The JSON object body, or None when it is not a JSON object."""
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    # ------------------------------------------------------------------ fetching
    async def fetch(self, url: str, *, max_bytes: int, time_limit: float | None = None) -> bytes:
        """GET `url` (after rewrites) like the provider would; InputError on any failure."""
        assert self._session is not None
        target = self.rewrite(url)
        self.fetched_urls.append(target)
        client_timeout = aiohttp.ClientTimeout(total=time_limit or self.fetch_timeout)
        try:
            async with self._session.get(target, timeout=client_timeout) as resp:
                if resp.status != 200:
                    raise InputError("download", f"HTTP {resp.status} from {url}")
                data = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    data += chunk
                    if len(data) > max_bytes:
                        raise InputError("content", f"file larger than {max_bytes // MB} MB")
                return bytes(data)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise InputError("download", f"{exc.__class__.__name__} fetching {url}") from exc

    async def fetch_image(
        self, url: str, *, max_bytes: int, formats: Sequence[str] | None
    ) -> tuple[bytes, tuple[int, int]]:
        data = await self.fetch(url, max_bytes=max_bytes)
        _, size = inspect_image(data, formats)
        return data, size

    # --------------------------------------------------------------------- tasks
    def pop_outcome(self) -> Outcome:
        return self._outcomes.popleft() if self._outcomes else Outcome()

    def state_name(self, task: FakeTask, phase: str) -> str:
        """The API's word for a phase (identity by default)."""
        return phase

    def set_phase(self, task: FakeTask, phase: str) -> None:
        task.phase = phase
        task.state = self.state_name(task, phase)
        task.history.append(task.state)
        task.update_time = now_ms()

    def register(self, task: FakeTask) -> FakeTask:
        """Store a new task and start running it in the background."""
        self.tasks[task.task_id] = task
        self.set_phase(task, "waiting")
        self.spawn(self._run(task))
        return task

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        bg = asyncio.get_running_loop().create_task(coro)
        self._background.add(bg)
        bg.add_done_callback(self._background.discard)

    async def prepare_inputs(self, task: FakeTask) -> tuple[str, str] | None:
        """Fetch inputs into `task.inputs`; return (failCode, failMsg) to fail the task."""
        return None

    def result_spec(self, task: FakeTask) -> tuple[int, str]:
        """(number of results, file extension)."""
        return 1, "png"

    def blank_size(self, task: FakeTask) -> tuple[int, int]:
        """Result size when a task has no input image."""
        return (64, 64)

    def on_success(self, task: FakeTask) -> None:
        """Hook after a task succeeded (billing)."""

    async def send_callbacks(self, task: FakeTask) -> None:
        """Deliver the task's callback (subclasses build the body)."""

    async def _run(self, task: FakeTask) -> None:
        outcome = task.outcome
        delay = self.task_delay if outcome.delay is None else outcome.delay
        try:
            failure = await self.prepare_inputs(task)
            if failure is None:
                self.set_phase(task, "queuing")
                await asyncio.sleep(delay / 2)
                self.set_phase(task, "generating")
                if outcome.hold:
                    await task.released.wait()
                await asyncio.sleep(delay / 2)
                failure = outcome.fail
            if failure is None:
                count, ext = self.result_spec(task)
                try:
                    task.results = await asyncio.to_thread(
                        render_results, task.inputs, count, ext, self.blank_size(task)
                    )
                except (OSError, ValueError, Image.DecompressionBombError) as exc:
                    failure = ("500", f"Internal server error: {exc.__class__.__name__}")
            if failure is None:
                for n, data in enumerate(task.results):
                    name = f"{n}.{ext}"
                    self._results[(task.task_id, name)] = (data, CONTENT_TYPES[ext])
                    task.result_urls.append(f"{self.url}/results/{task.task_id}/{name}")
                self.on_success(task)
                task.complete_time = now_ms()
                self.set_phase(task, "success")
            else:
                task.fail_code, task.fail_msg = failure
                task.complete_time = now_ms()
                self.set_phase(task, "fail")
        finally:
            task.done.set()
        if task.callback_url:
            for n in range(outcome.callbacks):
                if n and outcome.callback_gap:
                    await asyncio.sleep(outcome.callback_gap)
                await self.send_callbacks(task)

    def result_allowed(self, task: FakeTask) -> bool:
        return True

    async def _handle_result(self, request: web.Request) -> web.Response:
        task_id, name = request.match_info["task_id"], request.match_info["name"]
        stored = self._results.get((task_id, name))
        if stored is None:
            return web.Response(status=404, text="not found")
        if not self.result_allowed(self.tasks[task_id]):
            return web.Response(status=403, text="forbidden")
        return web.Response(body=stored[0], content_type=stored[1])

    def result_file(self, task_id: str, name: str) -> tuple[bytes, str] | None:
        return self._results.get((task_id, name))

    # ----------------------------------------------------------------- callbacks
    async def deliver(
        self,
        task_id: str,
        url: str,
        body: Any,
        headers: Callable[[], dict[str, str]] | None = None,
    ) -> bool:
        """POST `body` to `url` (after rewrites), retrying `callback_retries` times with
        `callback_backoff` delays on non-2xx or connection errors; records attempts."""
        assert self._session is not None
        target = self.rewrite(url)
        delays = [0.0, *self.callback_backoff][: self.callback_retries + 1]
        delays += [delays[-1]] * (self.callback_retries + 1 - len(delays))
        data = json.dumps(body, ensure_ascii=False).encode()
        for attempt, pause in enumerate(delays, start=1):
            if pause:
                await asyncio.sleep(pause)
            hdrs = {"Content-Type": "application/json", **(headers() if headers else {})}
            rec = CallbackAttempt(task_id, url, target, body, hdrs, attempt)
            try:
                timeout = aiohttp.ClientTimeout(total=self.callback_timeout)
                async with self._session.post(
                    target, data=data, headers=hdrs, timeout=timeout
                ) as resp:
                    rec.status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                rec.error = f"{exc.__class__.__name__}: {exc}"
            self.callbacks.append(rec)
            if rec.ok:
                return True
        return False
