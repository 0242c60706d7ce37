"""S3BlobStore against a real S3-compatible server (moto) on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from bot.builders import build_blob_store
from bot.config import ConfigError, load_settings
from storage.blobs import StorageMisconfigured, StorageUnavailable, is_key, new_key
from storage.s3 import S3BlobStore, S3Options, normalize_prefix
from tests.conftest import TOKEN, free_port
from tests.fakes.images import make_jpeg, make_png
from tests.fakes.s3 import ACCESS_KEY, REGION, SECRET_KEY, MotoS3

StoreFactory = Callable[..., Awaitable[S3BlobStore]]


@pytest.fixture
async def bucket(s3_server: MotoS3) -> str:
    return await s3_server.create_bucket()


@pytest.fixture
async def make_store(s3_server: MotoS3, bucket: str) -> AsyncIterator[StoreFactory]:
    """Started S3BlobStores on the moto server (closed after the test)."""
    stores: list[S3BlobStore] = []

    async def factory(**overrides: Any) -> S3BlobStore:
        store_args = {k: overrides.pop(k) for k in ("delete_batch", "list_page") if k in overrides}
        values: dict[str, Any] = {
            "bucket": bucket,
            "region": REGION,
            "endpoint_url": s3_server.url,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "prefix": "inputs/",
            "url_ttl": 900,
            "max_attempts": 1,
        }
        values.update(overrides)
        store = S3BlobStore(S3Options(**values), session=s3_server.session, **store_args)
        await store.start()
        stores.append(store)
        return store

    yield factory
    for store in stores:
        await store.close()


async def download(url: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


async def test_put_stores_under_the_prefix_and_presigned_url_downloads(
    make_store: StoreFactory, s3_server: MotoS3, bucket: str
) -> None:
    store = await make_store()
    image = make_jpeg(40, 30)
    blob = await store.put(image, extension="jpg")

    assert is_key(blob.key)
    assert await s3_server.keys(bucket) == [f"inputs/{blob.key}"]
    stored = await s3_server.get(bucket, f"inputs/{blob.key}")
    assert stored.data == image and stored.content_type == "image/jpeg"

    url = urlsplit(blob.url)
    assert f"{url.scheme}://{url.netloc}" == s3_server.url
    assert url.path == f"/{bucket}/inputs/{blob.key}"
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == ["900"]  # FILE_URL_TTL
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert await download(blob.url) == (200, image, "image/jpeg")
    # Without the signature the private bucket refuses the same object.
    status, _, _ = await download(blob.url.split("?")[0])
    assert status == 403


async def test_png_and_webp_keep_their_content_type(
    make_store: StoreFactory, s3_server: MotoS3, bucket: str
) -> None:
    store = await make_store(prefix="")
    png = await store.put(make_png(8, 8), extension="png")
    webp = await store.put(b"RIFF....WEBPVP8 ", extension="webp")
    assert (await s3_server.get(bucket, png.key)).content_type == "image/png"
    assert (await s3_server.get(bucket, webp.key)).content_type == "image/webp"
    assert sorted(await s3_server.keys(bucket)) == sorted([png.key, webp.key])


async def test_public_base_url_gives_plain_urls(
    make_store: StoreFactory, s3_server: MotoS3
) -> None:
    public = await s3_server.create_bucket(public=True)
    store = await make_store(
        bucket=public, prefix="/bot/in", public_base_url=f"{s3_server.url}/{public}/"
    )
    image = make_png(16, 16)
    blob = await store.put(image, extension="png")
    assert blob.url == f"{s3_server.url}/{public}/bot/in/{blob.key}"
    assert await download(blob.url) == (200, image, "image/png")


async def test_delete_removes_the_object_and_ignores_foreign_or_missing_keys(
    make_store: StoreFactory, s3_server: MotoS3, bucket: str
) -> None:
    store = await make_store()
    blob = await store.put(make_jpeg(8, 8), extension="jpg")
    await s3_server.put(bucket, "inputs/../secret.jpg")
    await store.delete(blob.key)
    await store.delete(blob.key)  # already gone: not an error
    await store.delete(new_key("jpg"))  # never existed
    await store.delete("../secret.jpg")  # not a key: never touched
    assert await s3_server.keys(bucket) == ["inputs/../secret.jpg"]
    status, _, _ = await download(blob.url)
    assert status == 404


async def test_sweep_deletes_old_blobs_in_batches_and_nothing_else(
    make_store: StoreFactory, s3_server: MotoS3, bucket: str
) -> None:
    store = await make_store(delete_batch=2, list_page=3)
    blobs = [await store.put(make_jpeg(8, 8), extension="jpg") for _ in range(7)]
    foreign = [
        "inputs/notes.txt",  # under the prefix but not a blob name
        f"inputs/nested/{new_key('jpg')}",  # deeper than our keys
        f"elsewhere/{new_key('jpg')}",  # outside the prefix
        new_key("png"),  # bucket root
    ]
    for key in foreign:
        await s3_server.put(bucket, key)

    # Nothing was modified before an hour ago: nothing goes.
    assert await store.sweep(older_than=time.time() - 3600) == 0
    assert len(await s3_server.keys(bucket)) == 7 + len(foreign)

    # Everything is older than a minute from now: all blobs go, over 4 delete batches.
    assert await store.sweep(older_than=time.time() + 60) == 7
    assert await s3_server.keys(bucket) == sorted(foreign)
    for blob in blobs:
        assert (await download(blob.url))[0] == 404


async def test_missing_bucket_is_a_configuration_error(make_store: StoreFactory) -> None:
    store = await make_store(bucket="no-such-bucket-here")
    with pytest.raises(StorageMisconfigured) as info:
        await store.put(make_jpeg(8, 8), extension="jpg")
    assert "NoSuchBucket" in info.value.detail
    assert info.value.code == "storage_misconfigured"


async def test_unreachable_endpoint_is_unavailable(make_store: StoreFactory) -> None:
    store = await make_store(endpoint_url=f"http://127.0.0.1:{free_port()}", connect_timeout=2)
    with pytest.raises(StorageUnavailable) as info:
        await store.put(make_jpeg(8, 8), extension="jpg")
    assert info.value.code == "storage_unavailable"
    with pytest.raises(StorageUnavailable):
        await store.sweep(older_than=time.time())


async def test_client_lives_between_start_and_close(s3_server: MotoS3, bucket: str) -> None:
    store = S3BlobStore(S3Options(bucket=bucket, endpoint_url=s3_server.url))
    with pytest.raises(RuntimeError, match="start"):
        await store.put(b"x", extension="jpg")
    await store.start()
    await store.start()  # idempotent
    assert store.client is not None
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError):
        _ = store.client


def test_presigned_ttl_and_batch_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="presigned"):
        S3BlobStore(S3Options(bucket="b-1", url_ttl=8 * 24 * 3600))
    S3BlobStore(S3Options(bucket="b-1", url_ttl=8 * 24 * 3600, public_base_url="https://cdn"))
    with pytest.raises(ValueError, match="delete_batch"):
        S3BlobStore(S3Options(bucket="b-1"), delete_batch=1001)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", ""), ("/", ""), ("inputs", "inputs/"), ("/a/b/", "a/b/"), (" x ", "x/")],
)
def test_prefix_is_normalized(raw: str, expected: str) -> None:
    assert normalize_prefix(raw) == expected


# Settings ------------------------------------------------------------------------------------


def s3_settings(**overrides: Any) -> Any:
    values: dict[str, Any] = {"_env_file": None, "BOT_TOKEN": TOKEN, "KIE_API_KEY": "k"}
    values.update(overrides)
    return load_settings(**values)


def test_s3_storage_needs_a_bucket() -> None:
    with pytest.raises(ConfigError, match="STORAGE=s3 needs S3_BUCKET"):
        s3_settings(STORAGE="s3")


def test_s3_credentials_come_in_pairs() -> None:
    with pytest.raises(ConfigError, match="S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"):
        s3_settings(STORAGE="s3", S3_BUCKET="photos", S3_ACCESS_KEY_ID="AKIA")
    with pytest.raises(ConfigError, match="S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY"):
        s3_settings(STORAGE="s3", S3_BUCKET="photos", S3_SECRET_ACCESS_KEY="s")


def test_presigned_urls_cannot_outlive_seven_days() -> None:
    with pytest.raises(ConfigError, match="604800"):
        s3_settings(STORAGE="s3", S3_BUCKET="photos", FILE_URL_TTL=8 * 24 * 3600)
    settings = s3_settings(
        STORAGE="s3",
        S3_BUCKET="photos",
        FILE_URL_TTL=8 * 24 * 3600,
        S3_PUBLIC_BASE_URL="https://cdn.example/photos",
    )
    assert settings.resolved_storage == "s3"


def test_orphan_sweep_age_must_cover_running_edits() -> None:
    with pytest.raises(ConfigError, match="BLOB_MAX_AGE"):
        s3_settings(BLOB_MAX_AGE=600, TASK_TIMEOUT=900)
    settings = s3_settings(BLOB_MAX_AGE=60, TASK_TIMEOUT=30, BLOB_GRACE=0)
    assert settings.blob_max_age == 60


def test_secret_key_is_never_in_repr() -> None:
    settings = s3_settings(
        STORAGE="s3", S3_BUCKET="photos", S3_ACCESS_KEY_ID="AKIA1", S3_SECRET_ACCESS_KEY="hush-1"
    )
    assert "hush-1" not in repr(settings) and "hush-1" not in str(settings.model_dump())


async def test_build_blob_store_wires_every_s3_setting(s3_server: MotoS3, bucket: str) -> None:
    settings = s3_settings(
        STORAGE="s3",
        S3_BUCKET=bucket,
        S3_ENDPOINT_URL=s3_server.url,
        S3_REGION="eu-central-1",
        S3_ACCESS_KEY_ID=ACCESS_KEY,
        S3_SECRET_ACCESS_KEY=SECRET_KEY,
        S3_PREFIX="bot",
        S3_ADDRESSING_STYLE="path",
        FILE_URL_TTL=120,
    )
    store = build_blob_store(settings, transport=None)  # type: ignore[arg-type]
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == (bucket, "bot/")
    opts = store.options
    assert opts.endpoint_url is not None and opts.endpoint_url.rstrip("/") == s3_server.url
    assert (opts.region, opts.access_key_id, opts.secret_access_key) == (
        "eu-central-1",
        ACCESS_KEY,
        SECRET_KEY,
    )
    assert (opts.url_ttl, opts.addressing_style, opts.public_base_url) == (120, "path", None)
    await store.start()
    try:
        blob = await store.put(make_jpeg(8, 8), extension="jpg")
        assert "X-Amz-Expires=120" in blob.url and "eu-central-1" in blob.url
        assert await s3_server.keys(bucket) == [f"bot/{blob.key}"]
    finally:
        await store.close()


def test_env_example_loads_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """`cp .env.example .env` plus the two required secrets must start: empty values mean
    "unset", not "invalid" (the placeholders themselves are refused: tests/test_startup.py)."""
    example = Path(__file__).resolve().parent.parent / ".env.example"
    storage_names = [
        "STORAGE",
        "FILE_URL_TTL",
        "SIGNING_KEY",
        "S3_BUCKET",
        "S3_ENDPOINT_URL",
        "S3_REGION",
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
        "S3_PREFIX",
        "S3_PUBLIC_BASE_URL",
        "S3_ADDRESSING_STYLE",
        "BLOB_GRACE",
        "BLOB_MAX_AGE",
        "BLOB_CLEANUP_INTERVAL",
    ]
    text = example.read_text()
    for name in storage_names:
        monkeypatch.delenv(name, raising=False)
        assert f"\n{name}=" in text, f"{name} is not documented in .env.example"
    settings = load_settings(_env_file=str(example), BOT_TOKEN=TOKEN, KIE_API_KEY="kie-key")
    assert settings.storage is None and settings.s3_bucket is None
    assert settings.s3_endpoint_url is None and settings.s3_public_base_url is None
    assert (settings.blob_grace, settings.blob_max_age, settings.blob_cleanup_interval) == (
        600,
        86400,
        60,
    )
