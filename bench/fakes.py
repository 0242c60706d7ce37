"""The test suite's fakes, instrumented for the benchmark.

`BenchTelegram` and `BenchKie` are the fakes of `tests/fakes` with three changes, all local
to the benchmark process:

* every request the bot makes is timed at the fake (handler entry and exit) and charged to
  the edit it belongs to, so the fakes' own time can be subtracted from a hop;
* the fakes' image work is made cheap (the fake provider returns the input photo as its
  result instead of re-encoding it, the fake Telegram reads only the image header instead
  of decoding it and rendering thumbnails), so the fakes do not eat the CPU the bot needs;
* what a long run would pile up (uploaded files, call logs, task images) is dropped as soon
  as the edit it belongs to is done.

Every edit carries a unique prompt; `Ledger` maps prompts, task ids and Telegram file ids
back to the `Trace` of one edit.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from PIL import Image

import tests.fakes._common as fake_common
from bench.measure import Json, now
from tests.fakes._common import FakeTask, Outcome
from tests.fakes.kie import FakeKie
from tests.fakes.telegram import FakeTelegram
from tests.fakes.telegram_files import FileInfo
from tests.fakes.telegram_server import ApiCall

GATE_PREFIX = "/bench-gate/"
# Bot API calls the bot makes (and waits for) between an update and its createTask.
SUBMIT_PATH_METHODS = frozenset({"getFile", "sendMessage"})


@dataclass(eq=False)
class Trace:
    """What the fakes saw of one edit, as monotonic timestamps in seconds."""

    chat_id: int
    seq: int
    prompt: str
    sent: float = 0.0  # the update was handed to the bot (webhook POST / getUpdates queue)
    created: float | None = None  # createTask reached the fake provider
    task_id: str | None = None
    callback: float | None = None  # the fake provider started POSTing the callback
    delivered: float | None = None  # sendPhoto reached the fake Telegram
    fake_submit: float = 0.0  # fake handler time inside the first hop (getFile, file, reply)
    fake_deliver: float = 0.0  # fake handler time inside the second hop (result download…)
    file_ids: list[str] = field(default_factory=list)
    created_event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    done_event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def charge_submit(self, seconds: float) -> None:
        """Fake handler time inside hop 1 (update received -> createTask)."""
        if self.created is None:
            self.fake_submit += seconds

    def charge_deliver(self, seconds: float) -> None:
        """Fake handler time inside hop 2 (callback received -> sendPhoto)."""
        if self.callback is not None and self.delivered is None:
            self.fake_deliver += seconds


class Ledger:
    """Finds the edit a request at a fake belongs to."""

    def __init__(self) -> None:
        self.by_prompt: dict[str, Trace] = {}
        self.by_task: dict[str, Trace] = {}
        self.by_file: dict[str, Trace] = {}
        self.current: dict[int, Trace] = {}

    def new(self, chat_id: int, seq: int) -> Trace:
        prompt = f"make the sky purple #{chat_id}-{seq}"
        trace = Trace(chat_id, seq, prompt)
        self.by_prompt[prompt] = trace
        self.current[chat_id] = trace
        return trace

    def forget(self, trace: Trace) -> None:
        self.by_prompt.pop(trace.prompt, None)
        if trace.task_id is not None:
            self.by_task.pop(trace.task_id, None)
        for file_id in trace.file_ids:
            self.by_file.pop(file_id, None)
        if self.current.get(trace.chat_id) is trace:
            del self.current[trace.chat_id]


def passthrough_results(
    inputs: Sequence[bytes], count: int, ext: str, blank_size: tuple[int, int] = (64, 64)
) -> list[bytes]:
    """The provider's "edit" in the benchmark: the input photo itself (no re-encoding)."""
    if inputs:
        return [inputs[0]] * count
    buf = io.BytesIO()
    Image.new("RGB", blank_size, (30, 120, 200)).save(buf, format="JPEG")
    return [buf.getvalue()] * count


