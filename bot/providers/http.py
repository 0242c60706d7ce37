"""The one provider class: a family's pure mapping (`FamilyApi`) sent through the transport.

Each family module (kie, kie4o, odkkk) describes its API as a `FamilyApi` built from its pure
functions; `HttpProvider` owns what is the same for all of them: bearer auth, the account's
rate limit on task creation (`rate_limit`, whose turns are taken in the database), callback
authentication and the ProtocolError → 400 mapping.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bot.providers.base import AccountLimit, ModelSpec, SubmitRequest, TaskStatus
from bot.providers.transport import ErrorMapper, Transport
from domain.errors import CallbackRejected, ProtocolError, ProviderError

# (key, headers, body, the edit's task id) -> None, or raise CallbackRejected.
CallbackVerifier = Callable[[str, Mapping[str, str], Any, str | None], None]
# (provider, result URL) -> another URL for the result, or None.
FallbackDownload = Callable[["HttpProvider", str], Awaitable[str | None]]


def any_http_url(url: str) -> bool:
    """Callbacks to any http(s) URL (the KIE families)."""
    return url.startswith(("http://", "https://"))


@dataclass(frozen=True)
class FamilyApi:
    """One API family, as paths and pure functions; no I/O of its own.

    `status_path` may hold "{id}" for the URL-quoted task id; `status_param` names the query
    parameter that carries it instead. `says_failed` tells whether a status answer's own
    record says its task failed. `verify_callback` runs when the provider has an HMAC key;
    `fallback_download_url` is the family's other way to a result the CDN refused.
    """

    submit_path: str
    status_path: str
    status_param: str | None
    error_mapper: ErrorMapper
    validate: Callable[[SubmitRequest], None]
    build_body: Callable[[SubmitRequest], dict[str, Any]]
    parse_submit: Callable[[Any], str]
    parse_status: Callable[[Any], TaskStatus]
    says_failed: Callable[[Any], bool]
    parse_callback: Callable[[Any], TaskStatus]
    accepts_callback_url: Callable[[str], bool] = any_http_url
    verify_callback: CallbackVerifier | None = None
    fallback_download_url: FallbackDownload | None = None

    def status_query(self, task_id: str) -> tuple[str, dict[str, str] | None]:
        """The path and query parameters that ask for `task_id`."""
        path = self.status_path.replace("{id}", quote(task_id, safe=""))
        return path, {self.status_param: task_id} if self.status_param else None


@dataclass
class HttpProvider:
    """A provider family at `base_url` with one account (key, HMAC key, rate limit)."""

    name: str
    api: FamilyApi
    transport: Transport
    base_url: str
    api_key: str
    models: Mapping[str, ModelSpec]
    hmac_key: str | None = None
    rate_limit: AccountLimit | None = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
        error_mapper: ErrorMapper | None = None,
    ) -> Any:
        """Send one request of this family (auth, error mapping) and return the JSON body."""
        return await self.transport.request(
            method,
            f"{self.base_url}{path}",
            family=self.name,
            error_mapper=error_mapper or self.api.error_mapper,
            headers={"Authorization": f"Bearer {self.api_key}"},
            json_body=json_body,
            params=params,
            idempotent=idempotent,
        )

    def accepts_callback_url(self, url: str) -> bool:
        return self.api.accepts_callback_url(url)

    def validate(self, request: SubmitRequest) -> None:
        self.api.validate(request)

    async def submit(self, request: SubmitRequest) -> str:
        body = await self.call(
            "POST", self.api.submit_path, json_body=self.api.build_body(request), idempotent=False
        )
        return self.api.parse_submit(body)

    def retry_delay(self, attempt: int, error: ProviderError) -> float | None:
        return self.transport.retry_delay(attempt, error)

    async def status(self, task_id: str) -> TaskStatus:
        path, params = self.api.status_query(task_id)
        body = await self.call("GET", path, params=params, error_mapper=self._status_error)
        return self.api.parse_status(body)

    def _status_error(self, status: int, body: Any) -> ProviderError | None:
        """A record saying its task failed is the answer, whatever code comes with it.

        KIE's failure callback carries code 501 and its documents call the query answer
        identical to the callback: mapped to an error, the failure would read as a failed
        query ("ask again later") and the edit would wait out TASK_TIMEOUT.
        """
        if self.api.says_failed(body):
            return None
        return self.api.error_mapper(status, body)

    def parse_callback(
        self, body: Any, headers: Mapping[str, str], *, task_id: str | None = None
    ) -> TaskStatus:
        if self.hmac_key and self.api.verify_callback is not None:
            self.api.verify_callback(self.hmac_key, headers, body, task_id)
        try:
            return self.api.parse_callback(body)
        except ProtocolError as exc:
            raise CallbackRejected(str(exc), status=400) from exc

    async def fallback_download_url(self, url: str) -> str | None:
        if self.api.fallback_download_url is None:
            return None
        return await self.api.fallback_download_url(self, url)

    async def close(self) -> None:
        return None
