"""Tests for bot.images: input photo normalisation.

All inputs are generated with Pillow (and pillow-heif) on the fly; nothing is committed.
"""

from __future__ import annotations

import io
import pickle
import random
import struct
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from PIL import Image, ImageCms, ImageFile, PngImagePlugin

from bot.images.decode import ensure_heif_opener, image_size, probe
from bot.images.limits import ImageError, ImageErrorCode, ImageLimits, NormalizedImage
from bot.images.normalize import normalize

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)

Color = tuple[int, ...]


# ----------------------------------------------------------------------------- helpers


def quadrant_image(size: tuple[int, int] = (64, 48), mode: str = "RGB") -> Image.Image:
    """White image whose top-left quadrant is red: shows flips and rotations."""
    w, h = size
    fill: Color = (*WHITE, 255) if mode == "RGBA" else WHITE
    red: Color = (*RED, 255) if mode == "RGBA" else RED
    im = Image.new(mode, size, fill)
    im.paste(red, (0, 0, w // 2, h // 2))
    return im


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def noise_image(size: tuple[int, int], seed: int = 0) -> Image.Image:
    """Incompressible RGB noise (deterministic)."""
    raw = random.Random(seed).randbytes(size[0] * size[1] * 3)
    return Image.frombytes("RGB", size, raw)


def close_to(actual: Color, expected: Color, tolerance: int = 24) -> bool:
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected, strict=True))


