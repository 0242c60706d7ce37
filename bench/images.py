"""Peak memory of normalizing one input photo, per kind of input (`--phases images`).

Each input is made here (compressed zeros announce a huge image in a small file) and
normalized with the default limits (4096 px sides, as most catalog models) in a fresh
child process; the peak is that process's high-water mark minus its size just before
(`tests.fakes.images.normalize_peak`). The issue this answers: a 372 KiB PNG took about
530 MiB to normalize, and nothing bounded it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable

from bench import ROOT
from bench.measure import Json
from bench.phase import progress
from tests.fakes.images import blank_webp, gradient_jpeg, normalize_peak, zero_png

MB = 1_000_000


def _heif(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    from bot.images.decode import ensure_heif_opener

    ensure_heif_opener()
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="HEIF", quality=80)
    return buf.getvalue()


def inputs() -> list[tuple[str, Callable[[], bytes]]]:
    made: list[tuple[str, Callable[[], bytes]]] = [
        ("JPEG 8000x6000 (48 MP camera photo)", lambda: gradient_jpeg(8000, 6000)),
        ("PNG bomb: 16-bit RGBA 7000x7000 zeros", lambda: zero_png(7000, 7000)),
        ("PNG bomb: 16-bit RGBA 8000x8000 zeros", lambda: zero_png(8000, 8000)),
        ("PNG: 16-bit gray 7000x7000 zeros", lambda: zero_png(7000, 7000, color_type=0)),
        (
            "PNG: palette + transparency 7000x7000",
            lambda: zero_png(7000, 7000, color_type=3, bit_depth=8),
        ),
        ("WebP bomb: lossless 7000x7000 blank", lambda: blank_webp(7000, 7000)),
    ]
    if importlib.util.find_spec("pillow_heif") is not None:
        made += [
            ("HEIF 7000x4700 (33 MP)", lambda: _heif(7000, 4700)),
            ("HEIF 5000x4000 (20 MP)", lambda: _heif(5000, 4000)),
        ]
    return made


_AT_ONCE_CHILD = r"""
import asyncio, json, sys, time
from bot.images.gate import Normalizer
from bot.images.limits import DEFAULT_LIMITS

def memory(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

async def main(data, count, budget):
    normalizer = Normalizer(budget << 20)
    await asyncio.gather(*(normalizer.normalize(data, DEFAULT_LIMITS) for _ in range(count)))

data = sys.stdin.buffer.read()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")
before, started = memory("VmRSS"), time.monotonic()
asyncio.run(main(data, int(sys.argv[1]), int(sys.argv[2])))
print(json.dumps({"peak_bytes": memory("VmHWM") - before,
                  "seconds": round(time.monotonic() - started, 2)}))
"""


def at_once(data: bytes, count: int, budget_mb: int) -> Json:
    """``count`` normalizations of ``data`` started together through the memory budget, in
    a fresh child process: its peak and the time until the last one is done."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _AT_ONCE_CHILD, str(count), str(budget_mb)],
        input=data,
        capture_output=True,
        env=env,
        cwd=str(ROOT),
        check=True,
        timeout=600,
    )
    result: Json = json.loads(done.stdout)
    return result


def measure() -> list[Json]:
    rows: list[Json] = []
    for name, make in inputs():
        data = make()
        result = normalize_peak(data)
        peak = result["peak_bytes"]
        assert isinstance(peak, int)
        size, fmt = result.get("size"), result.get("format")
        outcome = (
            f"{size[0]}x{size[1]} {fmt}"
            if isinstance(size, list)
            else f"refused ({result.get('error')})"
        )
        row: Json = {
            "input": name,
            "file_kb": round(len(data) / 1024),
            "peak_mb": round(peak / MB),
            "seconds": result["seconds"],
            "outcome": outcome,
        }
        rows.append(row)
        progress(f"  {name}: {row['file_kb']} KB file, peak {row['peak_mb']} MB, {outcome}")
    bomb = zero_png(7000, 7000)
    for count in (1, 3):
        crowd = at_once(bomb, count, budget_mb=600)
        row = {
            "input": f"{count} x PNG bomb 7000x7000 at once, NORMALIZE_MEMORY_BUDGET_MB=600",
            "file_kb": round(len(bomb) / 1024),
            "peak_mb": round(crowd["peak_bytes"] / MB),
            "seconds": crowd["seconds"],
            "outcome": "all normalized",
            "at_once": True,
        }
        rows.append(row)
        progress(f"  {row['input']}: peak {row['peak_mb']} MB, {row['seconds']} s")
    return rows


async def image_phase(results: Json) -> None:
    progress("phase: peak memory of normalizing one image, per input")
    results["image_memory"] = await asyncio.to_thread(measure)
