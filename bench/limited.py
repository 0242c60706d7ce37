"""The benchmark's fakes with Telegram's and KIE's limits, and a record of each edit's messages.

`LimitedTelegram` is `BenchTelegram` answering what real Telegram answers past its flood
limits: HTTP 429 ``Too Many Requests: retry after N`` with ``parameters.retry_after``. The
limits (`TelegramLimits`) are Telegram's published ones: about 30 messages per second per
bot, one per second per chat, 20 per minute per group. They count *messages*: methods that
send or edit one (``send*`` but ``sendChatAction``, ``edit*``, ``copyMessage``,
``forwardMessage``), because that is how Telegram words them; deletions, ``getFile`` and
callback answers are not documented as limited and are not counted. Each limit is a sliding
window (at most N in any T seconds), the rule the fake providers apply; a refused call does
not count. ``tests.fakes._common.FakeServer._rate_ok`` is one window that counts as it
checks, so it cannot tell a refusal's ``retry_after`` nor check three windows before counting
in any of them: hence `Window`.

Each edit is an `OpenTrace`, found from any call by the user's message it replies to (the
status message and the result both reply to the photo), and its status message by the
message id the bot got back: editMessageText calls on it are counted as status edits.

`LimitedKie` is `BenchKie` with the fake providers' own rate limit (``rate_limit``, KIE's
20 createTask per 10 s per key), a task duration, a count of the 429s it answered, and for
status polling: how long after a task finished the bot's first status query saw it.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bench.fakes import BenchKie, BenchTelegram, Ledger, Trace
from bench.measure import Json, now
from tests.fakes._common import now_ms
from tests.fakes.telegram_errors import ApiError
from tests.fakes.telegram_server import ApiCall

# Methods that are not messages (deleteMessage, getFile, answerCallbackQuery…) are free.
FREE_SEND = frozenset({"sendChatAction"})
RESULT_METHODS = frozenset({"sendPhoto", "sendMediaGroup", "sendDocument"})


def is_message(method: str) -> bool:
    if method in FREE_SEND:
        return False
    return method.startswith(("send", "edit")) or method in ("copyMessage", "forwardMessage")


@dataclass(frozen=True)
class TelegramLimits:
    """Telegram's flood limits: (messages, seconds) per bot, per chat, per group."""

    per_bot: tuple[int, float] = (30, 1.0)
    per_chat: tuple[int, float] = (1, 1.0)
    per_group: tuple[int, float] = (20, 60.0)


