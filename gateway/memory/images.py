"""Images from clients, made safe to keep: decoded with Pillow within limits, re-encoded.

An image arrives as base64 PNG, JPEG or WebP. Its size in bytes and its pixel count (read from
the header, before any decoding: a decompression bomb is refused unopened) are bounded by the
settings; anything Pillow cannot fully decode, or of another format, is refused. What is kept
is a re-encoding of the pixels alone, in the same format: EXIF (GPS position, camera serial),
XMP, ICC and text chunks are gone, and the EXIF orientation is applied first so the picture
still stands the right way up. Only the first frame of an animation is kept.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from gateway.errors import FieldPath, InvalidInput, TooLarge

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
JPEG_QUALITY = 90
WEBP_QUALITY = 90


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int


@dataclass(frozen=True, slots=True)
class CleanImage:
    data: bytes  # the re-encoded picture, no metadata
    mime: str
    width: int
    height: int


def decode_base64(text: str, limits: ImageLimits, field: FieldPath) -> bytes:
    """The bytes of a base64 image (standard alphabet; a data: URL prefix is accepted)."""
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) * 3 // 4 > limits.max_bytes + 3:
        raise TooLarge.at(field, f"image is larger than {limits.max_bytes} bytes")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput.at(field, f"image is not valid base64: {exc}") from exc
    if len(data) > limits.max_bytes:
        raise TooLarge.at(field, f"image is larger than {limits.max_bytes} bytes")
    return data


def clean(data: bytes, limits: ImageLimits, field: FieldPath) -> CleanImage:
    """Check and re-encode one image (blocking: run it off the event loop)."""
    if len(data) > limits.max_bytes:
        raise TooLarge.at(field, f"image is larger than {limits.max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=list(FORMATS))
            fmt = opened.format or ""
            if opened.width * opened.height > limits.max_pixels:
                raise TooLarge.at(field, f"image of {opened.width}x{opened.height} pixels is "
                                         f"over the limit of {limits.max_pixels} pixels")
            opened.seek(0)
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TooLarge.at(field, f"image is over the limit of {limits.max_pixels} pixels "
                                 "(a decompression bomb?)") from exc
    except UnidentifiedImageError as exc:
        raise InvalidInput.at(field, "not a PNG, JPEG or WebP image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data
        raise InvalidInput.at(field, f"image data is corrupt: {exc}") from exc
    return CleanImage(_reencode(image, fmt), FORMATS[fmt], image.width, image.height)


def _reencode(image: Image.Image, fmt: str) -> bytes:
    """The pixels alone, in ``fmt``: no EXIF, XMP, ICC profile or text chunks."""
    if fmt == "JPEG":
        image = image.convert("L" if image.mode in ("L", "1") else "RGB")
        options: dict[str, object] = {"quality": JPEG_QUALITY}
    elif fmt == "WEBP":
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        options = {"quality": WEBP_QUALITY}
    else:
        if image.mode not in ("1", "L", "LA", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        options = {"optimize": False}
    out = io.BytesIO()
    pixels_only = Image.new(image.mode, image.size)  # a fresh image carries no ``info``
    pixels_only.paste(image)
    pixels_only.save(out, format=fmt, **options)
    return out.getvalue()
