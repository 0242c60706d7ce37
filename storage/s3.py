"""Input photos in any S3-compatible bucket (AWS S3, Cloudflare R2, MinIO, ...).

The client is aiobotocore's, opened by `start()` and closed by `close()` (the app's
cleanup context calls both). Providers download the photo either from a plain URL under
`public_base_url` (a public bucket or a CDN in front of it) or from a presigned GET URL
that expires after `url_ttl` seconds.

Every S3/botocore failure is mapped here, once, onto `StorageMisconfigured` (credentials,
permissions, missing bucket: the operator must act) or `StorageUnavailable` (anything
transient).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Iterator
from contextlib import AsyncExitStack, aclosing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from storage.blobs import (
    CONTENT_TYPES,
    StorageMisconfigured,
    StorageUnavailable,
    StoredBlob,
    is_key,
    new_key,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import ObjectIdentifierTypeDef

log = logging.getLogger(__name__)

AddressingStyle = Literal["auto", "path", "virtual"]

#: SigV4 presigned URLs live at most 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
#: DeleteObjects takes at most 1000 keys per call.
MAX_DELETE_BATCH = 1000

# Error codes that mean "fix the configuration", not "try again later".
_MISCONFIGURED = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidBucketName",
        "InvalidToken",
        "NoSuchBucket",
        "PermanentRedirect",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
        "Unauthorized",
    }
)


@dataclass(frozen=True)
class S3Options:
    """Where and how to store; `prefix` ends with "/" or is empty."""

    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    prefix: str = ""
    public_base_url: str | None = None
    url_ttl: int = 3600
    addressing_style: AddressingStyle = "auto"
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_attempts: int = 4


def normalize_prefix(prefix: str) -> str:
    """ "inputs" / "/inputs/" -> "inputs/"; "" stays ""."""
    stripped = prefix.strip().strip("/")
    return f"{stripped}/" if stripped else ""


@contextmanager
def mapped_errors(operation: str) -> Iterator[None]:
    """Turn S3 and botocore failures into the storage errors the edit service knows."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        detail = f"S3 {operation}: {code or status} {error.get('Message', '')}".strip()
        if code in _MISCONFIGURED or status in (401, 403):
            raise StorageMisconfigured(detail, status=status) from exc
        raise StorageUnavailable(detail, status=status) from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise StorageMisconfigured(f"S3 {operation}: {exc}") from exc
    except (BotoCoreError, aiohttp.ClientError, TimeoutError) as exc:
        raise StorageUnavailable(f"S3 {operation}: {exc.__class__.__name__}: {exc}") from exc


class S3BlobStore:
    """Blobs as objects `{prefix}{key}` in one bucket."""

    name = "s3"

    def __init__(
        self,
        options: S3Options,
        *,
        session: AioSession | None = None,
        delete_batch: int = MAX_DELETE_BATCH,
        list_page: int = 1000,
    ) -> None:
        if not 1 <= delete_batch <= MAX_DELETE_BATCH:
            raise ValueError(f"delete_batch must be 1..{MAX_DELETE_BATCH}")
        if options.public_base_url is None and not 1 <= options.url_ttl <= MAX_PRESIGN_SECONDS:
            raise ValueError(f"presigned URLs live 1..{MAX_PRESIGN_SECONDS} seconds")
        self.options = options
        self.bucket = options.bucket
        self.prefix = normalize_prefix(options.prefix)
        self.public_base_url = (
            options.public_base_url.rstrip("/") if options.public_base_url else None
        )
        self.delete_batch = delete_batch
        self.list_page = list_page
        self._session = session or get_session()
        self._stack: AsyncExitStack | None = None
        self._client: S3Client | None = None

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._client is not None:
            return
        opts = self.options
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": opts.addressing_style},
            connect_timeout=opts.connect_timeout,
            read_timeout=opts.read_timeout,
            retries={"max_attempts": opts.max_attempts, "mode": "standard"},
            # Checksums only where S3 requires them: several S3-compatible stores refuse
            # the newer default (flexible CRC checksums on every upload).
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        stack = AsyncExitStack()
        self._client = await stack.enter_async_context(
            self._session.create_client(
                "s3",
                region_name=opts.region,
                endpoint_url=opts.endpoint_url,
                aws_access_key_id=opts.access_key_id,
                aws_secret_access_key=opts.secret_access_key,
                config=config,
            )
        )
        self._stack = stack

    async def close(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise RuntimeError("S3BlobStore.start() was not called")
        return self._client

    # Blobs -------------------------------------------------------------------------------

    def object_key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    async def url_for(self, key: str) -> str:
        """The URL a provider downloads `key` from: public, or presigned and expiring."""
        object_key = self.object_key(key)
        if self.public_base_url is not None:
            return f"{self.public_base_url}/{quote(object_key, safe='/')}"
        with mapped_errors("presign"):
            return await self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": object_key},
                ExpiresIn=self.options.url_ttl,
            )

    async def put(self, data: bytes, *, extension: str) -> StoredBlob:
        key = new_key(extension)
        with mapped_errors("put"):
            await self.client.put_object(
                Bucket=self.bucket,
                Key=self.object_key(key),
                Body=data,
                ContentType=CONTENT_TYPES[extension],
                CacheControl="private, max-age=300",
            )
        return StoredBlob(key=key, url=await self.url_for(key))

    async def delete(self, key: str) -> None:
        if not is_key(key):
            return
        with mapped_errors("delete"):
            await self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    async def sweep(self, older_than: float) -> int:
        """Delete our objects under the prefix last modified before `older_than`.

        Only names of the shape `new_key` produces are touched, so a shared bucket or an
        empty prefix never loses anything else.
        """
        cutoff = datetime.fromtimestamp(older_than, UTC)
        removed = 0
        batch: list[ObjectIdentifierTypeDef] = []
        async with aclosing(self._old_objects(cutoff)) as old_objects:
            async for object_key in old_objects:
                batch.append({"Key": object_key})
                if len(batch) >= self.delete_batch:
                    removed += await self._delete_batch(batch)
                    batch = []
        if batch:
            removed += await self._delete_batch(batch)
        return removed

    async def _old_objects(self, cutoff: datetime) -> AsyncGenerator[str, None]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(
            Bucket=self.bucket,
            Prefix=self.prefix,
            PaginationConfig={"PageSize": self.list_page},
        )
        with mapped_errors("list"):
            async for page in pages:
                for obj in page.get("Contents", []):
                    object_key = obj.get("Key", "")
                    modified = obj.get("LastModified")
                    if (
                        is_key(object_key[len(self.prefix) :])
                        and modified is not None
                        and modified < cutoff
                    ):
                        yield object_key

    async def _delete_batch(self, batch: list[ObjectIdentifierTypeDef]) -> int:
        with mapped_errors("delete"):
            answer = await self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
        errors = answer.get("Errors", [])
        for error in errors[:5]:
            log.warning(
                "S3 sweep could not delete an object",
                extra={"key": error.get("Key"), "error": error.get("Code")},
            )
        return len(batch) - len(errors)
