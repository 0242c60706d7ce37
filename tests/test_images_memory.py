"""Decode amplification: one image's peak memory, and the budget of all at once.

Small files that decode to hundreds of MB are made here (compressed zeros); each is
normalized in a fresh child process whose peak memory is read from /proc.
"""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable

import pytest
from PIL import Image

import bot.images.gate as gate_module
from bot.images.gate import MemoryBudget, Normalizer
from bot.images.limits import ImageError, ImageErrorCode, ImageLimits, NormalizedImage
from bot.images.normalize import normalize, normalize_cost
from bot.images.shrink import plan
from tests.fakes.images import (
    blank_webp,
    gradient_jpeg,
    make_png,
    normalize_peak,
    zero_png,
)

MB = 1_000_000
PEAK_CEILING = 300 * MB  # what one image may take, whatever it is


def test_png_bomb_within_the_pixel_ceiling_stays_under_the_memory_ceiling() -> None:
    # 49 MP of RGBA (under the 50 MP ceiling): about 550 MB to normalize before the plan.
    data = zero_png(7000, 7000, bit_depth=8, level=1)
    result = normalize_peak(data)
    assert "error" not in result
    assert isinstance(result["peak_bytes"], int)
    assert result["peak_bytes"] < PEAK_CEILING, result
    # Reduced in strips by 2 instead of another full-size copy: no upscaling back.
    assert result["size"] == [3500, 3500]


def test_webp_bomb_is_refused_before_decoding() -> None:
    data = blank_webp(7000, 7000)  # 2 KB that libwebp and Pillow decode to about 400 MB
    assert len(data) < 10_000
    result = normalize_peak(data)
    assert result["error"] == ImageErrorCode.TOO_MANY_PIXELS.value
    assert isinstance(result["peak_bytes"], int)
    assert result["peak_bytes"] < 20 * MB, result


def test_over_budget_refusal_names_the_size_and_a_pixel_count_that_would_fit() -> None:
    data = blank_webp(7000, 7000)
    with pytest.raises(ImageError) as info:
        normalize_cost(data)
    error = info.value
    assert error.code is ImageErrorCode.TOO_MANY_PIXELS
    assert (error.params["width"], error.params["height"]) == (7000, 7000)
    fitting = error.params["max_pixels"]
    assert isinstance(fitting, int) and 0 < fitting < 7000 * 7000
    with pytest.raises(ImageError):
        normalize(data)


def test_large_jpeg_is_decoded_at_a_reduced_scale() -> None:
    data = gradient_jpeg(8000, 6000)  # 48 MP: 192 MB decoded in full
    result = normalize_peak(data)
    assert isinstance(result["peak_bytes"], int)
    # libjpeg decodes at 1/2 (4000x3000) and that is kept rather than upscaled to 4096.
    assert result["size"] == [4000, 3000]
    assert result["peak_bytes"] < 100 * MB, result


def test_sixteen_bit_gray_is_reduced_in_strips() -> None:
    data = zero_png(7000, 7000, color_type=0, bit_depth=16, level=1)
    result = normalize_peak(data)
    assert isinstance(result["peak_bytes"], int)
    assert result["peak_bytes"] < PEAK_CEILING, result
    assert result["size"] == [3500, 3500]


@pytest.mark.parametrize(
    ("make", "max_side"),
    [
        (lambda: zero_png(4000, 3000, bit_depth=8, level=1), 1024),  # reduced in strips
        (lambda: zero_png(6000, 5000, color_type=2, bit_depth=8, level=1), 4096),  # in full
    ],
    ids=["rgba-strips", "rgb-full-size"],
)
def test_estimate_covers_the_real_peak(make: Callable[[], bytes], max_side: int) -> None:
    # The planned peak is what the gate reserves: it must not undercount much.
    data = make()
    estimate = normalize_cost(data, ImageLimits(max_side=max_side))
    result = normalize_peak(data, max_side=max_side)
    assert isinstance(result["peak_bytes"], int)
    assert result["peak_bytes"] <= estimate * 1.15, (estimate, result)


def test_trusted_photo_within_limits_costs_its_own_size() -> None:
    data = make_png(64, 48)
    assert normalize_cost(data) > 0
    jpeg = gradient_jpeg(640, 480)
    assert normalize_cost(jpeg, trusted_jpeg=True) == len(jpeg)


# ------------------------------------------------------------------- the budget