def install_cheap_rendering() -> None:
    """Make the fake providers return their input as the result (benchmark process only)."""
    fake_common.render_results = passthrough_results


def _image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:  # reads the header only
        width, height = image.size
    return width, height


class BenchTelegram(FakeTelegram):
    """FakeTelegram that times each call, charges it to its edit and keeps memory flat."""

    def __init__(self, token: str, ledger: Ledger) -> None:
        super().__init__(token)
        self.ledger = ledger
        self.method_counts: Counter[str] = Counter()

    def _register_photo(self, data: bytes) -> list[FileInfo]:
        """One PhotoSize from the image header (the real fake decodes and makes thumbnails)."""
        width, height = _image_size(data)
        info = self._register_file(data, kind="photo", suffix=".jpg", width=width, height=height)
        self._photo_groups[info.file_id] = [info]
        return [info]

    def photo_update_for(self, trace: Trace, image: bytes) -> Json:
        """A private-chat photo update whose caption is the trace's prompt."""
        update = self.photo_update(trace.chat_id, trace.chat_id, image, caption=trace.prompt)
        for size in update["message"]["photo"]:
            trace.file_ids.append(size["file_id"])
            self.ledger.by_file[size["file_id"]] = trace
        self._prune_messages(trace.chat_id)
        return update

    def _prune_messages(self, chat_id: int, keep: int = 16) -> None:
        messages = self._messages.get(chat_id)
        if messages and len(messages) > 2 * keep:
            for message_id in sorted(messages)[:-keep]:
                del messages[message_id]

    def _drop_file(self, file_id: str) -> None:
        info = self._files.pop(file_id, None)
        self._photo_groups.pop(file_id, None)
        if info is not None:
            self._files_by_path.pop(info.file_path, None)

    def _trace_of(self, method: str, params: Json) -> Trace | None:
        if method == "getFile":
            return self.ledger.by_file.get(str(params.get("file_id") or ""))
        chat = params.get("chat_id")
        if isinstance(chat, str) and chat.lstrip("-").isdigit():
            chat = int(chat)
        return self.ledger.current.get(chat) if isinstance(chat, int) else None

    async def _handle_api(self, request: web.Request) -> web.Response:
        started = now()
        response = await super()._handle_api(request)
        seconds = now() - started
        if response.status in (401, 404) or not self.calls:
            return response
        # _handle_api appends its call last with no await after it: this one is ours.
        call = self.calls.pop()
        self.method_counts[call.method] += 1
        trace = self._trace_of(call.method, call.params)
        self.observe(call, trace)
        if call.method == "sendPhoto" and call.ok:
            result = call.result if isinstance(call.result, dict) else {}
            for size in result.get("photo") or []:
                self._drop_file(str(size.get("file_id")))
            self._sent_files.clear()
            if trace is not None and trace.delivered is None and trace.created is not None:
                trace.delivered = started
                trace.done_event.set()
        elif trace is not None and call.method in SUBMIT_PATH_METHODS:
            trace.charge_submit(seconds)
        return response

    def observe(self, call: ApiCall, trace: Trace | None) -> None:
        """Hook for subclasses: every answered Bot API call and the edit it belongs to."""

    async def _handle_file(self, request: web.Request) -> web.Response:
        started = now()
        info = self._files_by_path.get(request.match_info.get("file_path", ""))
        response = await super()._handle_file(request)
        seconds = now() - started
        self.downloads.clear()
        self.method_counts["file"] += 1
        trace = self.ledger.by_file.get(info.file_id) if info is not None else None
        if trace is not None:
            trace.charge_submit(seconds)
            for file_id in trace.file_ids:
                self._drop_file(file_id)  # downloaded: nobody asks for it again
        return response


