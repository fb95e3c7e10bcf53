"""Loading photos: one entry point, :func:`load_image`, for every input photo.

Every photo that enters facesearch (enrollment, queries, video stills handed over as arrays)
goes through :func:`load_image`, which returns an ``(H, W, 3)`` ``uint8`` RGB array the way it
looks on screen: EXIF orientation applied, transparency composited on white, greyscale and
16-bit data converted to 8-bit RGB. Anything that cannot be used raises
:class:`~facesearch.errors.ImageError` with a one-line ``PATH: reason`` message.

Nothing here changes Pillow's global settings (``Image.MAX_IMAGE_PIXELS``,
``ImageFile.LOAD_TRUNCATED_IMAGES``, warning filters): the checks are done per call, so other
code in the same process keeps whatever it configured.
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from typing import BinaryIO, TypeAlias, Union

from facesearch.errors import ImageError, one_line
from facesearch.imaging.photo_files import mode_reason, not_regular_reason
from facesearch.lazy_import import lazy_module

np = lazy_module("numpy")
ExifTags = lazy_module("PIL.ExifTags")
Image = lazy_module("PIL.Image")
ImageFile = lazy_module("PIL.ImageFile")
ImageOps = lazy_module("PIL.ImageOps")

log = logging.getLogger(__name__)

#: Leading bytes of each format facesearch reads, for :func:`sniff_format`.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"BM", "bmp"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)

#: File extension (with the dot) for each format :func:`sniff_format` names.
FORMAT_EXTENSIONS: dict[str, str] = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif"}


def sniff_format(data: bytes) -> str | None:
    """The image format of encoded ``data`` from its first bytes, whatever it is called or claims
    to be: ``"jpeg"``, ``"png"``, ``"webp"``, ``"bmp"``, ``"tiff"``, or ``None`` for anything else."""
    head = bytes(data[:12])
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    for signature, name in _SIGNATURES:
        if head.startswith(signature):
            return name
    return None


#: Default limit on width * height, checked from the file header before any pixel is decoded.
#: A 60 MP photo decodes to 180 MB of RGB (plus temporary copies while converting), and the
#: largest ordinary camera photos are about 50 MP (45-50 MP full-frame bodies, phones' 48/50 MP
#: modes), so real photos pass while a tiny file declaring e.g. 50000x50000 pixels (a
#: "decompression bomb", 7.5 GB once decoded) is refused at once. Pass ``max_pixels`` to
#: :func:`load_image` for 100-200 MP high-resolution modes.
MAX_PIXELS = 60_000_000

#: Smallest accepted width and height in pixels: a smaller photo cannot hold a face the
#: detector would find (MTCNN's smallest window is 12 px, and faces need margin around them).
MIN_SIDE = 20

#: Colour that transparent pixels are composited on.
BACKGROUND_RGB = (255, 255, 255)

ImageSource: TypeAlias = "Union[str, os.PathLike[str], bytes, bytearray, memoryview, np.ndarray]"

_CHUNK = 1 << 20  # bytes per read when hashing

# Pillow modes that hold 16- or 32-bit integer samples, one channel.
_WIDE_INT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})

# What Pillow raises for bad data. Warning is there for processes that turn warnings into
# errors (``-W error``): Pillow warns about e.g. corrupt EXIF blocks while parsing headers.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, Warning)

# EXIF orientations that swap width and height (the transposes and the 90/270 rotations).
_SWAPPING_ORIENTATIONS = frozenset({5, 6, 7, 8})


class _EOFWatch:
    """Mixin for binary streams that records whether a read came back empty (end of data).

    Pillow only reports truncated data while ``ImageFile.LOAD_TRUNCATED_IMAGES`` is False, and
    any library in the process may set it to True. Decoders keep reading until the image is
    complete, so an empty read *during* decoding means the data ran out: this is our own
    truncation check, independent of that global.
    """

    hit_eof = False

    def read(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        data = super().read(size)  # type: ignore[misc]
        if not data and size != 0:
            self.hit_eof = True
        return data


class _WatchedFile(_EOFWatch, io.BufferedReader):
    pass


class _WatchedBytes(_EOFWatch, io.BytesIO):
    pass


def _megapixels(pixels: int) -> str:
    """``"1600.0 MP"``; small counts keep two significant digits (``"0.0064 MP"``)."""
    mp = pixels / 1e6
    return f"{mp:.1f} MP" if mp >= 1 else f"{mp:.2g} MP"


def _read_error(path: str, exc: OSError) -> ImageError:
    """The one-line error for a file the OS would not let us read."""
    if isinstance(exc, FileNotFoundError):
        return ImageError(path, "file does not exist")
    if isinstance(exc, PermissionError):
        return ImageError(path, "permission denied")
    return ImageError(path, f"cannot read file: {one_line(exc.strerror or exc)}")


def _nonblocking(path: str, flags: int) -> int:
    # Should a FIFO replace the file between the check and the open, opening it does not
    # wait for a writer; the fstat that follows then refuses it.
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def _open_regular(path: str) -> io.FileIO:
    """Open the regular file ``path`` for reading; anything else is refused before any open.

    Raises:
        ImageError: one line for a missing or unreadable path, a folder or a special file.
    """
    # Checked before opening: opening a FIFO blocks, a folder on Windows says "permission denied".
    reason = not_regular_reason(path)
    if reason is not None:
        raise ImageError(path, reason)
    try:
        raw = io.FileIO(path, "rb", opener=_nonblocking)
    except OSError as e:
        raise _read_error(path, e) from None
    try:
        reason = mode_reason(os.fstat(raw.fileno()).st_mode)
        if reason is not None:
            raise ImageError(path, reason)
    except BaseException:
        raw.close()
        raise
    return raw


def _open_file(path: str) -> BinaryIO:
    """Open ``path`` for reading, turning OS errors into one-line :class:`ImageError`."""
    raw = _open_regular(path)
    try:
        if os.fstat(raw.fileno()).st_size == 0:
            raise ImageError(path, "file is empty (0 bytes)")
    except BaseException:
        raw.close()
        raise
    return _WatchedFile(raw)


def _open_unchecked(fp: BinaryIO) -> ImageFile.ImageFile | None:
    """Identify ``fp`` like ``Image.open`` does, but without Pillow's decompression-bomb check.

    Only used after ``Image.open`` refused the image as a bomb, to learn its declared size
    for our own message and limit. Tries the registered formats in Pillow's order; reads
    headers only.
    """
    Image.init()
    fp.seek(0)
    prefix = fp.read(16)
    for fmt in list(Image.ID):
        factory, accept = Image.OPEN[fmt]
        result = accept(prefix) if accept else True
        if not result or isinstance(result, str):
            # A str is accept()'s reason for "looks like this format, but unsupported".
            continue
        fp.seek(0)
        try:
            return factory(fp, "")
        except (SyntaxError, IndexError, TypeError, ValueError, OSError):
            continue
    return None


def _open_image(fp: BinaryIO, path: str | None) -> ImageFile.ImageFile:
    """Parse the header of the image in ``fp`` without decoding pixels."""
    try:
        return Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own limit (its global MAX_IMAGE_PIXELS) is not ours: re-read the header
        # so that max_pixels decides, with a message that gives the size.
        img = _open_unchecked(fp)
        if img is None:
            raise ImageError(path, "image is too large to open") from None
        return img
    except Image.UnidentifiedImageError:
        raise ImageError(path, "not an image, or an unsupported image format") from None
    except _DECODE_ERRORS as e:
        raise ImageError(path, f"corrupt or truncated image: {one_line(e)}") from None


def _exif_orientation(img: Image.Image) -> int:
    """The EXIF Orientation tag (1-8), or 1 when absent or unreadable."""
    try:
        value = img.getexif().get(ExifTags.Base.Orientation, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception as e:  # a broken EXIF block must not cost us the photo
        log.warning("ignoring unreadable EXIF data: %s", one_line(e))
        return 1


def _check_size(width: int, height: int, path: str | None, max_pixels: int | None) -> None:
    """Raise :class:`ImageError` if ``width x height`` is too small or over ``max_pixels``."""
    pixels = width * height
    if max_pixels is not None and pixels > max_pixels:
        raise ImageError(
            path,
            f"image is {width}x{height} pixels ({_megapixels(pixels)}), "
            f"over the {_megapixels(max_pixels)} limit",
        )
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ImageError(
            path, f"image is {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} needed"
        )


def _wide_int_to_uint8(samples: np.ndarray) -> np.ndarray:
    """Scale 16-bit samples (``0..65535``, any int dtype) to ``uint8`` ``0..255``, rounding.

    ``v * 255 / 65535`` rounded to nearest, so 65535 -> 255, 32896 -> 128, 0 -> 0. Values
    outside ``0..65535`` (only possible in 32-bit mode ``I``) are clipped first.
    """
    wide = np.clip(samples.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _composite_on_background(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA -> ``(H, W, 3)`` uint8 RGB over :data:`BACKGROUND_RGB`."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    if (alpha == 255).all():
        return np.ascontiguousarray(rgba[..., :3])
    rgb = rgba[..., :3].astype(np.uint16)
    background = np.array(BACKGROUND_RGB, dtype=np.uint16)
    out = (rgb * alpha + background * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """A loaded Pillow image in any mode -> ``(H, W, 3)`` uint8 RGB, C-contiguous."""
    mode = img.mode
    if mode == "RGB":
        arr = np.asarray(img)
    elif mode in _WIDE_INT_MODES:
        # Pillow's convert("L") clips 16-bit values at 255 instead of scaling them.
        grey = _wide_int_to_uint8(np.asarray(img))
        arr = np.repeat(grey[..., None], 3, axis=2)
    elif mode == "L":
        arr = np.repeat(np.asarray(img)[..., None], 3, axis=2)
    elif mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode == "P" and "transparency" in img.info
    ):
        arr = _composite_on_background(np.asarray(img.convert("RGBA")))
    else:
        # P, 1, CMYK, YCbCr, LAB, HSV, ...: Pillow's own conversion is right for photos.
        # (Float "F" data is taken as 0..255, as Pillow does; float photos are rare.)
        arr = np.asarray(img.convert("RGB"))
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _decode(fp: _EOFWatch, path: str | None, max_pixels: int | None) -> np.ndarray:
    img = _open_image(fp, path)  # type: ignore[arg-type]
    with img:
        # Both limits are checked on the header's size, before the pixels are allocated.
        _check_size(img.width, img.height, path, max_pixels)
        log.debug("decoding %s: %s %s %dx%d", path or "<bytes>", img.format, img.mode,
                  img.width, img.height)
        fp.hit_eof = False
        try:
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(path, "image is too large to decode") from None
        except _DECODE_ERRORS as e:
            raise ImageError(path, f"corrupt or truncated image: {one_line(e)}") from None
        # Only needed when someone switched Pillow to accepting short data: otherwise
        # Pillow's own checks are exact, and some complete files legitimately read to the
        # end (a PNG missing its final IEND chunk).
        if fp.hit_eof and ImageFile.LOAD_TRUNCATED_IMAGES:
            raise ImageError(path, "corrupt or truncated image: image file is truncated")
        if _exif_orientation(img) != 1:
            ImageOps.exif_transpose(img, in_place=True)
        try:
            return _to_rgb_array(img)
        except _DECODE_ERRORS as e:
            raise ImageError(path, f"unsupported pixel format {img.mode}: {one_line(e)}") \
                from None


def _from_array(array: np.ndarray) -> np.ndarray:
    """Validate and copy an in-memory image: uint8 ``(H, W)``, ``(H, W, 1|3|4)``."""
    if array.dtype != np.uint8:
        raise ImageError(None, f"array must be uint8, got {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ImageError(
            None, f"array must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}"
        )
    height, width = array.shape[:2]
    _check_size(width, height, None, None)
    if array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.shape[2] == 4:
        return _composite_on_background(array)
    # A copy, so the caller may reuse its buffer (e.g. a video frame) afterwards.
    return np.array(array, dtype=np.uint8, order="C", copy=True)


def load_image(source: ImageSource, *, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Load a photo as it appears on screen.

    Args:
        source: a file path (``str`` or ``os.PathLike``); encoded file contents (``bytes``,
            ``bytearray`` or ``memoryview``); or an already decoded ``uint8`` array of shape
            ``(H, W)`` (grey), ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA). JPEG, PNG, WebP,
            BMP and TIFF are read by content, so a PNG named ``.jpg`` loads too; other formats
            Pillow can read also work.
        max_pixels: largest accepted ``width * height``, checked from the file header before
            decoding (default :data:`MAX_PIXELS`); ``None`` disables it. Arrays skip it.

    Returns:
        ``(H, W, 3)`` ``uint8`` RGB, C-contiguous, a new array. EXIF orientation is applied,
        so ``H, W`` may be the stored size swapped. Transparent pixels are composited on
        white (fully opaque images are unchanged). Greyscale is repeated into three channels;
        16-bit greyscale is scaled, ``v * 255 / 65535`` rounded (16-bit colour is reduced to
        8 bits by Pillow's decoder).

    Raises:
        ImageError: one line ``PATH: reason`` (``<image>`` for bytes and arrays) when the
            file is missing, a directory, a FIFO, socket or device (refused without opening
            it), unreadable, empty, not an image, truncated or corrupt, smaller than
            :data:`MIN_SIDE` on a side, or over ``max_pixels``.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError(None, "empty image data (0 bytes)")
        with _WatchedBytes(bytes(source)) as fp:
            return _decode(fp, None, max_pixels)
    path = os.fspath(source)
    with _open_file(path) as fp:
        return _decode(fp, path, max_pixels)  # type: ignore[arg-type]


def read_image_info(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` in pixels of the photo at ``path`` as displayed (EXIF-oriented).

    Reads the header only, so it is cheap even for huge files; no size limits apply.

    Raises:
        ImageError: the file is missing, a directory, unreadable, empty or not an image.
    """
    path = os.fspath(path)
    with _open_file(path) as fp:
        with _open_image(fp, path) as img:
            width, height = img.size
            if _exif_orientation(img) in _SWAPPING_ORIENTATIONS:
                return height, width
            return width, height


def image_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes (64 lower-case hex digits), read in 1 MiB chunks.

    Identifies a photo by content, independent of its name or location.

    Raises:
        ImageError: the file is missing, a directory, a special file (FIFO, socket, device:
            refused without opening it) or unreadable (an empty file hashes fine).
    """
    path = os.fspath(path)
    digest = hashlib.sha256()
    with _open_regular(path) as f:
        try:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                digest.update(chunk)
        except OSError as e:
            raise _read_error(path, e) from None
    return digest.hexdigest()
