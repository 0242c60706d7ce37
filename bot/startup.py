"""Start-up failures, sorted into the two kinds an operator acts on differently.

- `StartupError`: something only the operator can fix (a refused token, no provider, an
  unwritable data directory, a webhook URL Telegram refuses, a port in use). The service
  exits 2 with one paragraph naming the setting; retrying would change nothing.
- `Unreachable`: Telegram or the database did not answer. That is often brief (a network
  blip, the database container starting after the bot), so the start is retried with
  backoff for `STARTUP_RETRY_TIMEOUT` seconds before the service gives up with exit 1.

Neither prints a traceback: the operator needs the reason, not the call stack.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator

from sqlalchemy import exc as sa_exc
from telegram.error import BadRequest, InvalidToken, NetworkError, RetryAfter

from bot.config import Settings

# Waits between start-up attempts (seconds); the last one repeats until the time is up.
BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


class StartupError(Exception):
    """A start-up failure explained in one paragraph; `exit_code` 2 means "fix a setting"."""

    def __init__(self, paragraph: str, *, exit_code: int = 2) -> None:
        super().__init__(paragraph)
        self.paragraph = paragraph
        self.exit_code = exit_code


class Unreachable(Exception):
    """A service the bot needs did not answer at start-up; worth trying again."""

    def __init__(self, what: str, setting: str, cause: BaseException) -> None:
        super().__init__(f"{what} did not answer: {one_line(cause)}")
        self.what = what
        self.setting = setting
        self.cause = cause


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no details"
    return f"{type(exc).__name__}: {text}"[:300]


@contextlib.contextmanager
def telegram_calls(settings: Settings, *, webhook: bool = False) -> Iterator[None]:
    """Bot API calls made while starting: their failures become one of the two kinds."""
    try:
        yield
    except InvalidToken as exc:
        # PTB maps both 401 and 404 from the Bot API to InvalidToken; a 404 also answers a
        # TELEGRAM_API_URL that names no Bot API server.
        answer = exc.__cause__ if isinstance(exc.__cause__, InvalidToken) else exc
        raise StartupError(
            f"the Bot API refused the bot token ({answer.message}): check BOT_TOKEN (as "
            "given by @BotFather; /revoke there replaces it), and TELEGRAM_API_URL if you run "
            "your own Bot API server"
        ) from None
    except BadRequest as exc:
        if not webhook:
            raise
        raise StartupError(
            f"Telegram refused the webhook URL {settings.base_url}/telegram ({exc.message}): "
            "check PUBLIC_BASE_URL. Telegram's own Bot API accepts only https:// URLs on ports "
            "443, 80, 88 or 8443 whose certificate it trusts (or leave PUBLIC_BASE_URL unset "
            "for long polling); plain http works only with a self-hosted Bot API server "
            "started with --local"
        ) from None
    except (NetworkError, RetryAfter) as exc:  # TimedOut is a NetworkError
        raise Unreachable(
            f"the Telegram Bot API at {settings.telegram_base}", "TELEGRAM_API_URL", exc
        ) from None


@contextlib.contextmanager
def database_calls(settings: Settings) -> Iterator[None]:
    """Opening the database: a server that does not answer is worth waiting for; a SQLite
    file that cannot be opened is not."""
    try:
        yield
    except (OSError, sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        if not settings.resolved_database_url.startswith("postgresql"):
            raise StartupError(
                f"the SQLite database in DATA_DIR={settings.data_dir} cannot be opened "
                f"({one_line(exc)}): make DATA_DIR a directory this user can write"
            ) from None
        raise Unreachable("the database (DATABASE_URL)", "DATABASE_URL", exc) from None


def check_data_dir(settings: Settings) -> None:
    """DATA_DIR must be a writable directory whenever something lives there (the SQLite
    database, local input photos); checked before anything else opens."""
    if settings.database_url is not None and settings.resolved_storage != "local":
        return
    path = settings.data_dir
    probe = path / f".write-check-{os.getpid()}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StartupError(
            f"DATA_DIR={path} is not a directory this service can write "
            f"({exc.strerror or one_line(exc)}): create it and give the user running the bot "
            "write access (in Docker, mount a volume there), or point DATA_DIR elsewhere"
        ) from None


def port_in_use(exc: OSError, setting: str, host: str, port: int) -> StartupError | None:
    if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
        return None
    return StartupError(
        f"cannot listen on {host}:{port} ({exc.strerror}): another process uses the port, or "
        f"the address is not this machine's; change {setting} (or HOST)"
    )


class Retries:
    """When to try starting again, for at most `budget` seconds in all."""

    def __init__(self, budget: float, backoff: tuple[float, ...] = BACKOFF) -> None:
        self.deadline = time.monotonic() + budget
        self.started = time.monotonic()
        self.backoff = backoff
        self.attempts = 0

    def next_delay(self) -> float | None:
        """The wait before the next attempt, or None when the time is up."""
        self.attempts += 1
        left = self.deadline - time.monotonic()
        if left <= 0:
            return None
        return min(self.backoff[min(self.attempts, len(self.backoff)) - 1], left)

    def give_up(self, exc: Unreachable) -> StartupError:
        waited = time.monotonic() - self.started
        return StartupError(
            f"could not start: {exc.what} did not answer in {waited:.0f} s and "
            f"{self.attempts} attempts (last: {one_line(exc.cause)}). Check that this machine "
            f"reaches it (DNS, firewall, proxy) and that {exc.setting} is right; the service "
            "exits so that its supervisor (Docker's --restart, systemd) starts it again later, "
            "and STARTUP_RETRY_TIMEOUT sets how long it keeps trying",
            exit_code=1,
        )