class BenchKie(FakeKie):
    """FakeKie that finishes at once (or holds every task), times each call per edit."""

    def __init__(self, api_key: str, ledger: Ledger) -> None:
        super().__init__(api_key, task_delay=0.0, credits=1e12)
        self.ledger = ledger
        self.hold_all = False
        self.discard_inputs = False
        self.gate = asyncio.Event()
        self.gate_status = 503
        self.gate_waiting = 0
        self.path_counts: Counter[str] = Counter()

    # ----------------------------------------------------------------- controls
    def is_public(self, path: str) -> bool:
        return path.startswith(GATE_PREFIX) or super().is_public(path)

    def pop_outcome(self) -> Outcome:
        if self.hold_all:
            return Outcome(hold=True, callbacks=0)
        return super().pop_outcome()

    def api_calls(self) -> Counter[str]:
        """Provider API calls so far by path (every authenticated request the fake logged)."""
        self.path_counts.update(path for _, path in self.requests)
        self.requests.clear()
        return Counter(self.path_counts)

    def trim(self, trace: Trace) -> None:
        """Drop the images of a finished edit's task."""
        task = self.tasks.get(trace.task_id or "")
        if task is None:
            return
        task.inputs = []
        task.results = []
        for key in [k for k in self._results if k[0] == task.task_id]:
            del self._results[key]
        gone = {unquote(url.split("/files/", 1)[1]) for url in task.input_urls if "/files/" in url}
        if gone:  # photos the bot uploaded for this task (STORAGE=kie)
            for path in gone:
                self.files.pop(path, None)
            self.uploads = [upload for upload in self.uploads if upload.file_path not in gone]

    def open_gate(self, status: int) -> None:
        """Answer the parked (and all later) gate requests with `status`."""
        self.gate_status = status
        self.gate.set()

    def success_body(self, task: FakeTask, result_urls: list[str]) -> Json:
        """The documented success callback of `task`, with the given result URLs."""
        task.result_urls = list(result_urls)
        task.complete_time = fake_common.now_ms()
        task.credits_consumed = self.task_cost
        self.set_phase(task, "success")
        return self.callback_body(task)

    # ------------------------------------------------------------------- routes
    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_get(GATE_PREFIX + "{name}", self._gate)

    async def _gate(self, request: web.Request) -> web.Response:
        """A result URL that answers only when the benchmark opens the gate."""
        self.gate_waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.gate_waiting -= 1
        return web.Response(status=self.gate_status, text="gate")

    async def _jobs_create(self, request: web.Request) -> web.Response:
        started = now()
        response = await super()._jobs_create(request)
        body = response.body
        if response.status != 200 or not isinstance(body, bytes):
            return response
        data = json.loads(body).get("data")
        task_id = data.get("taskId") if isinstance(data, dict) else None
        task = self.tasks.get(task_id) if isinstance(task_id, str) else None
        if task is None:
            return response
        prompt = (task.request.get("input") or {}).get("prompt")
        trace = self.ledger.by_prompt.get(prompt) if isinstance(prompt, str) else None
        if trace is not None and trace.created is None:
            trace.created = started
            trace.task_id = task.task_id
            self.ledger.by_task[task.task_id] = trace
            trace.created_event.set()
        return response

    async def prepare_inputs(self, task: FakeTask) -> tuple[str, str] | None:
        failure = await super().prepare_inputs(task)
        if self.discard_inputs:
            task.inputs = []  # held tasks never finish: do not keep 10,000 photos around
        return failure

    async def deliver(
        self,
        task_id: str,
        url: str,
        body: Any,
        headers: Callable[[], dict[str, str]] | None = None,
    ) -> bool:
        trace = self.ledger.by_task.get(task_id)
        if trace is not None and trace.callback is None:
            trace.callback = now()
        return await super().deliver(task_id, url, body, headers)

    async def _handle_result(self, request: web.Request) -> web.Response:
        started = now()
        response = await super()._handle_result(request)
        trace = self.ledger.by_task.get(request.match_info.get("task_id", ""))
        if trace is not None:
            trace.charge_deliver(now() - started)
        return response
