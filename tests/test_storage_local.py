"""STORAGE=local: signed, expiring /files URLs served by the running bot over real HTTP."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from storage.blobs import (
    LocalBlobStore,
    StorageMisconfigured,
    StorageUnavailable,
    StoredBlob,
    is_key,
    new_key,
)
from tests.conftest import RunningBot
from tests.fakes.images import make_jpeg, make_png, make_webp

SECRET = b"SECRET-outside-the-files-directory"


def local_store(bot: RunningBot) -> LocalBlobStore:
    store = bot.services.blobs
    assert isinstance(store, LocalBlobStore)
    return store


async def fetch(
    url: str | URL, method: str = "GET", *, http: aiohttp.ClientSession | None = None
) -> tuple[int, bytes, dict[str, str]]:
    if http is None:
        async with aiohttp.ClientSession() as own:
            return await fetch(url, method, http=own)
    async with http.request(method, url) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


async def raw_request(bot: RunningBot, target: str, method: str = "GET") -> tuple[int, bytes]:
    """Send `target` byte for byte (no client-side normalization); (status, whole answer)."""
    port = bot.settings.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Connection: close\r\n\r\n".encode("latin-1")
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    status_line = answer.split(b"\r\n", 1)[0]
    return int(status_line.split()[1]), answer


# Serving --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("maker", "extension", "content_type"),
    [
        (make_jpeg, "jpg", "image/jpeg"),
        (make_png, "png", "image/png"),
        (make_webp, "webp", "image/webp"),
    ],
)
async def test_get_and_head_serve_the_blob_with_its_type(
    webhook_bot: RunningBot, maker: object, extension: str, content_type: str
) -> None:
    data = maker(30, 20)  # type: ignore[operator]
    blob = await webhook_bot.services.blobs.put(data, extension=extension)
    assert blob.url.startswith(f"{webhook_bot.url}/files/{blob.key}?exp=")
    assert (webhook_bot.settings.data_dir / "files" / blob.key).read_bytes() == data

    status, body, headers = await fetch(blob.url)
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == content_type
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "private" in headers["Cache-Control"]

    status, body, headers = await fetch(blob.url, "HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Type"] == content_type
    assert headers["Content-Length"] == str(len(data))


async def test_expired_url_is_404(webhook_bot: RunningBot) -> None:
    store = local_store(webhook_bot)
    blob = await store.put(make_jpeg(8, 8), extension="jpg")
    # A URL signed ttl+1 seconds ago expired one second ago; the signature itself is valid.
    expired = store.url_for(blob.key, now=time.time() - store.ttl - 1)
    assert (await fetch(expired))[0] == 404
    assert (await fetch(expired, "HEAD"))[0] == 404
    still_valid = store.url_for(blob.key, now=time.time() - store.ttl + 30)
    assert (await fetch(still_valid))[0] == 200


async def test_deleted_blob_is_404(webhook_bot: RunningBot) -> None:
    store = local_store(webhook_bot)
    blob = await store.put(make_jpeg(8, 8), extension="jpg")
    assert (await fetch(blob.url))[0] == 200
    await store.delete(blob.key)
    assert not (store.root / blob.key).exists()
    assert (await fetch(blob.url))[0] == 404
    assert (await fetch(blob.url, "HEAD"))[0] == 404


async def test_bad_or_missing_signature_is_404(webhook_bot: RunningBot) -> None:
    store = local_store(webhook_bot)
    blob = await store.put(make_jpeg(8, 8), extension="jpg")
    other = await store.put(make_jpeg(8, 8), extension="jpg")
    base = f"{webhook_bot.url}/files/{blob.key}"
    exp = blob.url.split("exp=")[1].split("&")[0]
    sig = blob.url.split("sig=")[1]
    tampered = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    for url in (
        f"{base}?exp={exp}&sig={tampered}",
        f"{base}?exp={int(exp) + 1}&sig={sig}",  # a later expiry is not covered by the MAC
        f"{base}?exp={exp}",
        f"{base}?sig={sig}",
        base,
        f"{webhook_bot.url}/files/{other.key}?exp={exp}&sig={sig}",  # another blob's MAC
        f"{base}?exp={exp}&sig={quote('é' * 43)}",  # non-ASCII signature: 404, not 500
        f"{base}?exp={quote('١٧٩٥٢٦٥٠٢١')}&sig={sig}",  # non-ASCII digits
        f"{base}?exp={quote('²')}&sig={sig}",
        f"{base}?exp={'9' * 5000}&sig={sig}",  # longer than int() takes
        f"{base}?exp=-1&sig={sig}",
    ):
        assert (await fetch(URL(url, encoded=True)))[0] == 404, url
    # A different signing key (another deployment) never validates.
    foreign = LocalBlobStore(store.root, webhook_bot.url, b"another-key", store.ttl)
    assert (await fetch(foreign.url_for(blob.key)))[0] == 404
    assert (await fetch(blob.url))[0] == 200


async def test_files_route_is_404_when_storage_is_not_local(polling_bot: RunningBot) -> None:
    """STORAGE=kie: nothing is served from /files, whatever the URL carries."""
    blob = await polling_bot.services.blobs.put(make_jpeg(8, 8), extension="jpg")
    key = blob.key
    signer = LocalBlobStore(
        polling_bot.settings.data_dir / "files",
        polling_bot.url,
        polling_bot.settings.resolved_signing_key,
        3600,
    )
    (signer.root / key).write_bytes(SECRET)
    assert (await fetch(signer.url_for(key)))[0] == 404


# Traversal -----------------------------------------------------------------------------------


def plant_secrets(bot: RunningBot, tmp_path: Path) -> list[str]:
    """Files outside DATA_DIR/files with blob-shaped names; returns those names."""
    names = [new_key("jpg"), new_key("png")]
    (bot.settings.data_dir / names[0]).write_bytes(SECRET)  # DATA_DIR, beside files/
    (tmp_path / names[1]).write_bytes(SECRET)  # two levels up
    (tmp_path / "passwd").write_bytes(SECRET)
    return names


async def test_path_traversal_never_leaves_the_files_directory(
    webhook_bot: RunningBot, tmp_path: Path
) -> None:
    store = local_store(webhook_bot)
    beside, above = plant_secrets(webhook_bot, tmp_path)
    data_dir = webhook_bot.settings.data_dir.resolve()
    exp = int(time.time()) + 600
    raw_keys = [
        f"../{beside}",
        f"../../{above}",
        "../bot.sqlite3",
        f"..\\{beside}",
        f"{data_dir}/{beside}",
        f"/{data_dir}/{beside}",
        f"{tmp_path}/passwd",
        f"{beside}\x00.jpg",
        f"{beside}\n",
        f"{new_key('jpg')}/../../{beside}",
        "A" * 300 + ".jpg",
        beside,  # the right shape but not under files/
    ]
    targets: list[str] = []
    for key in raw_keys:
        # Even a correctly signed URL (as if the signing key leaked) must not escape.
        query = f"exp={exp}&sig={store.sign(key, exp)}"
        targets += [
            f"/files/{key}?{query}" if "\x00" not in key and "\n" not in key else "",
            f"/files/{quote(key, safe='')}?{query}",
            f"/files/{quote(key, safe='/')}?{query}",
            f"/files/{quote(quote(key, safe=''), safe='')}?{query}",
        ]
    targets += [
        f"/files/%2e%2e%2f{beside}?exp={exp}&sig={store.sign('../' + beside, exp)}",
        f"/files/%2E%2E/{beside}?exp={exp}&sig=x",
        f"/files/..%5c{beside}?exp={exp}&sig={store.sign('..' + chr(92) + beside, exp)}",
        f"/files/..%c0%af{beside}?exp={exp}&sig=x",
        "/files/%00?exp=1&sig=x",
        "/files/" + "B" * 20000 + ".jpg?exp=1&sig=x",  # overlong
        "/files/../../../../etc/passwd",
        "//files/../bot.sqlite3",
        f"/files/{beside}/..?exp={exp}&sig=x",
    ]
    statuses = []
    for target in filter(None, targets):
        for method in ("GET", "HEAD"):
            status, answer = await raw_request(webhook_bot, target, method)
            statuses.append(status)
            assert status != 200 and status < 500, (target, status)
            assert SECRET not in answer and b"SQLite format" not in answer, target
    assert set(statuses) <= {400, 404, 414, 431}
    # The planted files are untouched and a real blob still works after all that.
    assert (data_dir / beside).read_bytes() == SECRET
    blob = await store.put(make_jpeg(8, 8), extension="jpg")
    assert (await raw_request(webhook_bot, blob.url.removeprefix(webhook_bot.url)))[0] == 200


@given(
    key=st.one_of(
        st.just("REAL"),
        st.from_regex(r"[A-Za-z0-9_-]{32}\.(jpg|png|webp)", fullmatch=True),
        st.text(max_size=60),
        st.sampled_from(["..", ".", "../REAL", "%2e%2e", "REAL/..", "\\", "/", "\x00"]),
    ),
    exp=st.one_of(
        st.just("VALID"),
        st.integers(min_value=-(10**15), max_value=10**15).map(str),
        st.text(max_size=20),
    ),
    sig=st.one_of(st.just("VALID"), st.text(max_size=60), st.binary(max_size=32).map(bytes.hex)),
)
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_random_urls_never_500_and_only_the_signed_one_serves(
    served_blob: ServedBlob, key: str, exp: str, sig: str
) -> None:
    bot, blob, data, http = served_blob
    store = local_store(bot)
    valid_exp = blob.url.split("exp=")[1].split("&")[0]
    valid_sig = blob.url.split("sig=")[1]
    key = key.replace("REAL", blob.key)
    exp = valid_exp if exp == "VALID" else exp
    sig = valid_sig if sig == "VALID" else sig
    query = f"exp={quote(exp, safe='')}&sig={quote(sig, safe='')}"
    url = URL(f"{bot.url}/files/{quote(key, safe='')}?{query}", encoded=True)
    status, body, _ = await fetch(url, http=http)
    assert status < 500
    should_serve = (
        key == blob.key
        and sig == valid_sig
        and exp.isascii()
        and exp.isdigit()
        and len(exp) <= 12
        and int(exp) == int(valid_exp)
    )
    if should_serve:
        assert (status, body) == (200, data)
    else:
        assert status != 200 and data not in body, (key, exp, sig)
    assert (store.root / blob.key).read_bytes() == data


ServedBlob = tuple[RunningBot, StoredBlob, bytes, aiohttp.ClientSession]


@pytest.fixture
async def served_blob(webhook_bot: RunningBot) -> AsyncIterator[ServedBlob]:
    """One stored blob on the running bot, and a client session (shared by the examples)."""
    data = make_png(12, 12)
    blob = await webhook_bot.services.blobs.put(data, extension="png")
    async with aiohttp.ClientSession() as http:
        yield webhook_bot, blob, data, http


# The store itself ---------------------------------------------------------------------------


def test_resolve_refuses_anything_but_exact_signed_keys(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "files", "https://bot.example", b"k", 600)
    key = new_key("jpg")
    (store.root / key).write_bytes(b"x")
    now = 1_800_000_000.0
    exp = int(now) + 10
    sig = store.sign(key, exp)
    assert store.resolve(key, str(exp), sig, now=now) == store.root / key
    assert store.resolve(key, str(exp), sig, now=exp) == store.root / key  # last second
    assert store.resolve(key, str(exp), sig, now=exp + 1) is None
    for bad_key in (key + "\n", " " + key, key.upper().replace("JPG", "JPEG"), key[:-4] + ".gif"):
        assert store.resolve(bad_key, str(exp), store.sign(bad_key, exp), now=now) is None
    for bad_exp in ("", "²", "١٢", "1e9", " 1", "+1", "9" * 13):
        assert store.resolve(key, bad_exp, sig, now=now) is None
    for bad_sig in ("", "é" * 43, sig + "=", sig[:-1], "\udcff"):
        assert store.resolve(key, str(exp), bad_sig, now=now) is None


def test_url_for_now_zero_is_honoured(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path, "https://bot.example/", b"k", 600)
    key = new_key("png")
    assert store.url_for(key, now=0).startswith(f"https://bot.example/files/{key}?exp=600&sig=")


async def test_sweep_removes_old_blobs_and_leftovers_only(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "files", "https://bot.example", b"k", 600)
    old = await store.put(b"old", extension="jpg")
    new = await store.put(b"new", extension="png")
    leftover = store.root / (new_key("webp") + ".tmp")
    leftover.write_bytes(b"half")
    foreign = store.root / "keep-me.txt"
    foreign.write_bytes(b"operator's file")
    (store.root / "subdir").mkdir()
    day_ago = time.time() - 86400
    for path in (store.root / old.key, leftover, foreign):
        os.utime(path, (day_ago, day_ago))

    assert await store.sweep(older_than=time.time() - 3600) == 2
    assert sorted(p.name for p in store.root.iterdir()) == sorted(
        [new.key, "keep-me.txt", "subdir"]
    )
    assert await store.sweep(older_than=time.time() + 60) == 1
    assert not (store.root / new.key).exists()


async def test_unwritable_directory_is_storage_unavailable(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "files", "https://bot.example", b"k", 600)
    store.root.rmdir()
    store.root.write_bytes(b"not a directory")
    with pytest.raises(StorageUnavailable) as info:
        await store.put(b"x", extension="jpg")
    assert info.value.code == "storage_unavailable"


async def test_permission_denied_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBlobStore(tmp_path / "files", "https://bot.example", b"k", 600)

    def denied(path: Path, data: bytes) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(store, "_write", denied)
    with pytest.raises(StorageMisconfigured) as info:
        await store.put(b"x", extension="jpg")
    assert info.value.code == "storage_misconfigured"


def test_keys_are_random_and_well_formed() -> None:
    keys = {new_key("jpg") for _ in range(200)}
    assert len(keys) == 200 and all(is_key(key) for key in keys)
    with pytest.raises(ValueError):
        new_key("gif")
