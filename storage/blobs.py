"""Where input photos live while a provider fetches them, and the URL it fetches them by."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from domain.errors import ProviderAuthError, ProviderUnavailable

log = logging.getLogger(__name__)

#: The only names a blob ever has: 24 random bytes (URL-safe base64) and an image extension.
KEY_RE = re.compile(r"[A-Za-z0-9_-]{32}\.(?:jpg|png|webp)", re.ASCII)
#: Expiry timestamps in signed URLs: plain ASCII digits, short enough for int().
EXPIRES_RE = re.compile(r"[0-9]{1,12}", re.ASCII)
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


def is_key(key: str) -> bool:
    """Whether `key` has the exact shape `new_key` produces (nothing else is ever touched)."""
    return KEY_RE.fullmatch(key) is not None


class StorageUnavailable(ProviderUnavailable):
    """The blob store failed (network, 5xx, full disk); the user may try again later."""

    code = "storage_unavailable"


class StorageMisconfigured(ProviderAuthError):
    """The blob store refused our credentials or has no such bucket: the operator must act."""

    code = "storage_misconfigured"


@dataclass(frozen=True)
class StoredBlob:
    key: str
    url: str


class BlobStore(Protocol):
    """Makes bytes reachable by URL for a while."""

    name: str

    async def start(self) -> None:
        """Open connections; called once by the app before the first `put`."""

    async def put(self, data: bytes, *, extension: str) -> StoredBlob:
        """Store `data` and return its key and a URL a provider can download it from.

        Failures raise `ProviderError` subclasses (`StorageUnavailable`,
        `StorageMisconfigured`, or the KIE upload API's mapped errors).
        """

    async def delete(self, key: str) -> None:
        """Remove a blob; a missing one is not an error."""

    async def sweep(self, older_than: float) -> int:
        """Remove blobs created before the `older_than` timestamp; return how many."""

    async def close(self) -> None:
        """Release resources."""


def new_key(extension: str) -> str:
    if extension not in CONTENT_TYPES:
        raise ValueError(f"unsupported extension {extension!r}")
    return f"{secrets.token_urlsafe(24)}.{extension}"


class LocalBlobStore:
    """Bytes under DATA_DIR, served by this service at signed, expiring `/files/` URLs."""

    name = "local"

    def __init__(self, root: Path, base_url: str, signing_key: bytes, ttl: int) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/")
        self.signing_key = signing_key
        self.ttl = ttl
        self.root.mkdir(parents=True, exist_ok=True)

    def sign(self, key: str, expires: int) -> str:
        mac = hmac.new(self.signing_key, f"{key}:{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def url_for(self, key: str, *, now: float | None = None) -> str:
        expires = int((time.time() if now is None else now) + self.ttl)
        return f"{self.base_url}/files/{key}?exp={expires}&sig={self.sign(key, expires)}"

    def resolve(self, key: str, expires: str, sig: str, *, now: float | None = None) -> Path | None:
        """The file behind a signed URL, or None when the URL is invalid, expired or gone.

        Only names of the exact shape of `new_key` are ever looked up, directly under
        `root`: no separators, dots, NULs or encodings can reach another file.
        """
        if not is_key(key) or EXPIRES_RE.fullmatch(expires) is None:
            return None
        if int(expires) < (time.time() if now is None else now):
            return None
        # Compare bytes: compare_digest refuses non-ASCII str (and that must not be a 500).
        expected = self.sign(key, int(expires)).encode()
        if not hmac.compare_digest(expected, sig.encode("utf-8", "replace")):
            return None
        path = self.root / key
        return path if path.is_file() else None

    async def start(self) -> None:
        return None

    async def put(self, data: bytes, *, extension: str) -> StoredBlob:
        key = new_key(extension)
        try:
            await asyncio.to_thread(self._write, self.root / key, data)
        except PermissionError as exc:
            raise StorageMisconfigured(f"cannot write {self.root}: permission denied") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot write {self.root}: {exc.strerror or exc}") from exc
        return StoredBlob(key=key, url=self.url_for(key))

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    async def delete(self, key: str) -> None:
        if is_key(key):
            await asyncio.to_thread((self.root / key).unlink, missing_ok=True)

    async def sweep(self, older_than: float) -> int:
        return await asyncio.to_thread(self._sweep, older_than)

    def _sweep(self, older_than: float) -> int:
        """Remove blobs (and write leftovers `*.tmp`) last modified before `older_than`."""
        removed = 0
        for path in self.root.iterdir():
            name = path.name.removesuffix(".tmp")
            if not is_key(name):
                continue  # not ours: leave it alone
            try:
                if path.is_file() and path.stat().st_mtime < older_than:
                    path.unlink(missing_ok=True)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    async def close(self) -> None:
        return None
