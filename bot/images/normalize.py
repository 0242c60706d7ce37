"""Normalisation of user-supplied photos before they are handed to an AI provider.

Users send Telegram-compressed photos and documents in many formats (JPEG, PNG, WebP,
HEIC/HEIF, AVIF, BMP, TIFF, GIF, ...).  :func:`normalize` turns such input into a file
the chosen model accepts:

* the input is identified from its header and refused *before decoding* when it is
  empty, not an image, of a format we do not decode, announces more pixels than
  :attr:`ImageLimits.max_input_pixels`, or would take more memory than
  :attr:`ImageLimits.max_decode_bytes` to decode and shrink (decompression bombs; the
  plan, in `bot.images.shrink`, also decodes JPEG at a reduced scale and reduces large
  images in strips; :func:`normalize_cost` gives its estimate to the memory budget);
* only the first frame of animated images (GIF, APNG, animated WebP) is used;
* EXIF orientation is applied to the pixels (also XMP orientation; HEIF transformations
  are applied by libheif and TIFF orientation by Pillow while decoding);
* **all** metadata is dropped: EXIF (including GPS), XMP, IPTC, comments, PNG text
  chunks.  Embedded ICC profiles are *converted* to sRGB (so Display-P3 iPhone photos
  keep their colours) and then dropped too: every output is untagged sRGB, which is
  what consumers assume for untagged images;
* the image is scaled to fit ``min_side``/``max_side`` and encoded in one of the
  formats the model accepts, within ``max_bytes`` (lowering JPEG/WebP quality and
  dimensions a few times when needed).

Errors are reported as :class:`ImageError` with a machine-readable
:class:`ImageErrorCode` and formatting ``params`` so the bot can show a localized message.

Pillow's global state is left alone: ``ImageFile.LOAD_TRUNCATED_IMAGES`` and
``Image.MAX_IMAGE_PIXELS`` are never changed.  Pillow's decompression-bomb *warning* is
silenced with a local warnings filter while opening (our own header check is the
authority and reports the size; the filter is serialised by a lock because
``warnings.catch_warnings`` is process-global); Pillow's ``DecompressionBombError``
becomes ``TOO_MANY_PIXELS``.

All functions are synchronous and CPU-bound; call them from a worker thread
(``asyncio.to_thread``).  Pillow releases the GIL while decoding, resizing and encoding.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Mapping
from typing import Final

from PIL import Image, ImageCms, ImageFile

from bot.images.decode import (
    DECODE_ERRORS,
    ORIENTATION_TRANSPOSE,
    format_name,
    open_image,
    read_orientation,
    too_many_pixels,
)
from bot.images.limits import (
    DEFAULT_LIMITS,
    ImageError,
    ImageErrorCode,
    ImageLimits,
    NormalizedImage,
)
from bot.images.shrink import Plan, drop_dead_alpha, plan, to_working

logger = logging.getLogger(__name__)
_CONTENT_TYPES: Final[Mapping[str, tuple[str, str]]] = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}

_DEFAULT_QUALITY: Final = 90  # JPEG / WebP quality of the first encoding
_SHRINK_START_QUALITY: Final = 85  # first quality tried when the result is too big
_SHRINK_QUALITY_STEP: Final = 10
_SHRINK_MIN_QUALITY: Final = 60
_SHRINK_ATTEMPTS: Final = 6
_WHITE: Final = (255, 255, 255)

# JPEG segments a metadata-free JPEG may carry on the trusted fast path:
# APP0 (JFIF/JFXX) and APP14 (Adobe colour transform flag).  APP1 (EXIF/XMP), APP2
# (ICC, MPF), APP13 (IPTC) and COM segments force a re-encode.
_FAST_PATH_SEGMENTS: Final = frozenset({"APP0", "APP14"})

# ------------------------------------------------------------------------- geometry


def _too_small(width: int, height: int, limits: ImageLimits) -> ImageError:
    return ImageError(
        ImageErrorCode.TOO_SMALL,
        f"{width}x{height} cannot fit sides {limits.min_side}..{limits.max_side}",
        {
            "width": width,
            "height": height,
            "min_side": limits.min_side,
            "max_side": limits.max_side,
        },
    )


def _target_size(width: int, height: int, limits: ImageLimits) -> tuple[int, int]:
    """Size that satisfies ``min_side``/``max_side`` with the aspect ratio kept.

    The longer side is brought down to ``max_side``; a shorter side below ``min_side``
    is brought up to it (if ``min_side_upscale``).  Raises ``TOO_SMALL`` when the
    aspect ratio makes both impossible at once.
    """
    long_side, short_side = max(width, height), min(width, height)
    if long_side > limits.max_side:
        new_long = limits.max_side
        new_short = max(1, round(short_side * limits.max_side / long_side))
        if new_short < limits.min_side:
            raise _too_small(width, height, limits)
    elif short_side < limits.min_side:
        new_short = limits.min_side
        new_long = round(long_side * limits.min_side / short_side)
        if not limits.min_side_upscale or new_long > limits.max_side:
            raise _too_small(width, height, limits)
    else:
        return width, height
    return (new_long, new_short) if width >= height else (new_short, new_long)


# ----------------------------------------------------------------------- conversion


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    """Close ``old`` unless it is ``new``; return ``new``."""
    if new is not old:
        old.close()
    return new


_srgb_profile: ImageCms.ImageCmsProfile | None = None


def _srgb() -> ImageCms.ImageCmsProfile:
    global _srgb_profile
    if _srgb_profile is None:
        _srgb_profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _srgb_profile


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """Apply the embedded ICC profile (to sRGB) and return an RGB or RGBA image."""
    if icc and im.mode in {"RGB", "RGBA", "CMYK", "L"}:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            description = ImageCms.getProfileDescription(source)
            if not (im.mode in {"RGB", "RGBA"} and "sRGB" in description):
                out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
                converted = ImageCms.profileToProfile(im, source, _srgb(), outputMode=out_mode)
                if converted is not None:
                    return _replace(im, converted)
        except (ImageCms.PyCMSError, *DECODE_ERRORS) as exc:
            logger.debug("ignoring unusable ICC profile: %r", exc)
    if im.mode in {"RGB", "RGBA"}:
        return im
    return _replace(im, im.convert("RGB"))


def _flatten(im: Image.Image) -> Image.Image:
    """RGB version of ``im``; transparency becomes white."""
    if im.mode == "RGB":
        return im
    background = Image.new("RGB", im.size, _WHITE)
    with im.getchannel("A") as alpha:
        background.paste(im, mask=alpha)
    return background


def _choose_format(source_format: str, limits: ImageLimits) -> str:
    if source_format in limits.formats:
        return source_format
    for candidate in ("JPEG", "PNG", "WEBP"):
        if candidate in limits.formats:
            return candidate
    raise AssertionError("unreachable: ImageLimits.formats is never empty")


def _encode(im: Image.Image, fmt: str, quality: int) -> bytes:
    """Encode without any metadata (``info`` would leak e.g. JPEG comments)."""
    im.info = {}
    if fmt == "JPEG" and im.mode != "RGB":
        with _flatten(im) as flat:
            return _encode(flat, fmt, quality)
    buffer = io.BytesIO()
    if fmt == "JPEG":
        im.save(buffer, format="JPEG", quality=quality)
    elif fmt == "WEBP":
        im.save(buffer, format="WEBP", quality=quality, method=4)
    else:
        im.save(buffer, format="PNG", compress_level=6)
    return buffer.getvalue()


def _shrink_factor(current_bytes: int, max_bytes: int) -> float:
    # Encoded size grows roughly with the pixel count, so scale sides by sqrt(ratio).
    return min(0.9, max(0.25, math.sqrt(max_bytes / current_bytes) * 0.95))


def _fit_bytes(im: Image.Image, fmt: str, limits: ImageLimits) -> tuple[bytes, str, int, int]:
    """Encode ``im`` as ``fmt``; when too big, lower the quality and size a few times."""
    data = _encode(im, fmt, _DEFAULT_QUALITY)
    if len(data) <= limits.max_bytes:
        return data, fmt, im.width, im.height
    smallest = len(data)
    if fmt in {"JPEG", "WEBP"}:
        lossy = fmt
    elif "JPEG" in limits.formats:
        lossy = "JPEG"
    elif "WEBP" in limits.formats:
        lossy = "WEBP"
    else:
        lossy = fmt  # PNG only: nothing but the dimensions can give
    quality = _SHRINK_START_QUALITY
    # Lower quality alone is tried first when it may be enough; PNG can only shrink.
    scale = 1.0
    if lossy == "PNG" or (lossy == fmt and len(data) > 1.5 * limits.max_bytes):
        scale = _shrink_factor(len(data), limits.max_bytes)
    min_scale = limits.min_side / min(im.size)
    for attempt in range(_SHRINK_ATTEMPTS):
        scale = max(scale, min_scale)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        if size == im.size:
            data = _encode(im, lossy, quality)
        else:
            with im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0) as smaller:
                data = _encode(smaller, lossy, quality)
        logger.debug(
            "shrink attempt %d: %s q=%d %dx%d -> %d bytes",
            attempt,
            lossy,
            quality,
            size[0],
            size[1],
            len(data),
        )
        if len(data) <= limits.max_bytes:
            return data, lossy, size[0], size[1]
        smallest = min(smallest, len(data))
        at_floor = scale <= min_scale and (lossy == "PNG" or quality <= _SHRINK_MIN_QUALITY)
        if at_floor:
            break
        scale *= _shrink_factor(len(data), limits.max_bytes)
        quality = max(_SHRINK_MIN_QUALITY, quality - _SHRINK_QUALITY_STEP)
    raise ImageError(
        ImageErrorCode.TOO_LARGE,
        f"cannot encode within {limits.max_bytes} bytes (smallest attempt {smallest})",
        {"max_bytes": limits.max_bytes, "size": smallest},
    )


# ------------------------------------------------------------------------ normalize


def _fast_path_ok(im: ImageFile.ImageFile, data: bytes, limits: ImageLimits) -> bool:
    """A trusted JPEG that can be passed on untouched: no metadata, within limits."""
    width, height = im.size
    return (
        im.format == "JPEG"  # not MPO: that carries further images
        and im.mode == "RGB"
        and "JPEG" in limits.formats
        and len(data) <= limits.max_bytes
        and limits.min_side <= min(width, height)
        and max(width, height) <= limits.max_side
        and all(marker in _FAST_PATH_SEGMENTS for marker, _ in getattr(im, "applist", ()))
        and "exif" not in im.info
        and "icc_profile" not in im.info
        # cheap integrity check: a complete JPEG ends with EOI; otherwise decode it
        and data.endswith(b"\xff\xd9")
    )


def _plan(source: ImageFile.ImageFile, target: tuple[int, int], limits: ImageLimits) -> Plan:
    """The decoding plan; refuses (before decoding) an image that would cost too much."""
    chosen = plan(source, target, budget=limits.max_decode_bytes, min_side=limits.min_side)
    if chosen.peak > limits.max_decode_bytes:
        width, height = source.size
        # The largest image of this kind that would fit, for the message.
        fitting = width * height * limits.max_decode_bytes // chosen.peak
        raise too_many_pixels(
            min(fitting, limits.max_input_pixels),
            f"{width}x{height} {source.mode} {source.format} would take about "
            f"{chosen.peak >> 20} MiB to decode (limit {limits.max_decode_bytes >> 20} MiB)",
            (width, height),
        )
    return chosen


def _decode(im: ImageFile.ImageFile, chosen: Plan, max_input_pixels: int) -> None:
    if chosen.draft is not None:
        # libjpeg scales by 1/2, 1/4 or 1/8 while decoding (much cheaper).
        im.draft(None, chosen.draft)
    try:
        im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise too_many_pixels(max_input_pixels, str(exc), im.size) from exc
    except DECODE_ERRORS as exc:
        raise ImageError(
            ImageErrorCode.TRUNCATED,
            f"cannot decode {im.format} image: {exc!r}",
            {"format": format_name(im)},
        ) from exc


def normalize_cost(
    data: bytes, limits: ImageLimits = DEFAULT_LIMITS, *, trusted_jpeg: bool = False
) -> int:
    """Estimated peak bytes :func:`normalize` takes for ``data``, from the header alone.

    Raises the :class:`ImageError` that :func:`normalize` would raise before decoding
    (including ``TOO_MANY_PIXELS`` when the estimate exceeds ``max_decode_bytes``).
    """
    with open_image(data, limits.max_input_pixels) as source:
        if trusted_jpeg and _fast_path_ok(source, data, limits):
            return len(data)
        width, height = source.size
        return _plan(source, _target_size(width, height, limits), limits).peak


def normalize(
    data: bytes, limits: ImageLimits = DEFAULT_LIMITS, *, trusted_jpeg: bool = False
) -> NormalizedImage:
    """Turn user input into an image the model accepts (see the module docstring).

    ``trusted_jpeg`` marks Telegram's own compressed photos: when such a file is a
    metadata-free JPEG within all limits, it is returned unchanged (no re-encoding).
    Everything else is decoded and re-encoded without metadata.  Raises
    :class:`ImageError`.
    """
    with open_image(data, limits.max_input_pixels) as source:
        source_format = format_name(source)
        width, height = source.size
        if trusted_jpeg and _fast_path_ok(source, data, limits):
            return NormalizedImage(data, "image/jpeg", "jpg", width, height)
        # Refuse impossible sizes and costly images before spending CPU on decoding.
        target = _target_size(width, height, limits)
        chosen = _plan(source, target, limits)
        _decode(source, chosen, limits.max_input_pixels)
        if source.size == (chosen.decoded[1], chosen.decoded[0]) != chosen.decoded:
            target = target[1], target[0]  # the decoder applied a rotation itself
        icc = source.info.get("icc_profile")
        orientation = read_orientation(source)
        try:
            im = to_working(source, chosen.factor)
        except ValueError as exc:  # a mode Pillow cannot convert (e.g. LAB)
            raise ImageError(
                ImageErrorCode.UNSUPPORTED_FORMAT,
                f"cannot convert {source.mode} pixels: {exc}",
                {"format": f"mode:{source.mode}"},
            ) from exc
        if im is not source:
            source.close()  # release the decoded pixels now, not when we return
    # Leaving ``with`` closed the file pointer only: ``im`` keeps its pixels even when
    # it is ``source`` itself (no conversion was needed).
    try:
        shrunk = chosen.factor > 1 or chosen.draft is not None
        if shrunk and not (im.width >= target[0] and im.height >= target[1]):
            # Decoded or reduced below the target to fit the memory budget: never
            # upscaled back.
            target = _target_size(im.width, im.height, limits)
        if im.size != target:
            im = _replace(im, im.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0))
        im = drop_dead_alpha(im)
        if orientation != 1:
            im = _replace(im, im.transpose(ORIENTATION_TRANSPOSE[orientation]))
        im = _to_srgb(im, icc if isinstance(icc, bytes) else None)
        out_format = _choose_format(source_format, limits)
        encoded, out_format, out_width, out_height = _fit_bytes(im, out_format, limits)
    finally:
        im.close()
    content_type, extension = _CONTENT_TYPES[out_format]
    return NormalizedImage(encoded, content_type, extension, out_width, out_height)
