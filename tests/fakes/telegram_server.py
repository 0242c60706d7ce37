"""The fake Telegram's HTTP side: serving the Bot API and file routes on 127.0.0.1, decoding
parameters like the real server, recording every call, and the failures tests arm."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import ClientPayloadError, web
from telegram import Bot
from telegram.request import HTTPXRequest

from tests.fakes.telegram_errors import ApiError, Json, NotModelled, bad
from tests.fakes.telegram_files import MAX_UPLOAD_BYTES, Upload
from tests.fakes.telegram_updates import Notifier, UpdateFeed, WithDescription

Handler = Callable[[Json, dict[str, Upload]], Awaitable[Any]]

# Form fields whose value is always a string in the Bot API: never JSON-decode them, even
# when they look like a number ("42") or a literal ("true").
_STRING_FIELDS: Final = frozenset(
    {
        "callback_query_id",
        "caption",
        "description",
        "document",
        "error_message",
        "file_id",
        "inline_query_id",
        "language_code",
        "parse_mode",
        "payload",
        "photo",
        "pre_checkout_query_id",
        "secret_token",
        "telegram_payment_charge_id",
        "text",
        "title",
        "url",
    }
)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def fast_request(**kwargs: Any) -> HTTPXRequest:
    """A PTB ``HTTPXRequest`` that reuses one SSL context.

    Every default ``HTTPXRequest`` loads the CA bundle again (~75 ms; a Bot has two of them),
    which dominates short tests. Pass it as ``Bot(request=..., get_updates_request=...)`` or
    ``ApplicationBuilder().request(...).get_updates_request(...)``; ``kwargs`` go to
    ``HTTPXRequest`` (``httpx_kwargs`` are merged).
    """
    httpx_kwargs = {"verify": _ssl_context(), **kwargs.pop("httpx_kwargs", {})}
    return HTTPXRequest(httpx_kwargs=httpx_kwargs, **kwargs)


def _bot_api_methods() -> dict[str, str]:
    """Lower-case name -> canonical camelCase name of every Bot API method PTB knows."""
    names = {
        name
        for name in dir(Bot)
        if name[:1].islower()
        and any(char.isupper() for char in name)
        and callable(getattr(Bot, name))
    }
    names.update({"close", "logOut", "getMe", "getUpdates"})
    return {name.lower(): name for name in names}


_METHODS: Final = _bot_api_methods()


def canonical_method(name: str) -> str:
    """Canonical Bot API name for ``sendPhoto``, ``sendphoto`` or ``send_photo``.

    Raises ValueError for names the Bot API does not have (catches typos in tests).
    """
    key = name.replace("_", "").lower()
    try:
        return _METHODS[key]
    except KeyError:
        raise ValueError(f"{name!r} is not a Bot API method") from None


@dataclass
class ApiCall:
    """One Bot API request the fake answered (wrong-token requests are not recorded)."""

    method: str
    """Canonical camelCase method name, e.g. ``sendPhoto``."""
    params: Json
    """Decoded parameters (JSON values decoded, free-text fields kept as strings)."""
    files: dict[str, bytes]
    """Uploaded file parts by form-field name (``photo``, or the attach name)."""
    file_names: dict[str, str]
    """Client-side file names of the uploaded parts."""
    response: Json
    """The JSON body the fake answered (``{"ok": true, "result": ...}`` or an error)."""
    status: int
    """HTTP status of the answer."""
    at: float = field(default_factory=time.monotonic)
    """When the answer was produced (`time.monotonic()`)."""
    received: float = field(default_factory=time.monotonic)
    """When the request arrived: a call whose client died meanwhile (a SIGKILLed bot) is
    still executed and answered, like on the real server, so `at` can follow the death."""

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def result(self) -> Any:
        return self.response.get("result")

    @property
    def error(self) -> str | None:
        """The error description, or None for a successful call."""
        return None if self.ok else str(self.response.get("description"))

    def brief(self) -> str:
        shown = {k: v for k, v in self.params.items() if k not in {"media", "results"}}
        text = json.dumps(shown, ensure_ascii=False, default=str)
        if len(text) > 160:
            text = text[:157] + "..."
        files = f" files={sorted(self.files)}" if self.files else ""
        outcome = "ok" if self.ok else f"{self.status} {self.error}"
        return f"{self.method} {text}{files} -> {outcome}"


@dataclass
class _Fault:
    status: int
    description: str
    remaining: int
    retry_after: int | None
    when: Callable[[Json], bool] | None


@dataclass
class _Delay:
    seconds: float
    remaining: int | None


def _decode_field(name: str, value: str) -> Any:
    if name in _STRING_FIELDS or not value:
        return value
    if value[0] in '{["-0123456789' or value in {"true", "false", "null"}:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _json(status: int, body: Json) -> web.Response:
    return web.json_response(
        body, status=status, dumps=lambda obj: json.dumps(obj, ensure_ascii=False)
    )


def _error(status: int, description: str) -> web.Response:
    return _json(status, {"ok": False, "error_code": status, "description": description})


class ApiServer(UpdateFeed):
    """Serves ``/bot{token}/{method}`` and ``/file/bot{token}/{path}``; records the calls."""

    def __init__(self, token: str, username: str) -> None:
        super().__init__(token, username)
        self.url = ""
        self.calls: list[ApiCall] = []
        """Every answered Bot API call, in the order the answers were produced."""
        self.server_errors: list[BaseException] = []
        """Exceptions raised inside the fake itself (a 500 was answered); should stay empty."""
        self._routes: dict[str, tuple[Handler, frozenset[str]]] = {}
        """Method -> its handler and the parameters the fake models for it."""
        self._runner: web.AppRunner | None = None
        self._closed = asyncio.Event()
        self._calls_changed = Notifier()
        self._faults: dict[str, list[_Fault]] = {}
        self._delays: dict[str, _Delay] = {}

    # ----------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Starts serving on 127.0.0.1 on a free port; sets :attr:`url`."""
        if self._runner is not None:
            raise RuntimeError("FakeTelegram already started")
        self._closing = False
        self._closed.clear()
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{file_path:.+}", self._handle_file)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Releases pending long polls and delayed answers, then stops the server."""
        self._release_waiters()
        self._closed.set()
        self._calls_changed.notify()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """For ``Application.builder().base_url(...)`` / ``Bot(base_url=...)``."""
        return f"{self.url}/bot"

    @property
    def base_file_url(self) -> str:
        """For ``Application.builder().base_file_url(...)`` / ``Bot(base_file_url=...)``."""
        return f"{self.url}/file/bot"

    # ------------------------------------------------------------------------ call inspection

    def calls_of(self, method: str) -> list[ApiCall]:
        """The recorded calls of one method (``sendPhoto``, ``sendphoto`` or ``send_photo``)."""
        name = canonical_method(method)
        return [call for call in self.calls if call.method == name]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 - a test helper, not a network call
    ) -> list[ApiCall]:
        """Waits until ``count`` calls of ``method`` matching ``predicate`` were answered.

        Returns all matching calls so far (at least ``count``). On timeout raises
        AssertionError listing every call the fake saw.
        """
        name = canonical_method(method)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matching = [
                call
                for call in self.calls
                if call.method == name and (predicate is None or predicate(call))
            ]
            if len(matching) >= count:
                return matching
            remaining = deadline - loop.time()
            if remaining <= 0 or self._closing:
                seen = "\n".join(f"  {call.brief()}" for call in self.calls) or "  (none)"
                raise AssertionError(
                    f"expected {count} matching {name} call(s) within {timeout}s, got "
                    f"{len(matching)}; calls seen:\n{seen}"
                )
            await self._calls_changed.wait(remaining)

    def sent_message(self, call: ApiCall) -> Json:
        """The Message the fake answered for a send/edit call."""
        result = call.result
        if not call.ok or not isinstance(result, dict) or "message_id" not in result:
            raise AssertionError(f"call did not return a Message: {call.brief()}")
        return copy.deepcopy(result)

    def sent_messages(self, call: ApiCall) -> list[Json]:
        """The Messages of a call (one for sendPhoto, several for sendMediaGroup)."""
        result = call.result
        if call.ok and isinstance(result, list):
            return copy.deepcopy(result)
        return [self.sent_message(call)]

    # ------------------------------------------------------------------------------ failures

    def fail(
        self,
        method: str,
        status: int,
        description: str,
        *,
        times: int = 1,
        retry_after: int | None = None,
        when: Callable[[Json], bool] | None = None,
    ) -> None:
        """The next ``times`` calls of ``method`` (whose params satisfy ``when``, if given)
        answer this error instead of being executed. A 429 carries
        ``parameters.retry_after`` (default 1 second)."""
        if times < 1:
            raise ValueError("times must be >= 1")
        if status == 429 and retry_after is None:
            retry_after = 1
        self._faults.setdefault(canonical_method(method), []).append(
            _Fault(status, description, times, retry_after, when)
        )

    def delay(self, method: str, seconds: float, *, times: int | None = None) -> None:
        """Answers of ``method`` are held back ``seconds`` before the call is executed (for the
        next ``times`` calls, or until ``delay(method, 0)``)."""
        name = canonical_method(method)
        if seconds <= 0:
            self._delays.pop(name, None)
        else:
            self._delays[name] = _Delay(seconds, times)

    async def _apply_delay(self, name: str) -> None:
        delay = self._delays.get(name)
        if delay is None:
            return
        if delay.remaining is not None:
            delay.remaining -= 1
            if delay.remaining <= 0:
                del self._delays[name]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), delay.seconds)

    def _apply_fault(self, name: str, params: Json) -> None:
        faults = self._faults.get(name, [])
        for fault in faults:
            if fault.when is not None and not fault.when(params):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                faults.remove(fault)
            parameters = {"retry_after": fault.retry_after} if fault.retry_after else None
            raise ApiError(fault.status, fault.description, parameters)

    # --------------------------------------------------------------------------- HTTP layer

    async def _handle_api(self, request: web.Request) -> web.Response:
        received = time.monotonic()
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        name = _METHODS.get(request.match_info["method"].lower())
        if name is None:
            return _error(404, "Not Found")
        params: Json = {}
        uploads: dict[str, Upload] = {}
        try:
            params, uploads = await _read_params(request)
            handler = self._route(name, params)
            await self._apply_delay(name)
            self._apply_fault(name, params)
            if name.startswith("send"):
                self._check_blocked(params)
            result = await handler(params, uploads)
            body: Json
            if isinstance(result, WithDescription):
                body = {"ok": True, "result": result.result, "description": result.description}
            else:
                body = {"ok": True, "result": result}
            status = 200
        except ApiError as exc:
            status, body = exc.status, exc.body()
        except (ConnectionError, ClientPayloadError, asyncio.IncompleteReadError) as exc:
            # The bot went away mid-request (a killed process): nobody reads the answer, and it
            # is not a fault of the fake.
            status, body = 400, {"ok": False, "error_code": 400, "description": f"aborted: {exc!r}"}
        except Exception as exc:  # noqa: BLE001 - a bug in the fake must not look like Telegram
            self.server_errors.append(exc)
            status = 500
            body = {
                "ok": False,
                "error_code": 500,
                "description": f"fake Telegram crashed: {exc!r}",
            }
        self.calls.append(
            ApiCall(
                method=name,
                params=params,
                files={key: upload.data for key, upload in uploads.items()},
                file_names={
                    key: upload.filename for key, upload in uploads.items() if upload.filename
                },
                response=copy.deepcopy(body),
                status=status,
                received=received,
            )
        )
        self._calls_changed.notify()
        return _json(status, body)

    def _route(self, name: str, params: Json) -> Handler:
        """The handler of a method, if the fake models the method and every parameter."""
        route = self._routes.get(name)
        if route is None:
            raise NotModelled(f"the Bot API method {name}")
        handler, modelled = route
        unknown = sorted(set(params) - modelled)
        if unknown:
            raise NotModelled(f"the parameters {unknown} of {name}")
        return handler

    async def _handle_file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        info = self._files_by_path.get(request.match_info["file_path"])
        if info is None:
            return _error(404, "Not Found")
        self.downloads.append(info)
        return web.Response(
            body=info.data, content_type=info.mime_type or "application/octet-stream"
        )


async def _read_params(request: web.Request) -> tuple[Json, dict[str, Upload]]:
    """Parameters as the real server takes them: query string, then a form-urlencoded,
    multipart (non-string values JSON-encoded, uploads as file parts) or JSON body."""
    params: Json = {key: _decode_field(key, value) for key, value in request.query.items()}
    uploads: dict[str, Upload] = {}
    if request.method != "POST" or not request.body_exists:
        return params, uploads
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise bad("can't parse JSON encoded request body") from None
        if not isinstance(body, dict):
            raise bad("can't parse JSON encoded request body")
        params.update(body)
    elif request.content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
        form = await request.post()
        for key, value in form.items():
            if isinstance(value, web.FileField):
                value.file.seek(0)
                uploads[key] = Upload(value.file.read(), value.filename, value.content_type)
            elif isinstance(value, str):
                params[key] = _decode_field(key, value)
            else:
                uploads[key] = Upload(bytes(value), None, None)
    return params, uploads