class Window:
    """At most `limit` events in any `seconds`; `wait` says how long until one more fits."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self.stamps: deque[float] = deque()

    def wait(self, at: float) -> float:
        while self.stamps and self.stamps[0] <= at - self.seconds:
            self.stamps.popleft()
        return 0.0 if len(self.stamps) < self.limit else self.stamps[0] + self.seconds - at

    def add(self, at: float) -> None:
        self.stamps.append(at)


@dataclass(eq=False)
class OpenTrace(Trace):
    """One open-loop edit: who sent it, the message ids it is known by, what it cost."""

    kind: str = "light"  # "light" | "heavy" | "group"
    message_id: int = 0  # the user's photo message
    status_ids: list[int] = field(default_factory=list)  # the bot's status message(s)
    status_edits: int = 0  # editMessageText calls on its status message
    calls: Counter[str] = field(default_factory=Counter)  # Bot API calls charged to it


class LimitedTelegram(BenchTelegram):
    """BenchTelegram with Telegram's flood limits (None: none) and a record per edit."""

    def __init__(self, token: str, ledger: Ledger, limits: TelegramLimits | None) -> None:
        super().__init__(token, ledger)
        self.limits = limits
        self.bot_window = Window(*limits.per_bot) if limits else None
        self.chat_windows: dict[int, Window] = {}
        self.group_windows: dict[int, Window] = {}
        self.refusals: Counter[str] = Counter()  # 429s by the limit that refused
        self.accepted: list[tuple[float, int, str]] = []  # (when, chat, method) of messages
        self.by_origin: dict[tuple[int, int], OpenTrace] = {}
        self.by_status: dict[tuple[int, int], OpenTrace] = {}

    def track(self, trace: OpenTrace) -> None:
        self.by_origin[(trace.chat_id, trace.message_id)] = trace

    # --------------------------------------------------------------- the limits
    def _apply_fault(self, name: str, params: Json) -> None:
        super()._apply_fault(name, params)
        if self.limits is None or self.bot_window is None or not is_message(name):
            return
        chat = _chat_id(params)
        at = now()
        windows: list[tuple[str, Window]] = [("bot", self.bot_window)]
        if chat is not None:
            limit, seconds = self.limits.per_chat
            windows.append(("chat", self.chat_windows.setdefault(chat, Window(limit, seconds))))
            if chat < 0:
                limit, seconds = self.limits.per_group
                group = self.group_windows.setdefault(chat, Window(limit, seconds))
                windows.append(("group", group))
        waits = [(window.wait(at), kind) for kind, window in windows]
        longest, kind = max(waits)
        if longest > 0:
            self.refusals[kind] += 1
            retry_after = max(1, math.ceil(longest))
            raise ApiError(
                429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}
            )
        for _, window in windows:
            window.add(at)
        self.accepted.append((at, chat or 0, name))

    # ------------------------------------------------------- edits and messages
    def _trace_of(self, method: str, params: Json) -> Trace | None:
        chat = _chat_id(params)
        if chat is not None:
            reply = params.get("reply_parameters")
            if isinstance(reply, dict) and isinstance(reply.get("message_id"), int):
                return self.by_origin.get((chat, reply["message_id"]))
            message_id = params.get("message_id")
            if isinstance(message_id, int):
                return self.by_status.get((chat, message_id))
            return None
        return super()._trace_of(method, params)

    def observe(self, call: ApiCall, trace: Trace | None) -> None:
        if not isinstance(trace, OpenTrace):
            return
        trace.calls[call.method] += 1
        if not call.ok:
            return
        if call.method == "sendMessage" and trace.delivered is None:
            message_id = call.result.get("message_id") if isinstance(call.result, dict) else None
            if isinstance(message_id, int):  # a reply before the result: the status message
                trace.status_ids.append(message_id)
                self.by_status[(trace.chat_id, message_id)] = trace
        elif call.method == "editMessageText":
            trace.status_edits += 1
        elif call.method in RESULT_METHODS and trace.delivered is None:
            trace.delivered = call.received
            trace.done_event.set()


def _chat_id(params: Json) -> int | None:
    chat: Any = params.get("chat_id")
    if isinstance(chat, str) and chat.lstrip("-").isdigit():
        chat = int(chat)
    return chat if isinstance(chat, int) else None


class LimitedKie(BenchKie):
    """BenchKie with KIE's rate limit (None: none), tasks of `task_delay` s, 429 counts."""

    def __init__(
        self,
        api_key: str,
        ledger: Ledger,
        *,
        rate_limit: tuple[int, float] | None,
        task_delay: float,
    ) -> None:
        super().__init__(api_key, ledger)
        self.rate_limit = rate_limit
        self.task_delay = task_delay
        self.refused = 0
        self.status_queries: Counter[str] = Counter()  # recordInfo calls by task
        self.detection_ms: dict[str, int] = {}  # task -> finished until first seen finished

    def _rate_ok(self) -> bool:
        ok = super()._rate_ok()
        if not ok:
            self.refused += 1
        return ok

    async def _jobs_record(self, request: web.Request) -> web.Response:
        task = self.tasks.get(request.query.get("taskId", ""))
        if task is not None:
            self.status_queries[task.task_id] += 1
            if task.finished and task.complete_time and task.task_id not in self.detection_ms:
                self.detection_ms[task.task_id] = now_ms() - task.complete_time
        return await super()._jobs_record(request)
