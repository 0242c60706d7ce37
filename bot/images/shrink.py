"""Decoding and downscaling at bounded memory: the cost of an image, known from its header.

A small file can announce a huge image (a few hundred KiB of compressed zeros decode to
hundreds of MB), and every full-size copy made on the way to the model's size costs as much
again. So, before anything is decoded, :func:`plan` works out from the header how the
image will be decoded and shrunk and what that costs at the peak; `normalize` refuses an
image whose plan exceeds :attr:`ImageLimits.max_decode_bytes` and the submission phase
reserves the planned bytes from the process-wide budget (`bot.images.gate`).

The plan keeps the peak low in three ways:

* JPEG is decoded by libjpeg at 1/2, 1/4 or 1/8 scale (``draft``) when the target is
  that much smaller;
* an image much larger than its target is converted and ``reduce``d (box filter, integer
  factor) in strips of rows into a small image, so there is never a second full-size copy;
  the final LANCZOS pass then works on that small image;
* intermediates are closed as soon as the next step has its copy.

The figures are Pillow's own storage (RGB takes 4 bytes a pixel, like RGBA) plus what the
decoders hold beside it while decoding (measured: libheif, libavif and libwebp decode
into a buffer of their own first). `python -m bench.images` measures the real peaks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, cast

from PIL import Image

# Bytes per pixel a decoder holds beside Pillow's image while decoding (measured).
DECODER_OVERHEAD: Final = {"HEIF": 4, "AVIF": 7, "WEBP": 5}
# Reduce so that at least this many times the target is left for the final LANCZOS pass
# (as Pillow's thumbnail does), unless that would not fit the budget.
REDUCING_GAP: Final = 2.0
STRIP_ROWS: Final = 256
_ALPHA_MODES: Final = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_GRAY_MODES: Final = frozenset({"I", "F"})  # and every "I;16..." mode


def pixel_bytes(mode: str) -> int:
    """Bytes per pixel Pillow stores for ``mode`` (three bands are padded to four)."""
    if mode in {"1", "L", "P"}:
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _is_deep_gray(mode: str) -> bool:
    return mode in _GRAY_MODES or mode.startswith("I;")


def has_alpha(im: Image.Image) -> bool:
    return im.mode in _ALPHA_MODES or (
        im.mode in {"P", "L", "RGB", "1"} and "transparency" in im.info
    )


def working_mode(im: Image.Image) -> str:
    """The mode an image is resized, colour-managed and encoded in: L, RGB, RGBA or CMYK."""
    if has_alpha(im):
        return "RGBA"
    if im.mode in {"L", "RGB", "CMYK", "1"} or _is_deep_gray(im.mode):
        return "L" if im.mode != "RGB" and im.mode != "CMYK" else im.mode
    return "RGB"  # P, YCbCr, HSV, ...


def gray_scale(im: Image.Image) -> float:
    """Factor that brings a 16/32-bit integer or float gray image into 0..255 (Pillow
    would clip), taken from the whole image so that every strip is scaled alike."""
    high = cast("tuple[float, float]", im.getextrema())[1]
    if im.mode == "F":
        return 255.0 if high <= 1.0 else (255.0 / high if high > 255 else 1.0)
    return 1.0 / 256 if high > 255 else 1.0


def convert(im: Image.Image, mode: str, scale: float = 1.0) -> Image.Image:
    """``im`` in ``mode`` (from :func:`working_mode`); ``im`` itself when it already is.

    Raises ValueError for modes Pillow cannot convert (e.g. LAB)."""
    if im.mode == mode and "transparency" not in im.info:
        return im
    if _is_deep_gray(im.mode):
        with im.convert("F") as as_float, as_float.point(lambda v: v * scale) as scaled:
            return scaled.convert("L")
    return im.convert(mode)


@dataclass(frozen=True)
class Plan:
    """How an image is decoded and shrunk, and what that costs at the peak."""

    draft: tuple[int, int] | None
    """JPEG: the size to ask ``draft()`` for (libjpeg scales while decoding)."""
    decoded: tuple[int, int]
    """Size of the decoded pixels."""
    factor: int
    """``reduce()`` factor applied strip by strip after decoding (1: none)."""
    peak: int
    """Estimated peak bytes of decoding and normalizing."""


def _draft_size(size: tuple[int, int], request: tuple[int, int]) -> tuple[int, int]:
    # The scale libjpeg picks in Pillow's JpegImageFile.draft for this request.
    scale = min(size[0] // request[0], size[1] // request[1])
    a = next((a for a in (8, 4, 2) if scale >= a), 1)
    return -(-size[0] // a), -(-size[1] // a)


def reduced_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    return -(-size[0] // factor), -(-size[1] // factor)


def cost(
    fmt: str,
    mode: str,
    working: str,
    decoded: tuple[int, int],
    target: tuple[int, int],
    factor: int,
) -> int:
    """Estimated peak bytes, the largest of three stages: decoding (the pixels plus the
    decoder's own buffer), converting or reducing (the decoded pixels plus the working
    copy), and the rest once the decoded pixels are closed (the working image, the copy a
    resize makes of it and its intermediate pass, the final image and the encoder's
    copy)."""
    pixels = decoded[0] * decoded[1]
    stored = pixels * pixel_bytes(mode)
    loading = stored + pixels * DECODER_OVERHEAD.get(fmt, 0)
    work = pixel_bytes(working)
    if factor > 1:
        small = reduced_size(decoded, factor)
        small_bytes = small[0] * small[1] * work
        strip = decoded[0] * STRIP_ROWS * (4 + work)
        converting = stored + small_bytes + strip
        final = min(small[0] * small[1], target[0] * target[1])
        rest = small_bytes * 2 + final * 4 * 2
    else:
        if mode == working:
            converted = 0
        elif _is_deep_gray(mode):
            converted = pixels * 9  # float copy, scaled float copy, 8-bit result
        else:
            converted = pixels * work
        converting = stored + converted
        resizing = decoded != target
        premultiplied = pixels * 4 if working == "RGBA" and resizing else 0
        # Pillow resizes in two passes: rows first, into target width x source height.
        between = target[0] * decoded[1] * 4 if resizing else 0
        final = target[0] * target[1] * 4
        rest = pixels * work + premultiplied + max(between + final, final * 2)
    return max(loading, converting, rest)


def plan(
    im: Image.Image,
    target: tuple[int, int],
    *,
    budget: int,
    min_side: int,
) -> Plan:
    """The cheapest decoding within ``budget`` that still gives ``target`` (or, if nothing
    fits, the cheapest one: its ``peak`` then exceeds ``budget``)."""
    fmt = im.format or ""
    working = working_mode(im)
    requests: list[tuple[int, int] | None] = [None]
    if fmt in {"JPEG", "MPO"} and im.size != target:
        half = (max(1, target[0] // 2), max(1, target[1] // 2))
        requests = [(target[0] * 2, target[1] * 2), target, half]
    options: list[tuple[tuple[int, int] | None, tuple[int, int], int]] = []
    for request in requests:
        decoded = im.size if request is None else _draft_size(im.size, request)
        ratio = min(decoded[0] / target[0], decoded[1] / target[1])
        factors = [max(1, int(ratio / REDUCING_GAP))]
        if ratio > 1:
            factors.append(max(2, int(ratio)))
        options += [(request, decoded, factor) for factor in dict.fromkeys(factors)]
    # Decoding smaller (JPEG) beats decoding in full and reducing afterwards.
    options.sort(key=lambda option: option[2] > 1)
    best: Plan | None = None
    for request, decoded, factor in options:
        if factor > 1 and min(reduced_size(decoded, factor)) < min_side:
            continue
        peak = cost(fmt, im.mode, working, decoded, target, factor)
        candidate = Plan(request, decoded, factor, peak)
        if peak <= budget:
            return candidate
        if best is None or peak < best.peak:
            best = candidate
    assert best is not None
    return best


def to_working(im: Image.Image, factor: int) -> Image.Image:
    """``im`` converted to its working mode and reduced by ``factor``.

    With ``factor > 1`` the work goes strip by strip into the small result, so no second
    full-size copy is ever made. May return ``im`` itself (nothing to do)."""
    mode = working_mode(im)
    scale = gray_scale(im) if _is_deep_gray(im.mode) else 1.0
    if factor <= 1:
        return convert(im, mode, scale)
    width, height = im.size
    out = Image.new(mode, reduced_size(im.size, factor))
    rows = factor * max(1, math.ceil(STRIP_ROWS / factor))
    for top in range(0, height, rows):
        with im.crop((0, top, width, min(height, top + rows))) as strip:
            converted = convert(strip, mode, scale)
            with converted.reduce(factor) as small:
                out.paste(small, (0, top // factor))
            if converted is not strip:
                converted.close()
    return out


def drop_dead_alpha(im: Image.Image) -> Image.Image:
    """RGB copy of an RGBA image whose alpha is opaque everywhere (else ``im`` itself)."""
    if im.mode != "RGBA":
        return im
    with im.getchannel("A") as alpha:
        opaque = alpha.getextrema()[0] == 255
    if not opaque:
        return im
    rgb = im.convert("RGB")
    im.close()
    return rgb
