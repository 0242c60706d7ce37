"""Downloading result images from providers: http(s) only, public addresses only (see
bot/result_addresses.py), few redirects, capped size, checked type."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp

from bot.images.decode import probe
from bot.images.limits import ImageError
from bot.lifecycle.context import DeliveryFailed
from bot.providers.base import Provider
from bot.result_addresses import AddressRefused, literal_allowed

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class ResultImage:
    data: bytes
    format: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif"}.get(self.format, "img")


class ResultFetcher:
    """Fetches a provider's result URL with limits, falling back to the provider's own link."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        max_bytes: int,
        allow_private: bool,
        timeout: float = 60.0,
    ) -> None:
        # `session` must be a `result_session`: its resolver refuses names that resolve to
        # addresses downloads may not reach; literals are checked here, on every hop.
        self.session = session
        self.allow_private = allow_private
        self.max_bytes = max_bytes
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10.0)

    async def fetch(self, url: str, provider: Provider) -> ResultImage:
        try:
            return await self._fetch(url)
        except DeliveryFailed as exc:
            if exc.code not in ("result_refused", "result_missing"):
                raise
            alternate = await provider.fallback_download_url(url)
            if alternate is None:
                raise
            log.info("fetching result through the provider's download link")
            return await self._fetch(alternate)

    def _check(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise DeliveryFailed(
                "result_url_scheme", f"refused scheme in {url[:80]}", permanent=True
            )
        if not literal_allowed(parts.hostname or "", allow_private=self.allow_private):
            raise DeliveryFailed("result_address", f"refused address in {url[:80]}", permanent=True)

    async def _fetch(self, url: str) -> ResultImage:
        try:
            # Redirects followed here, so that each hop's scheme and address are checked.
            for _ in range(MAX_REDIRECTS + 1):
                self._check(url)
                async with self.session.get(
                    url, timeout=self.timeout, allow_redirects=False
                ) as resp:
                    location = resp.headers.get("Location")
                    if resp.status in REDIRECTS and location:
                        url = urljoin(url, location)
                        continue
                    return await self._read(resp)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                raise DeliveryFailed("result_address", str(exc.os_error), permanent=True) from exc
            raise DeliveryFailed("result_download", repr(exc)) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryFailed("result_download", repr(exc)) from exc
        raise DeliveryFailed("result_http", f"more than {MAX_REDIRECTS} redirects", permanent=True)

    async def _read(self, resp: aiohttp.ClientResponse) -> ResultImage:
        if resp.status in (401, 403):
            raise DeliveryFailed("result_refused", f"HTTP {resp.status}")
        if resp.status in (404, 410):
            raise DeliveryFailed("result_missing", f"HTTP {resp.status}")
        if resp.status != 200:
            raise DeliveryFailed("result_http", f"HTTP {resp.status}")
        if resp.content_length is not None and resp.content_length > self.max_bytes:
            raise DeliveryFailed("result_too_large", str(resp.content_length), permanent=True)
        # Pieces joined once at the end: the image is copied once, not regrown in a
        # bytearray and then copied again into bytes.
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise DeliveryFailed(
                    "result_too_large", f"> {self.max_bytes} bytes", permanent=True
                )
            chunks.append(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        del chunks
        try:
            fmt, width, height = probe(data)
        except ImageError as exc:
            raise DeliveryFailed("result_not_image", exc.detail, permanent=True) from exc
        return ResultImage(data=data, format=fmt, width=width, height=height)
