"""Tiny Pillow helpers that make test images as encoded bytes."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from PIL import Image

Color = str | tuple[int, int, int] | tuple[int, int, int, int]


def make_image(
    fmt: str,
    width: int = 64,
    height: int = 48,
    color: Color = (200, 60, 40),
    *,
    mode: str = "RGB",
    exif_orientation: int | None = None,
    **save_kwargs: object,
) -> bytes:
    """Encode a solid `width`×`height` image in Pillow format `fmt` (JPEG, PNG, WEBP…)."""
    img = Image.new(mode, (width, height), color)
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        save_kwargs["exif"] = exif.tobytes()
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save_kwargs)
    return buf.getvalue()


def make_jpeg(
    width: int = 64,
    height: int = 48,
    color: Color = (200, 60, 40),
    *,
    quality: int = 90,
    exif_orientation: int | None = None,
) -> bytes:
    """A solid JPEG; `exif_orientation` (1–8) adds an EXIF Orientation tag."""
    return make_image(
        "JPEG", width, height, color, quality=quality, exif_orientation=exif_orientation
    )


def make_png(
    width: int = 64, height: int = 48, color: Color = (200, 60, 40), *, alpha: bool = False
) -> bytes:
    """A solid PNG, RGBA when `alpha` (the colour then may carry an alpha value)."""
    return make_image("PNG", width, height, color, mode="RGBA" if alpha else "RGB")


def make_webp(width: int = 64, height: int = 48, color: Color = (200, 60, 40)) -> bytes:
    """A solid WebP."""
    return make_image("WEBP", width, height, color)


def make_gif(width: int = 64, height: int = 48, color: Color = (200, 60, 40)) -> bytes:
    """A solid GIF (a format most providers refuse)."""
    return make_image("GIF", width, height, color)


def make_bmp(width: int = 64, height: int = 48, color: Color = (200, 60, 40)) -> bytes:
    """A solid BMP."""
    return make_image("BMP", width, height, color)


def make_tiff(width: int = 64, height: int = 48, color: Color = (200, 60, 40)) -> bytes:
    """A solid TIFF."""
    return make_image("TIFF", width, height, color)


def make_mask_png(width: int, height: int, box: tuple[int, int, int, int] | None = None) -> bytes:
    """A black PNG mask with a white `box` (left, top, right, bottom) marking the edit area."""
    img = Image.new("L", (width, height), 0)
    left, top, right, bottom = box or (width // 4, height // 4, 3 * width // 4, 3 * height // 4)
    img.paste(255, (left, top, right, bottom))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_noise_png(width: int, height: int, *, seed: int = 0) -> bytes:
    """Random-noise RGB PNG: incompressible, about width*height*3 bytes (for size limits)."""
    rnd = random.Random(seed)
    img = Image.frombytes("RGB", (width, height), rnd.randbytes(width * height * 3))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=0)
    return buf.getvalue()


def image_info(data: bytes) -> tuple[str, tuple[int, int]]:
    """(Pillow format, (width, height)) of encoded image bytes; raises OSError if not an image."""
    with Image.open(io.BytesIO(data)) as img:
        return str(img.format), img.size


def pixel(data: bytes, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    """The RGB value at `xy` of encoded image bytes."""
    with Image.open(io.BytesIO(data)) as img:
        value = img.convert("RGB").getpixel(xy)
    assert isinstance(value, tuple)
    return value


# ------------------------------------------------------------ decode amplification


def zero_png(
    width: int, height: int, *, color_type: int = 6, bit_depth: int = 16, level: int = 9
) -> bytes:
    """A PNG of all-zero pixels, written row by row: a few hundred KiB that announce (and
    really decode to) width × height pixels. Colour type 6 is RGBA, 0 gray, 3 palette;
    a lower zlib ``level`` is quicker to make and gives a larger file."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    row = b"\x00" * (1 + (width * channels * bit_depth + 7) // 8)  # filter byte + pixels
    packer = zlib.compressobj(level)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    extra = chunk(b"PLTE", b"\x00\x00\x00") + chunk(b"tRNS", b"\x00") if color_type == 3 else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + extra
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def blank_webp(width: int, height: int) -> bytes:
    """A lossless WebP of one colour: about 2 KB that decode to width × height × 8 bytes
    (libwebp's buffer and Pillow's copy)."""
    return make_image("WEBP", width, height, (0, 0, 0, 0), mode="RGBA", lossless=True)


def gradient_jpeg(width: int, height: int, *, quality: int = 90) -> bytes:
    """A large, smooth JPEG (quick to make; a camera photo's size)."""
    img = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


_PEAK_CHILD = r"""
import json, sys, time
from bot.images.limits import ImageError, ImageLimits
from bot.images.decode import ensure_heif_opener
from bot.images.normalize import normalize

def memory(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)

ensure_heif_opener()
data = sys.stdin.buffer.read()
limits = ImageLimits(**json.loads(sys.argv[1]))
try:  # the peak so far (imports, reading stdin) is forgotten: only normalize() counts
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
except OSError:
    pass
before = memory("VmRSS")
started = time.monotonic()
try:
    out = normalize(data, limits)
    result = {"size": [out.width, out.height], "format": out.content_type}
except ImageError as exc:
    result = {"error": exc.code.value}
result["peak_bytes"] = memory("VmHWM") - before
result["seconds"] = round(time.monotonic() - started, 2)
print(json.dumps(result))
"""


def normalize_peak(data: bytes, **limits: object) -> dict[str, object]:
    """Normalize ``data`` in a fresh child process and report its peak memory.

    Returns ``{"peak_bytes": ..., "seconds": ..., "size": [w, h], "format": ...}`` or
    ``{"error": code, "peak_bytes": ..., "seconds": ...}``. The peak is the process's
    high-water mark (VmHWM, reset first through /proc/self/clear_refs) minus its resident
    size just before the call; ru_maxrss would not do, since a child inherits its
    parent's high-water mark across exec.
    """
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_CHILD, json.dumps(limits)],
        input=data,
        capture_output=True,
        env=env,
        check=True,
        timeout=300,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result