def pixel(im: Image.Image, xy: tuple[int, int]) -> Color:
    value = im.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def corners(im: Image.Image) -> dict[str, Color]:
    """Colours a little inside each corner (away from compression artefacts)."""
    w, h = im.size
    rgb = im.convert("RGB")
    return {
        "top_left": pixel(rgb, (w // 8, h // 8)),
        "top_right": pixel(rgb, (w - 1 - w // 8, h // 8)),
        "bottom_left": pixel(rgb, (w // 8, h - 1 - h // 8)),
        "bottom_right": pixel(rgb, (w - 1 - w // 8, h - 1 - h // 8)),
    }


def red_corner(im: Image.Image) -> str:
    found = [name for name, color in corners(im).items() if close_to(color, RED)]
    assert len(found) == 1, corners(im)
    return found[0]


def exif_bytes(*, orientation: int | None = None, gps: bool = False) -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    if orientation is not None:
        exif[0x0112] = orientation
    if gps:
        exif[0x8825] = {  # GPSInfo IFD
            1: "N",
            2: (55.0, 45.0, 21.0),
            3: "E",
            4: (37.0, 37.0, 4.0),
        }
    return exif.tobytes()


XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><secret>home</secret></rdf:RDF></x:xmpmeta>'


def jpeg_segments(data: bytes) -> list[int]:
    """Markers of a JPEG up to the start of scan."""
    assert data[:2] == b"\xff\xd8"
    markers: list[int] = []
    pos = 2
    while pos < len(data):
        assert data[pos] == 0xFF, pos
        marker = data[pos + 1]
        markers.append(marker)
        if marker == 0xDA:  # SOS: entropy-coded data follows
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        pos += 2 + length
    return markers


def png_chunks(data: bytes) -> list[bytes]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks: list[bytes] = []
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        chunks.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return chunks


def webp_chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    chunks: list[bytes] = []
    pos = 12
    while pos < len(data):
        kind = data[pos : pos + 4]
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        chunks.append(kind)
        if kind == b"VP8X":
            flags = data[pos + 8]
            assert flags & 0b0010_1110 == 0, f"VP8X announces metadata/animation: {flags:#x}"
        pos += 8 + length + (length & 1)
    return chunks


def assert_clean(out: NormalizedImage) -> Image.Image:
    """The output is what it claims to be and carries no metadata at all."""
    expected = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
    assert (
        out.extension
        == {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}[out.content_type]
    )
    im = decode(out.data)
    assert im.format == expected[out.content_type]
    assert im.size == (out.width, out.height)
    assert not getattr(im, "is_animated", False)
    for key in ("exif", "xmp", "icc_profile", "comment", "XML:com.adobe.xmp"):
        assert key not in im.info, key
    assert len(im.getexif()) == 0
    if im.format == "JPEG":
        markers = jpeg_segments(out.data)
        # only SOI..SOS structure: APP0 (JFIF), DQT, SOF, DHT, DRI
        assert set(markers) <= {0xE0, 0xDB, 0xC0, 0xC2, 0xC4, 0xDD, 0xDA}, markers
        assert im.mode == "RGB"
    elif im.format == "PNG":
        assert set(png_chunks(out.data)) <= {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND"}
        assert im.mode in {"RGB", "RGBA"}
    else:
        assert set(webp_chunks(out.data)) <= {b"VP8 ", b"VP8L", b"VP8X", b"ALPH"}
    return im


def crafted_png(width: int, height: int, color_type: int = 0) -> bytes:
    """A tiny PNG whose IHDR announces ``width`` x ``height`` (pixel data is bogus)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def matrix_icc_profile(red: tuple[float, float, float], green: tuple[float, float, float]) -> bytes:
    """Minimal ICC v2 RGB matrix/TRC profile with linear curves and the given colorants."""
    blue = (0.1431, 0.0606, 0.7141)

    def xyz(values: tuple[float, float, float]) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in values)

    curve = b"curv\0\0\0\0" + struct.pack(">I", 0)
    text = b"Swapped primaries\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 79
    d50 = (0.9642, 1.0, 0.8249)
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(d50)),
        (b"rXYZ", xyz(red)),
        (b"gXYZ", xyz(green)),
        (b"bXYZ", xyz(blue)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, payload in tags:
        body += b"\0" * (-(offset + len(body)) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(payload))
        body += payload
    header = (
        struct.pack(">I", offset + len(body))
        + b"\0\0\0\0"
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + b"\0" * 12
        + b"acsp"
        + b"\0" * 28
        + b"".join(_s15(v) for v in d50)
        + b"\0" * 48
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


SRGB_RED = (0.4361, 0.2225, 0.0139)
SRGB_GREEN = (0.3851, 0.7169, 0.0971)


def heif_bytes(im: Image.Image, **params: Any) -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    return encode(im, "HEIF", quality=90, **params)


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (40, 30), color) for color in (RED, GREEN, BLUE)]
    return encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


# ---------------------------------------------------------------- formats and output


def _input(fmt: str) -> bytes:
    im = quadrant_image()
    if fmt == "HEIF":
        return heif_bytes(im)
    if fmt == "PNG":  # with real transparency: bottom-right quadrant transparent
        rgba = quadrant_image(mode="RGBA")
        rgba.paste((0, 0, 0, 0), (32, 24, 64, 48))
        return encode(rgba, "PNG")
    if fmt == "MPO":
        return encode(im, "MPO", save_all=True, append_images=[quadrant_image()])
    if fmt == "GIF":
        return encode(im.convert("P"), "GIF")
    extra: dict[str, Any] = {"quality": 95} if fmt in {"JPEG", "WEBP", "AVIF"} else {}
    return encode(im, fmt, **extra)


@pytest.mark.parametrize(
    ("fmt", "formats", "expected"),
    [
        ("JPEG", {"JPEG", "PNG", "WEBP"}, "JPEG"),
        ("PNG", {"JPEG", "PNG", "WEBP"}, "PNG"),
        ("WEBP", {"JPEG", "PNG", "WEBP"}, "WEBP"),
        ("HEIF", {"JPEG", "PNG", "WEBP"}, "JPEG"),
        ("AVIF", {"JPEG", "PNG", "WEBP"}, "JPEG"),
        ("BMP", {"JPEG", "PNG", "WEBP"}, "JPEG"),
        ("TIFF", {"JPEG", "PNG", "WEBP"}, "JPEG"),
        ("GIF", {"JPEG", "PNG", "WEBP"}, "JPEG"),
        ("MPO", {"JPEG", "PNG", "WEBP"}, "JPEG"),
        # the model does not take the input format: JPEG, else PNG, else WebP
        ("PNG", {"JPEG"}, "JPEG"),
        ("BMP", {"PNG"}, "PNG"),
        ("HEIF", {"WEBP"}, "WEBP"),
        ("JPEG", {"PNG", "WEBP"}, "PNG"),
        ("WEBP", {"JPEG", "PNG"}, "JPEG"),
    ],
)
def test_input_formats_are_converted(fmt: str, formats: set[str], expected: str) -> None:
    data = _input(fmt)
    out = normalize(data, ImageLimits(formats=frozenset(formats)))
    im = assert_clean(out)
    assert im.format == expected
    assert (out.width, out.height) == (64, 48)
    assert red_corner(im) == "top_left"
    if out.content_type == "image/jpeg":
        assert data != out.data  # re-encoded, never passed through
    if fmt == "PNG" and expected == "PNG":
        assert im.mode == "RGBA"
        assert pixel(im, (60, 44))[3] == 0  # transparency kept
        assert pixel(im, (4, 4)) == (*RED, 255)
    if fmt == "PNG" and expected == "JPEG":
        assert close_to(pixel(im, (60, 44)), WHITE, 4)  # flattened onto white


def test_mpo_is_reduced_to_a_single_plain_jpeg() -> None:
    data = _input("MPO")
    assert Image.open(io.BytesIO(data)).format == "MPO"
    out = normalize(data, trusted_jpeg=True)
    assert out.data != data
    assert 0xE2 not in jpeg_segments(out.data)  # no APP2/MPF
    assert decode(out.data).format == "JPEG"


@pytest.mark.parametrize(
    ("fmt", "expected_format"),
    [("GIF", "JPEG"), ("PNG", "PNG"), ("WEBP", "WEBP")],
)
def test_animated_images_use_the_first_frame(fmt: str, expected_format: str) -> None:
    data = animated(fmt)
    with Image.open(io.BytesIO(data)) as source:
        assert getattr(source, "n_frames", 1) == 3
    out = normalize(data)
    im = assert_clean(out)  # also asserts: not animated, no acTL/ANIM chunks
    assert im.format == expected_format
    assert getattr(im, "n_frames", 1) == 1
    assert close_to(pixel(im.convert("RGB"), (20, 15)), RED)
    assert (out.width, out.height) == (40, 30)


def test_palette_png_with_transparency_keeps_it() -> None:
    im = Image.new("P", (32, 32), 0)
    im.putpalette([*RED, *BLUE] + [0] * 762)
    im.paste(1, (16, 0, 32, 32))
    data = encode(im, "PNG", transparency=1)
    out = normalize(data)
    result = assert_clean(out)
    assert result.mode == "RGBA"
    assert pixel(result, (4, 4)) == (*RED, 255)
    assert pixel(result, (20, 4))[3] == 0


def test_opaque_alpha_channel_is_dropped() -> None:
    data = encode(quadrant_image(mode="RGBA"), "PNG")
    result = assert_clean(normalize(data))
    assert result.format == "PNG" and result.mode == "RGB"


def test_transparent_gif_is_flattened_onto_white() -> None:
    im = Image.new("P", (32, 32), 0)
    im.putpalette([*BLUE, *GREEN] + [0] * 762)
    im.paste(1, (16, 0, 32, 32))
    data = encode(im, "GIF", transparency=1)
    result = assert_clean(normalize(data))
    assert result.format == "JPEG"
    assert close_to(pixel(result, (4, 4)), BLUE)
    assert close_to(pixel(result, (28, 4)), WHITE)


def test_sixteen_bit_grayscale_is_scaled_not_clipped() -> None:
    im = Image.new("I;16", (16, 16), 30000)  # 30000 / 65535 -> ~117 of 255
    data = encode(im, "PNG")
    result = assert_clean(normalize(data))
    value = pixel(result, (8, 8))
    assert all(abs(channel - 117) <= 2 for channel in value[:3]), value


def test_cmyk_jpeg_becomes_rgb() -> None:
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    result = assert_clean(normalize(data))
    assert close_to(pixel(result, (16, 16)), RED, 40)


# ------------------------------------------------------------ orientation and metadata


@pytest.mark.parametrize(
    ("orientation", "size", "corner"),
    [
        (1, (60, 40), "top_left"),
        (2, (60, 40), "top_right"),
        (3, (60, 40), "bottom_right"),
        (6, (40, 60), "top_right"),
        (8, (40, 60), "bottom_left"),
    ],
)
def test_jpeg_exif_orientation_is_applied(
    orientation: int, size: tuple[int, int], corner: str
) -> None:
    data = encode(
        quadrant_image((60, 40)), "JPEG", quality=95, exif=exif_bytes(orientation=orientation)
    )
    out = normalize(data)
    im = assert_clean(out)
    assert im.size == size == (out.width, out.height)
    assert red_corner(im) == corner


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "TIFF", "HEIF", "AVIF"])
def test_orientation_6_is_applied_for_other_formats(fmt: str) -> None:
    exif = exif_bytes(orientation=6, gps=True)
    im = quadrant_image((60, 40))
    data = heif_bytes(im, exif=exif) if fmt == "HEIF" else encode(im, fmt, exif=exif)
    out = normalize(data)
    result = assert_clean(out)  # GPS gone as well
    assert result.size == (40, 60)
    assert red_corner(result) == "top_right"  # rotated once, not twice (HEIF!)


def test_jpeg_metadata_is_stripped() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(
        quadrant_image(),
        "JPEG",
        quality=95,
        exif=exif_bytes(gps=True),
        xmp=XMP,
        comment=b"taken at home",
        icc_profile=srgb,
    )
    source = Image.open(io.BytesIO(data))
    assert 0x8825 in source.getexif() and "xmp" in source.info and "comment" in source.info
    out = normalize(data)
    assert_clean(out)
    for needle in (b"Exif", b"PhoneMaker", b"xmpmeta", b"taken at home", b"ICC_PROFILE"):
        assert needle not in out.data


def test_png_text_exif_and_icc_chunks_are_stripped() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("Location", "55.75N 37.61E")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(
        quadrant_image(), "PNG", pnginfo=info, exif=exif_bytes(gps=True), icc_profile=srgb
    )
    assert {b"tEXt", b"iTXt", b"eXIf", b"iCCP"} <= set(png_chunks(data))
    out = normalize(data)
    assert_clean(out)
    assert b"55.75N" not in out.data


def test_webp_metadata_is_stripped() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(quadrant_image(), "WEBP", exif=exif_bytes(gps=True), xmp=XMP, icc_profile=srgb)
    assert {b"EXIF", b"XMP ", b"ICCP"} <= set(webp_chunks_unchecked(data))
    out = normalize(data)
    assert assert_clean(out).format == "WEBP"


def webp_chunks_unchecked(data: bytes) -> list[bytes]:
    chunks: list[bytes] = []
    pos = 12
    while pos < len(data):
        (length,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        chunks.append(data[pos : pos + 4])
        pos += 8 + length + (length & 1)
    return chunks


def test_heif_gps_exif_is_stripped() -> None:
    data = heif_bytes(quadrant_image(), exif=exif_bytes(gps=True))
    assert 0x8825 in Image.open(io.BytesIO(data)).getexif()
    assert_clean(normalize(data))


def test_icc_profile_is_converted_to_srgb_and_dropped() -> None:
    # A profile whose "red" primary is sRGB green: pure red pixels mean green.
    swapped = matrix_icc_profile(red=SRGB_GREEN, green=SRGB_RED)
    data = encode(Image.new("RGB", (16, 16), RED), "PNG", icc_profile=swapped)
    result = assert_clean(normalize(data))
    assert close_to(pixel(result, (8, 8)), GREEN, 8)


def test_srgb_icc_profile_leaves_pixels_alone() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(Image.new("RGB", (16, 16), (200, 100, 50)), "PNG", icc_profile=srgb)
    result = assert_clean(normalize(data))
    assert pixel(result, (8, 8)) == (200, 100, 50)


# --------------------------------------------------------------- trusted fast path


def _telegram_photo(size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(quadrant_image(size), "JPEG", quality=80)


def test_trusted_clean_jpeg_is_returned_unchanged() -> None:
    data = _telegram_photo()
    out = normalize(data, trusted_jpeg=True)
    assert out.data is data
    assert (out.content_type, out.extension, out.width, out.height) == (
        "image/jpeg",
        "jpg",
        64,
        48,
    )


def test_untrusted_clean_jpeg_is_reencoded() -> None:
    data = _telegram_photo()
    out = normalize(data)
    assert out.data != data
    assert_clean(out)


@pytest.mark.parametrize(
    ("name", "make", "limits"),
    [
        (
            "exif",
            lambda: encode(quadrant_image(), "JPEG", quality=80, exif=exif_bytes(gps=True)),
            ImageLimits(),
        ),
        (
            "comment",
            lambda: encode(quadrant_image(), "JPEG", quality=80, comment=b"x"),
            ImageLimits(),
        ),
        ("too long side", _telegram_photo, ImageLimits(max_side=32)),
        ("too short side", _telegram_photo, ImageLimits(min_side=100, max_side=1000)),
        ("too many bytes", _telegram_photo, ImageLimits(max_bytes=len(_telegram_photo()) - 1)),
        ("jpeg not accepted", _telegram_photo, ImageLimits(formats=frozenset({"PNG"}))),
        ("grayscale", lambda: encode(Image.new("L", (64, 48), 128), "JPEG"), ImageLimits()),
    ],
)
def test_trusted_jpeg_is_reencoded_when_it_does_not_qualify(
    name: str, make: Callable[[], bytes], limits: ImageLimits
) -> None:
    data = make()
    try:
        out = normalize(data, limits, trusted_jpeg=True)
    except ImageError as exc:  # the byte budget may be unreachable; never pass through
        assert name == "too many bytes" and exc.code is ImageErrorCode.TOO_LARGE
        return
    assert out.data != data, name
    assert_clean(out)


def test_trusted_truncated_jpeg_is_not_passed_through() -> None:
    data = encode(noise_image((128, 128)), "JPEG", quality=90)
    with pytest.raises(ImageError) as info:
        normalize(data[: len(data) // 2], trusted_jpeg=True)
    assert info.value.code is ImageErrorCode.TRUNCATED


# ------------------------------------------------------------------------- geometry


@pytest.mark.parametrize(
    ("size", "limits", "expected"),
    [
        ((5000, 3000), ImageLimits(), (4096, 2458)),
        ((3000, 5000), ImageLimits(), (2458, 4096)),
        ((4000, 3000), ImageLimits(max_side=500), (500, 375)),  # libjpeg draft path
        ((200, 300), ImageLimits(min_side=384), (384, 576)),
        ((300, 200), ImageLimits(min_side=384, max_side=576), (576, 384)),
        ((384, 4096), ImageLimits(min_side=384), (384, 4096)),  # exactly at the limits
    ],
)
def test_resize(size: tuple[int, int], limits: ImageLimits, expected: tuple[int, int]) -> None:
    data = encode(quadrant_image(size), "JPEG", quality=85)
    out = normalize(data, limits, trusted_jpeg=True)
    im = assert_clean(out)
    assert (out.width, out.height) == expected
    assert red_corner(im) == "top_left"


@pytest.mark.parametrize(
    ("size", "limits"),
    [
        ((10, 4000), ImageLimits(min_side=384, max_side=3072)),  # downscale makes it thinner
        ((10, 100), ImageLimits(min_side=384, max_side=3072)),  # upscale makes it too long
        ((200, 300), ImageLimits(min_side=384, min_side_upscale=False)),
    ],
)
def test_too_small(size: tuple[int, int], limits: ImageLimits) -> None:
    data = encode(Image.new("RGB", size, RED), "PNG")
    with pytest.raises(ImageError) as info:
        normalize(data, limits)
    assert info.value.code is ImageErrorCode.TOO_SMALL
    assert info.value.params == {
        "width": size[0],
        "height": size[1],
        "min_side": limits.min_side,
        "max_side": limits.max_side,
    }


# ----------------------------------------------------------------------- byte budget


def test_too_large_when_nothing_fits() -> None:
    data = encode(noise_image((64, 64)), "PNG")
    with pytest.raises(ImageError) as info:
        normalize(data, ImageLimits(max_bytes=100))
    assert info.value.code is ImageErrorCode.TOO_LARGE
    assert info.value.params["max_bytes"] == 100
    assert int(info.value.params["size"]) > 100


def test_oversized_png_is_shrunk_to_jpeg_within_budget() -> None:
    data = encode(noise_image((1000, 800)), "PNG", compress_level=1)
    assert len(data) > 2_000_000
    limits = ImageLimits(max_bytes=150_000)
    out = normalize(data, limits)
    im = assert_clean(out)
    assert im.format == "JPEG"
    assert len(out.data) <= limits.max_bytes
    assert 0 < out.width < 1000 and abs(out.width / out.height - 1.25) < 0.02


def test_png_only_model_gets_a_smaller_png() -> None:
    data = encode(noise_image((400, 400)), "PNG", compress_level=1)
    limits = ImageLimits(max_bytes=100_000, formats=frozenset({"PNG"}))
    out = normalize(data, limits)
    im = assert_clean(out)
    assert im.format == "PNG"
    assert len(out.data) <= limits.max_bytes
    assert out.width == out.height < 400


def test_shrinking_never_goes_below_min_side() -> None:
    data = encode(noise_image((400, 400)), "PNG", compress_level=1)
    limits = ImageLimits(max_bytes=100_000, formats=frozenset({"PNG"}), min_side=300)
    with pytest.raises(ImageError) as info:
        normalize(data, limits)
    assert info.value.code is ImageErrorCode.TOO_LARGE


# --------------------------------------------------------------------------- refusals


def _truncated(fmt: str) -> bytes:
    data = encode(noise_image((128, 128)), fmt)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("empty", b"", ImageErrorCode.EMPTY),
        ("random", random.Random(1).randbytes(4096), ImageErrorCode.NOT_AN_IMAGE),
        ("text", b"hello, this is not a picture\n" * 10, ImageErrorCode.NOT_AN_IMAGE),
        (
            "pdf",
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
            ImageErrorCode.NOT_AN_IMAGE,
        ),
        ("truncated jpeg", _truncated("JPEG"), ImageErrorCode.TRUNCATED),
        ("truncated png", _truncated("PNG"), ImageErrorCode.TRUNCATED),
        ("ppm", encode(Image.new("RGB", (8, 8)), "PPM"), ImageErrorCode.UNSUPPORTED_FORMAT),
        ("bomb", crafted_png(100_000, 100_000), ImageErrorCode.TOO_MANY_PIXELS),
    ],
)
def test_bad_input_is_refused_with_a_code(name: str, data: bytes, code: ImageErrorCode) -> None:
    with pytest.raises(ImageError) as info:
        normalize(data)
    assert info.value.code is code, name
    assert isinstance(info.value, ValueError)
    assert info.value.detail and str(info.value).startswith(f"{code.value}: ")


def test_unsupported_format_names_the_format() -> None:
    with pytest.raises(ImageError) as info:
        normalize(encode(Image.new("RGB", (8, 8)), "PPM"))
    assert info.value.params == {"format": "PPM"}


@pytest.mark.parametrize(
    ("width", "height", "max_input_pixels", "expect_size_params"),
    [
        (100_000, 100_000, 50_000_000, False),  # Pillow's DecompressionBombError
        (10_000, 10_000, 50_000_000, True),  # 100 MP: Pillow only warns
        (10_000, 6_000, 50_000_000, True),  # 60 MP: our own limit, Pillow silent
        (200, 100, 19_999, True),
    ],
)
def test_decompression_bombs_are_refused_before_decoding(
    width: int, height: int, max_input_pixels: int, expect_size_params: bool
) -> None:
    # The crafted files have no real pixel data: decoding would fail with TRUNCATED.
    data = crafted_png(width, height)
    filters_before = list(warnings.filters)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for call in (
            lambda: normalize(data, ImageLimits(max_input_pixels=max_input_pixels)),
            lambda: probe(data, max_input_pixels=max_input_pixels),
        ):
            with pytest.raises(ImageError) as info:
                call()
            assert info.value.code is ImageErrorCode.TOO_MANY_PIXELS
            assert info.value.params["max_pixels"] == max_input_pixels
            if expect_size_params:
                assert info.value.params["width"] == width
                assert info.value.params["height"] == height
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert warnings.filters == filters_before
    assert pillow_limit == Image.MAX_IMAGE_PIXELS
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_higher_limit_than_pillow_warning_threshold_is_honoured() -> None:
    # 90 MP is above Pillow's warning threshold but within our configured limit: the
    # header passes and decoding is attempted (and fails: there is no pixel data).
    pillow_limit = Image.MAX_IMAGE_PIXELS
    assert pillow_limit is not None
    data = crafted_png(10_000, 9_000)
    assert pillow_limit < 10_000 * 9_000
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageError) as info:
            normalize(
                data,
                ImageLimits(max_input_pixels=95_000_000, max_side=10_000, max_decode_bytes=1 << 30),
            )
    assert info.value.code is ImageErrorCode.TRUNCATED
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_concurrent_calls_leave_warning_filters_intact() -> None:
    filters_before = list(warnings.filters)
    good = _telegram_photo()
    bomb = crafted_png(10_000, 10_000)

    def run(data: bytes) -> str:
        try:
            return normalize(data).content_type
        except ImageError as exc:
            return exc.code.value

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, [good, bomb] * 12))
    assert results == ["image/jpeg", "too_many_pixels"] * 12
    assert warnings.filters == filters_before


# ------------------------------------------------------------------------------ probe


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("JPEG", "JPEG"),
        ("PNG", "PNG"),
        ("WEBP", "WEBP"),
        ("GIF", "GIF"),
        ("BMP", "BMP"),
        ("TIFF", "TIFF"),
        ("HEIF", "HEIF"),
        ("AVIF", "AVIF"),
        ("MPO", "JPEG"),
    ],
)
def test_probe_reports_format_and_size(fmt: str, expected: str) -> None:
    data = _input(fmt)
    assert probe(data) == (expected, 64, 48)
    assert image_size(data) == (64, 48)


def test_probe_reads_the_header_only() -> None:
    data = _truncated("JPEG")  # undecodable, but the header is intact
    assert probe(data) == ("JPEG", 128, 128)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "HEIF", "AVIF"])
def test_probe_reports_the_displayed_size(fmt: str) -> None:
    im, exif = quadrant_image((60, 40)), exif_bytes(orientation=6)
    data = heif_bytes(im, exif=exif) if fmt == "HEIF" else encode(im, fmt, exif=exif)
    assert probe(data) == (fmt, 40, 60)
    assert image_size(data) == (40, 60)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ImageErrorCode.EMPTY),
        (b"not an image at all", ImageErrorCode.NOT_AN_IMAGE),
        (encode(Image.new("RGB", (8, 8)), "PPM"), ImageErrorCode.UNSUPPORTED_FORMAT),
    ],
)
def test_probe_refusals(data: bytes, code: ImageErrorCode) -> None:
    with pytest.raises(ImageError) as info:
        probe(data)
    assert info.value.code is code
    with pytest.raises(ImageError):
        image_size(data)


# ---------------------------------------------------------------------- API details


def test_image_error_pickles_and_formats() -> None:
    error = ImageError(ImageErrorCode.TOO_SMALL, "10x10 too small", {"min_side": 384})
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, ImageError)
    assert (copy.code, copy.detail, copy.params) == (
        ImageErrorCode.TOO_SMALL,
        "10x10 too small",
        {"min_side": 384},
    )
    assert str(copy) == "too_small: 10x10 too small"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"formats": frozenset()},
        {"formats": frozenset({"GIF"})},
        {"min_side": 500, "max_side": 400},
        {"min_side": 0},
        {"max_bytes": 0},
        {"max_input_pixels": 0},
    ],
)
def test_invalid_limits_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ImageLimits(**kwargs)


def test_limits_formats_are_case_insensitive() -> None:
    assert ImageLimits(formats=frozenset({"png", "Jpeg"})).formats == {"PNG", "JPEG"}


def test_normalized_image_repr_hides_the_bytes() -> None:
    out = normalize(_telegram_photo(), trusted_jpeg=True)
    assert "data=" not in repr(out) and "\\xff" not in repr(out)


def test_heif_opener_is_registered_lazily() -> None:
    ensure_heif_opener()
    assert "HEIF" in Image.OPEN
