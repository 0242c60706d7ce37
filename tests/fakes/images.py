"""Tiny Pillow helpers that make test images as encoded bytes."""

from __future__ import annotations

import io
import random

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