async def test_concurrent_normalizations_never_exceed_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = zero_png(2000, 2000, bit_depth=8, level=1)
    limits = ImageLimits(max_side=512)
    cost = normalize_cost(data, limits)
    normalizer = Normalizer(budget_bytes=cost * 2 + cost // 2)  # room for two
    lock = threading.Lock()
    running: list[int] = []
    most = 0
    proceed = threading.Event()

    def instrumented(raw: bytes, lim: ImageLimits, *, trusted_jpeg: bool) -> NormalizedImage:
        nonlocal most
        with lock:
            running.append(cost)
            most = max(most, sum(running))
        proceed.wait(timeout=30)
        try:
            return normalize(raw, lim, trusted_jpeg=trusted_jpeg)
        finally:
            with lock:
                running.remove(cost)

    monkeypatch.setattr(gate_module, "normalize", instrumented)
    jobs = [
        asyncio.ensure_future(normalizer.normalize(data, limits, trusted_jpeg=False))
        for _ in range(6)
    ]
    # Every job has its estimate: two run, four wait.
    await _until(lambda: normalizer.memory.waiting == 4 and len(running) == 2)
    assert normalizer.memory.in_use == 2 * cost
    proceed.set()
    results = await asyncio.gather(*jobs)
    assert [r.width for r in results] == [512] * 6
    assert most == 2 * cost
    assert normalizer.memory.peak <= normalizer.memory.budget
    assert normalizer.memory.in_use == 0


async def test_one_image_larger_than_the_budget_runs_alone() -> None:
    budget = MemoryBudget(100)
    order: list[str] = []

    async def job(name: str, amount: int, release: asyncio.Event) -> None:
        async with budget.reserve(amount):
            order.append(f"{name} in ({budget.in_use})")
            await release.wait()
        order.append(f"{name} out")

    small_done, big_done, late_done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    small = asyncio.ensure_future(job("small", 60, small_done))
    await _until(lambda: bool(order))
    big = asyncio.ensure_future(job("big", 500, big_done))
    late = asyncio.ensure_future(job("late", 10, late_done))
    for _ in range(10):
        await asyncio.sleep(0)
    # The big one waits for the small one; the late small one does not overtake it.
    assert order == ["small in (60)"]
    small_done.set()
    await _until(lambda: "big in (100)" in order)
    for _ in range(10):
        await asyncio.sleep(0)
    assert "late in" not in " ".join(order)
    big_done.set()
    late_done.set()
    await asyncio.gather(small, big, late)
    assert order == [
        "small in (60)",
        "small out",
        "big in (100)",
        "big out",
        "late in (10)",
        "late out",
    ]
    assert budget.in_use == 0


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    budget = MemoryBudget(100)
    held = await budget.acquire(80)
    waiter = asyncio.ensure_future(budget.acquire(50))
    for _ in range(5):
        await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await budget.acquire(20) == 20  # not stuck behind the cancelled one
    budget.release(held)
    budget.release(20)
    assert budget.in_use == 0


async def test_a_cancelled_normalization_keeps_its_bytes_until_its_thread_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = make_png(640, 480)
    limits = ImageLimits()
    normalizer = Normalizer(budget_bytes=normalize_cost(data, limits))
    started, finish = threading.Event(), threading.Event()

    def slow(raw: bytes, lim: ImageLimits, *, trusted_jpeg: bool) -> NormalizedImage:
        started.set()
        finish.wait(timeout=30)
        return normalize(raw, lim, trusted_jpeg=trusted_jpeg)

    monkeypatch.setattr(gate_module, "normalize", slow)
    job = asyncio.ensure_future(normalizer.normalize(data, limits))
    await _until(started.is_set)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    # The thread still decodes: a newcomer must not be admitted beside it.
    assert normalizer.memory.in_use == normalizer.memory.budget
    finish.set()
    await _until(lambda: normalizer.memory.in_use == 0)


async def _until(check: Callable[[], bool], within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


# ------------------------------------------------------- what the plan produces


def _scene(mode: str, size: tuple[int, int]) -> Image.Image:
    """A gradient with a solid red block top left and, with alpha, a transparent bottom."""
    im = Image.linear_gradient("L").resize(size).convert("RGBA")
    im.paste((255, 0, 0, 255), (0, 0, size[0] // 3, size[1] // 3))
    if mode == "RGBA":
        im.paste((0, 0, 0, 0), (0, size[1] * 2 // 3, size[0], size[1]))
        return im
    if mode == "P":
        return im.convert("RGB").quantize(64)
    return im.convert(mode)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L"])
def test_strip_reduction_looks_like_a_direct_resize(mode: str) -> None:
    source = _scene(mode, (2400, 1800))
    buffer = io.BytesIO()
    source.save(buffer, format="PNG")
    limits = ImageLimits(max_side=300, formats=frozenset({"PNG"}))
    chosen = plan(Image.open(io.BytesIO(buffer.getvalue())), (300, 225), budget=1 << 30, min_side=1)
    assert chosen.factor == 4  # reduced in strips, then resized
    out = Image.open(io.BytesIO(normalize(buffer.getvalue(), limits).data))
    expected = source.convert("RGBA").resize((300, 225), Image.Resampling.LANCZOS)
    assert out.size == expected.size
    got = out.convert("RGBA")
    for xy in [(20, 20), (150, 100), (290, 120), (150, 200), (10, 215)]:
        a, b = got.getpixel(xy), expected.getpixel(xy)
        assert isinstance(a, tuple) and isinstance(b, tuple)
        assert all(abs(x - y) <= 12 for x, y in zip(a, b, strict=True)), (xy, a, b)
