"""Opening untrusted image data safely: identify, refuse bombs, read size and orientation.

Used by `normalize` and by result checks (`probe`). Synchronous and CPU-bound: call from a
worker thread.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from bot.images.limits import (
    DEFAULT_MAX_INPUT_PIXELS,
    INPUT_FORMATS,
    ImageError,
    ImageErrorCode,
)

logger = logging.getLogger(__name__)

# The same mapping as PIL.ImageOps.exif_transpose.  Applied by hand so that an image
# without orientation is not copied and the transposition happens after downscaling.
ORIENTATION_TRANSPOSE: Final[Mapping[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPPING_ORIENTATIONS: Final = frozenset({5, 6, 7, 8})

# What decoders raise on damaged or truncated data.  (pillow-heif raises ValueError or
# RuntimeError; zlib errors surface as OSError/ValueError.)
DECODE_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    RuntimeError,
    struct.error,
    IndexError,
    TypeError,
    KeyError,
    ArithmeticError,
)

_heif_lock = threading.Lock()
_heif_registered = False

# warnings.catch_warnings() swaps process-global state; serialise our own uses of it so
# that concurrent calls from worker threads cannot leave our filter installed.
_warnings_lock = threading.Lock()


def ensure_heif_opener() -> None:
    """Register pillow-heif's HEIF/HEIC opener once (thread-safe, lazy)."""
    global _heif_registered
    if _heif_registered:
        return
    with _heif_lock:
        if _heif_registered:
            return
        try:
            from pillow_heif import register_heif_opener
        except ImportError:  # pragma: no cover - pillow-heif is a dependency
            logger.warning("pillow-heif is not installed: HEIC/HEIF input is unsupported")
        else:
            register_heif_opener()
        _heif_registered = True


def _input_formats() -> list[str]:
    Image.init()
    return [name for name in INPUT_FORMATS if name in Image.OPEN]


def _identify_unsupported(data: bytes) -> str | None:
    """Name of the format Pillow would recognise ``data`` as, if any (header only)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.format or "unknown"
    except Exception:  # noqa: BLE001 - best-effort classification of refused input
        return None


def too_many_pixels(
    max_pixels: int, detail: str, size: tuple[int, int] | None = None
) -> ImageError:
    params: dict[str, int | str] = {"max_pixels": max_pixels}
    if size is not None:
        params["width"], params["height"] = size
    return ImageError(ImageErrorCode.TOO_MANY_PIXELS, detail, params)


@contextmanager
def open_image(data: bytes, max_input_pixels: int) -> Iterator[ImageFile.ImageFile]:
    """Open ``data`` lazily (header only) and refuse what must never be decoded."""
    if not data:
        raise ImageError(ImageErrorCode.EMPTY, "no image data")
    ensure_heif_opener()
    # Pillow warns (DecompressionBombWarning) above Image.MAX_IMAGE_PIXELS while opening;
    # our own check right after opening is the authority (and reports the size), so the
    # warning is silenced here.  Pillow's hard DecompressionBombError still applies.
    unsupported: str | None = None
    im: ImageFile.ImageFile | None = None
    with _warnings_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data), formats=_input_formats())
        except UnidentifiedImageError:
            unsupported = _identify_unsupported(data)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise too_many_pixels(max_input_pixels, str(exc)) from exc
        except DECODE_ERRORS as exc:
            raise ImageError(ImageErrorCode.TRUNCATED, f"damaged image header: {exc!r}") from exc
    if im is None:
        if unsupported is None:
            raise ImageError(ImageErrorCode.NOT_AN_IMAGE, "data is not a recognised image")
        raise ImageError(
            ImageErrorCode.UNSUPPORTED_FORMAT,
            f"image format {unsupported} is not supported",
            {"format": unsupported},
        )
    with im:
        width, height = im.size
        if width <= 0 or height <= 0:
            raise ImageError(ImageErrorCode.TRUNCATED, f"invalid image size {width}x{height}")
        if width * height > max_input_pixels:
            raise too_many_pixels(
                max_input_pixels,
                f"{width}x{height} exceeds {max_input_pixels} pixels",
                (width, height),
            )
        yield im


def format_name(im: Image.Image) -> str:
    fmt = im.format or "unknown"
    return "JPEG" if fmt == "MPO" else fmt


def read_orientation(im: Image.Image) -> int:
    """EXIF (or TIFF/XMP) orientation, 1 when absent or unreadable."""
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and value in ORIENTATION_TRANSPOSE else 1


def probe(data: bytes, *, max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS) -> tuple[str, int, int]:
    """Identify an image from its header without decoding the pixels.

    Returns ``(format, width, height)``: a Pillow format name (``MPO`` is reported as
    ``JPEG``) and the size *as displayed*, i.e. with EXIF orientation applied.  Raises
    :class:`ImageError` with ``EMPTY``, ``NOT_AN_IMAGE``, ``UNSUPPORTED_FORMAT``,
    ``TRUNCATED`` (damaged header) or ``TOO_MANY_PIXELS``.
    """
    with open_image(data, max_input_pixels) as im:
        width, height = im.size
        if _orientation_from_header(im) in _SWAPPING_ORIENTATIONS and (
            _stored_size(im) == (width, height)
        ):
            width, height = height, width
        return format_name(im), width, height


def _orientation_from_header(im: ImageFile.ImageFile) -> int:
    # PNG's eXIf chunk may follow the image data and Pillow would decode the image to
    # find it; probe() stays header-only, so it only looks at what was already read.
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    return read_orientation(im)


def _stored_size(im: ImageFile.ImageFile) -> tuple[int, int]:
    """Size of the pixel data as stored, before any orientation.

    Recent Pillow versions report a TIFF's size already oriented (and transpose the
    pixels while loading); the TIFF tags still hold the stored size.
    """
    tags = getattr(im, "tag_v2", None)
    if im.format == "TIFF" and tags is not None:
        width, height = tags.get(256), tags.get(257)  # ImageWidth, ImageLength
        if isinstance(width, int) and isinstance(height, int):
            return width, height
    return im.size


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of an image as displayed, from its header (see :func:`probe`)."""
    _, width, height = probe(data)
    return width, height
