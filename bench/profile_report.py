"""`python -m bench.profile_report FILE.pyisession`: where the bot's time goes.

Summarises a pyinstrument session written by `bench.run --profile` two ways: by the
operation a sample belongs to (the outermost bot/service function on its stack) and by the
library its innermost frame is in (self time). Idle time (the event loop waiting in
``epoll``) is shown separately and left out of the percentages.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterator

from pyinstrument.frame import Frame
from pyinstrument.session import Session

# (label, substring of "file:Class.function"): the first label whose frame is on the stack.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("sweeper", "bot/lifecycle/recovery.py:Recovery.sweep"),
    ("webhook route (/telegram)", "bot/web/telegram.py:"),
    ("callback route (/callbacks)", "bot/web/callbacks.py:"),
    ("input file route (/files)", "bot/web/files.py:"),
    ("delivery (result fetch, sendPhoto, status)", "bot/lifecycle/delivery.py:Delivery.deliver"),
    ("update handler (check, record, submit)", "telegram/ext/_handlers/basehandler.py:"),
    ("PTB update plumbing", "telegram/ext/_application.py:"),
    ("aiohttp server plumbing", "aiohttp/web_protocol.py:"),
)
# Inside the update handler: which step.
STEPS: tuple[tuple[str, str], ...] = (
    ("photo download (getFile + file)", "bot/delivery.py:TelegramPhotoSource.fetch"),
    ("status reply (sendMessage)", "bot/handlers/common.py:answer"),
    ("provider createTask", "bot/providers/kie.py:KieJobsProvider.submit"),
    ("blob store put", "storage/blobs.py:LocalBlobStore.put"),
    ("image normalize", "bot/images/normalize.py:normalize"),
    ("database", "storage/db.py:"),
)
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("importlib (failed imports)", "<frozen importlib"),
    ("httpx/httpcore/anyio/h11 (PTB's HTTP client)", "/httpx/"),
    ("httpx/httpcore/anyio/h11 (PTB's HTTP client)", "/httpcore/"),
    ("httpx/httpcore/anyio/h11 (PTB's HTTP client)", "/anyio/"),
    ("httpx/httpcore/anyio/h11 (PTB's HTTP client)", "/h11/"),
    ("SQLAlchemy", "/sqlalchemy/"),
    ("aiosqlite", "/aiosqlite/"),
    ("python-telegram-bot", "/telegram/"),
    ("aiohttp/yarl/multidict", "/aiohttp/"),
    ("aiohttp/yarl/multidict", "/yarl/"),
    ("aiohttp/yarl/multidict", "/multidict/"),
    ("Pillow", "/PIL/"),
    ("prometheus_client", "/prometheus_client/"),
    ("the bot (bot/, storage/)", "/main/bot/"),
    ("the bot (bot/, storage/)", "/main/storage/"),
    ("asyncio event loop", "/asyncio/"),
    ("logging/json", "/logging/"),
    ("logging/json", "/json/"),
)
IDLE = (":epoll.poll",)


def _key(frame: Frame) -> str:
    name = f"{frame.class_name}.{frame.function}" if frame.class_name else frame.function
    return f"{frame.file_path or ''}:{name or ''}"


def _walk(frame: Frame, stack: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], float]]:
    """(stack of keys, self time) for every frame."""
    here = (*stack, _key(frame))
    child_time = sum(child.time for child in frame.children)
    own = frame.time - child_time
    if own > 0:
        yield here, own
    for child in frame.children:
        yield from _walk(child, here)


def _label(stack: tuple[str, ...], table: tuple[tuple[str, str], ...]) -> str:
    """The first label of `table` whose pattern is on the stack."""
    for label, pattern in table:
        if any(pattern in key for key in stack):
            return label
    return "other"


def _library(stack: tuple[str, ...]) -> str:
    """The library of the innermost frame that belongs to a known one."""
    for key in reversed(stack):
        for label, pattern in LIBRARIES:
            if pattern in key:
                return label
    return "other"


def _ranked(shares: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(shares.items(), key=lambda item: -item[1])


def report(path: str) -> str:
    session = Session.load(path)
    root = session.root_frame()
    if root is None:
        return "empty profile"
    operations: defaultdict[str, float] = defaultdict(float)
    steps: defaultdict[str, float] = defaultdict(float)
    libraries: defaultdict[str, float] = defaultdict(float)
    idle = 0.0
    for stack, seconds in _walk(root, ()):
        if any(marker in stack[-1] for marker in IDLE):
            idle += seconds
            continue
        operation = _label(stack, OPERATIONS)
        operations[operation] += seconds
        if operation.startswith("update handler"):
            steps[_label(stack, STEPS)] += seconds
        libraries[_library(stack)] += seconds
    busy = sum(operations.values()) or 1.0
    lines = [
        f"{path}: {session.duration:.2f} s recorded, {busy:.2f} s busy, {idle:.2f} s idle "
        f"(CPU time {session.cpu_time:.2f} s)",
        "",
        "by operation (share of busy time):",
    ]
    lines += [f"  {share / busy:6.1%}  {label}" for label, share in _ranked(operations)]
    lines += ["", "inside the update handler:"]
    lines += [f"  {share / busy:6.1%}  {label}" for label, share in _ranked(steps)]
    lines += ["", "by library (self time):"]
    lines += [f"  {share / busy:6.1%}  {label}" for label, share in _ranked(libraries)]
    return "\n".join(lines)


def main() -> int:
    for path in sys.argv[1:]:
        print(report(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
