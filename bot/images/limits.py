"""What a model accepts of an input image, and why an image was refused.

Shared by the providers (each model declares its `ImageLimits`), normalization and result
checks; plain data, no Pillow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

DEFAULT_MAX_INPUT_PIXELS: Final = 50_000_000
#: Peak memory one image may take to decode and normalize (estimated from its header),
#: so that one image stays under about 300 MB whatever its format and mode.
DEFAULT_MAX_DECODE_BYTES: Final = 256 * 1024 * 1024

#: Formats :func:`normalize` can produce (Pillow format names).
OUTPUT_FORMATS: Final = frozenset({"JPEG", "PNG", "WEBP"})

#: Formats we decode (Pillow format names).  Everything else Pillow might recognise
#: (PSD, EPS, ICO, PPM, ...) is refused with ``UNSUPPORTED_FORMAT``: fewer decoders
#: exposed to untrusted input, and EPS would even start Ghostscript.  ``MPO`` is the
#: multi-picture JPEG many phones write; it is reported as ``JPEG``.
INPUT_FORMATS: Final = frozenset(
    {"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF"}
)


class ImageErrorCode(StrEnum):
    """Machine-readable reason why an input image was refused."""

    EMPTY = "empty"
    """No data at all."""
    NOT_AN_IMAGE = "not_an_image"
    """The data is not an image format we recognise."""
    TRUNCATED = "truncated"
    """The file is an image but cannot be decoded: cut short or damaged."""
    TOO_MANY_PIXELS = "too_many_pixels"
    """The header announces more pixels than allowed (possible decompression bomb)."""
    TOO_SMALL = "too_small"
    """A side is below ``min_side`` and the image cannot be upscaled to fit."""
    TOO_LARGE = "too_large"
    """Even after lowering quality and dimensions the file exceeds ``max_bytes``."""
    UNSUPPORTED_FORMAT = "unsupported_format"
    """A recognised image format (or pixel mode) that we do not convert."""


class ImageError(ValueError):
    """An input image was refused.

    ``code`` selects the user-facing message, ``detail`` is English text for logs, and
    ``params`` holds values for formatting the message.  Keys per code:

    * ``TOO_MANY_PIXELS``: ``max_pixels``; ``width`` and ``height`` when the header
      could be read;
    * ``TOO_SMALL``: ``width``, ``height``, ``min_side``, ``max_side``;
    * ``TOO_LARGE``: ``max_bytes``, ``size`` (bytes of the smallest attempt);
    * ``UNSUPPORTED_FORMAT``: ``format`` (a Pillow format name, or ``mode:<MODE>``);
    * ``TRUNCATED``: ``format`` when known.
    """

    code: ImageErrorCode
    detail: str
    params: dict[str, int | str]

    def __init__(
        self,
        code: ImageErrorCode,
        detail: str,
        params: Mapping[str, int | str] | None = None,
    ) -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail
        self.params = dict(params or {})

    def __str__(self) -> str:
        return f"{self.code.value}: {self.detail}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.code, self.detail, self.params))


@dataclass(frozen=True)
class ImageLimits:
    """What the target model accepts."""

    max_bytes: int = 10 * 1024 * 1024
    """Largest acceptable output file."""
    formats: frozenset[str] = frozenset({"JPEG", "PNG", "WEBP"})
    """Formats the model accepts (Pillow names, subset of :data:`OUTPUT_FORMATS`)."""
    min_side: int = 1
    """Smallest acceptable shorter side."""
    max_side: int = 4096
    """Largest acceptable longer side; larger images are downscaled (aspect kept)."""
    min_side_upscale: bool = True
    """Upscale (aspect kept) when the shorter side is below ``min_side``, if the longer
    side then stays within ``max_side``; otherwise the image is ``TOO_SMALL``."""
    max_input_pixels: int = DEFAULT_MAX_INPUT_PIXELS
    """Refuse, before decoding, inputs whose header announces more pixels than this.
    Pillow's own hard limit (``2 * Image.MAX_IMAGE_PIXELS``) still applies on top."""
    max_decode_bytes: int = DEFAULT_MAX_DECODE_BYTES
    """Refuse, before decoding, inputs whose decoding and normalizing would take more
    memory than this (estimated from the header by `bot.images.shrink.plan`): a small
    file can announce an image that decodes to hundreds of MB."""

    def __post_init__(self) -> None:
        formats = frozenset(f.upper() for f in self.formats)
        object.__setattr__(self, "formats", formats)
        if not formats:
            raise ValueError("ImageLimits.formats must not be empty")
        if unknown := formats - OUTPUT_FORMATS:
            raise ValueError(
                f"ImageLimits.formats: cannot encode {sorted(unknown)}; "
                f"supported: {sorted(OUTPUT_FORMATS)}"
            )
        if self.max_bytes <= 0:
            raise ValueError("ImageLimits.max_bytes must be positive")
        if not 1 <= self.min_side <= self.max_side:
            raise ValueError("ImageLimits needs 1 <= min_side <= max_side")
        if self.max_input_pixels <= 0:
            raise ValueError("ImageLimits.max_input_pixels must be positive")
        if self.max_decode_bytes <= 0:
            raise ValueError("ImageLimits.max_decode_bytes must be positive")


DEFAULT_LIMITS: Final = ImageLimits()


@dataclass(frozen=True)
class NormalizedImage:
    """An image ready to be uploaded: metadata-free, within the limits it was made for."""

    data: bytes = field(repr=False)
    content_type: str
    """``image/jpeg``, ``image/png`` or ``image/webp``."""
    extension: str
    """``jpg``, ``png`` or ``webp`` (no dot)."""
    width: int
    height: int
