"""Downloading result images from providers: http(s) only, capped size, checked type."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from bot.images.decode import probe
from bot.images.limits import ImageError
from bot.lifecycle.context import DeliveryFailed
from bot.providers.base import Provider

log = logging.getLogger(__name__)


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
        self, session: aiohttp.ClientSession, *, max_bytes: int, timeout: float = 60.0
    ) -> None:
        self.session = session
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

    async def _fetch(self, url: str) -> ResultImage:
        if urlsplit(url).scheme not in ("http", "https"):
            raise DeliveryFailed(
                "result_url_scheme", f"refused scheme in {url[:80]}", permanent=True
            )
        try:
            async with self.session.get(url, timeout=self.timeout, allow_redirects=True) as resp:
                if resp.status in (401, 403):
                    raise DeliveryFailed("result_refused", f"HTTP {resp.status}")
                if resp.status in (404, 410):
                    raise DeliveryFailed("result_missing", f"HTTP {resp.status}")
                if resp.status != 200:
                    raise DeliveryFailed("result_http", f"HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > self.max_bytes:
                    raise DeliveryFailed(
                        "result_too_large", str(resp.content_length), permanent=True
                    )
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
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise DeliveryFailed("result_download", repr(exc)) from exc
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        del chunks
        try:
            fmt, width, height = probe(data)
        except ImageError as exc:
            raise DeliveryFailed("result_not_image", exc.detail, permanent=True) from exc
        return ResultImage(data=data, format=fmt, width=width, height=height)
