"""Tests for facesearch.imaging.decode: real photos from shared/data, generated files in tmp_path."""
from __future__ import annotations

import hashlib
import os
import shutil
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageFile

from conftest import CELEB, DATA, QUERIES
from facesearch.errors import ImageError
from facesearch.imaging.decode import MAX_PIXELS, MIN_SIDE, image_sha256, load_image, read_image_info
from facesearch.imaging.photo_files import IMAGE_EXTENSIONS, iter_image_files

OBAMA = QUERIES / "obama1.jpg"
RGBA_PNG = QUERIES / "32bit.png"
# The 5celeb edge cases: a PNG (RGBA) saved under a .jpg name, and a greyscale JPEG.
PNG_NAMED_JPG = (CELEB / "train" / "ben_afflek"
                 / "httpwwwrumenewscomwpcontentuploadsbenafflekxpng.jpg")
GREY_JPG = CELEB / "val" / "madonna" / "httpcdnfuncheapcomwpcontentuploadsVOGUEjpg.jpg"


def assert_rgb(image: np.ndarray) -> None:
    assert isinstance(image, np.ndarray)
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[2] == 3
    assert image.flags.c_contiguous


def assert_image_error(excinfo: pytest.ExceptionInfo, path: Path, *words: str) -> str:
    """The message is one line, starts with the path, and contains every word given."""
    message = str(excinfo.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert path.name in message
    assert excinfo.value.path == str(path)
    for word in words:
        assert word in message, message
    return message


def pil_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A well-formed PNG that declares width x height 8-bit RGB but holds one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


# --- formats -------------------------------------------------------------------------------

def test_jpeg_fixture():
    image = load_image(OBAMA)
    assert_rgb(image)
    np.testing.assert_array_equal(image, pil_rgb(OBAMA))


def test_accepts_str_and_pathlike():
    np.testing.assert_array_equal(load_image(str(OBAMA)), load_image(OBAMA))


def test_every_fixture_loads():
    paths = iter_image_files(DATA / "fixtures") + iter_image_files(CELEB)
    # 9 known + 15 query photos (the licence files beside them are not photos); 93 + 25 in 5celeb.
    assert len(paths) == 9 + 15 + 93 + 25
    for path in paths:
        assert_rgb(load_image(path))


def test_opaque_rgba_png_keeps_colours():
    with Image.open(RGBA_PNG) as img:
        assert img.mode == "RGBA"
        rgba = np.asarray(img)
    assert (rgba[..., 3] == 255).all()
    image = load_image(RGBA_PNG)
    assert_rgb(image)
    np.testing.assert_array_equal(image, rgba[..., :3])


def test_transparent_png_composited_on_white(tmp_path):
    rgba = np.zeros((MIN_SIDE, 30, 4), dtype=np.uint8)
    rgba[:, :10] = (0, 0, 0, 0)          # fully transparent black -> white
    rgba[:, 10:20] = (0, 0, 0, 128)      # half-transparent black -> mid grey
    rgba[:, 20:] = (200, 100, 0, 255)    # opaque -> unchanged
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = load_image(path)
    assert_rgb(image)
    assert (image[:, :10] == 255).all()
    assert (image[:, 10:20] == 127).all()    # 255 * (255 - 128) / 255, rounded
    assert (image[:, 20:] == (200, 100, 0)).all()


def test_palette_png_with_transparency(tmp_path):
    img = Image.new("P", (30, 30), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
    img.paste(1, (0, 0, 15, 30))
    path = tmp_path / "palette.png"
    img.save(path, transparency=1)
    image = load_image(path)
    assert (image[:, :15] == 255).all()          # transparent index -> white
    assert (image[:, 15:] == (255, 0, 0)).all()  # opaque red stays red


def test_grey_png_and_grey_jpeg(tmp_path):
    with Image.open(OBAMA) as img:
        grey = img.convert("L")
    path = tmp_path / "grey.png"
    grey.save(path)
    image = load_image(path)
    assert_rgb(image)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], np.asarray(grey))

    with Image.open(GREY_JPG) as img:
        assert img.mode == "L"
        expected = np.asarray(img)
    image = load_image(GREY_JPG)
    assert_rgb(image)
    np.testing.assert_array_equal(image[..., 1], expected)


def test_grey_with_alpha_png(tmp_path):
    la = np.zeros((MIN_SIDE, 40, 2), dtype=np.uint8)
    la[:, :20] = (50, 255)
    la[:, 20:] = (50, 0)
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    image = load_image(path)
    assert (image[:, :20] == 50).all()
    assert (image[:, 20:] == 255).all()


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grey_is_scaled_not_clipped(tmp_path, suffix):
    gradient = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(gradient).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")    # really stored and read as 16-bit
    image = load_image(path)
    assert_rgb(image)
    grey = image[..., 0]
    np.testing.assert_array_equal(image[..., 1], grey)
    np.testing.assert_array_equal(image[..., 2], grey)
    flat = grey.ravel()
    assert flat[0] == 0
    assert flat[65535] == 255
    assert flat[32896] == 128
    assert flat[257 * 100] == 100
    expected = np.round(np.arange(65536) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(flat, expected)
    assert len(np.unique(flat)) == 256      # the full 8-bit range is used


@pytest.mark.parametrize("fmt,suffix", [("WEBP", ".webp"), ("BMP", ".bmp"), ("TIFF", ".tiff"),
                                        ("PNG", ".png")])
def test_lossless_formats_match_source(tmp_path, fmt, suffix):
    source = pil_rgb(OBAMA)
    path = tmp_path / f"photo{suffix}"
    options = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(source).save(path, fmt, **options)
    image = load_image(path)
    assert_rgb(image)
    np.testing.assert_array_equal(image, source)


def test_content_not_extension_decides(tmp_path):
    image = load_image(PNG_NAMED_JPG)
    assert_rgb(image)
    assert image.shape == (224, 300, 3)

    renamed = tmp_path / "really_a_png.jpg"
    shutil.copyfile(RGBA_PNG, renamed)
    np.testing.assert_array_equal(load_image(renamed), load_image(RGBA_PNG))

    jpeg_as_png = tmp_path / "really_a_jpeg.png"
    shutil.copyfile(OBAMA, jpeg_as_png)
    np.testing.assert_array_equal(load_image(jpeg_as_png), load_image(OBAMA))


# --- EXIF orientation ----------------------------------------------------------------------

def save_jpeg(array: np.ndarray, path: Path, orientation: int | None) -> None:
    img = Image.fromarray(array)
    exif = Image.Exif()
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_6_rotates_clockwise(tmp_path):
    stored = np.zeros((40, 60, 3), dtype=np.uint8)  # 60 wide, 40 high as stored
    stored[:20, :30] = (255, 0, 0)      # top-left red
    stored[:20, 30:] = (0, 255, 0)      # top-right green
    stored[20:, :30] = (0, 0, 255)      # bottom-left blue
    stored[20:, 30:] = (255, 255, 255)  # bottom-right white
    path = tmp_path / "rotated.jpg"
    save_jpeg(stored, path, orientation=6)

    image = load_image(path)
    assert image.shape == (60, 40, 3)   # displayed upright: 40 wide, 60 high
    assert read_image_info(path) == (40, 60)
    # Orientation 6 = rotate 90 degrees clockwise to display: stored top-left -> top-right.
    def colour(y, x):
        return image[y - 5:y + 5, x - 5:x + 5].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(colour(15, 30), (255, 0, 0), atol=25)      # top-right
    np.testing.assert_allclose(colour(45, 30), (0, 255, 0), atol=25)      # bottom-right
    np.testing.assert_allclose(colour(15, 10), (0, 0, 255), atol=25)      # top-left
    np.testing.assert_allclose(colour(45, 10), (255, 255, 255), atol=25)  # bottom-left


@pytest.mark.parametrize("orientation,turn", [(3, 2), (6, -1), (8, 1)])
def test_exif_orientation_on_real_photo(tmp_path, orientation, turn):
    pixels = pil_rgb(OBAMA)
    plain, tagged = tmp_path / "plain.jpg", tmp_path / "tagged.jpg"
    save_jpeg(pixels, plain, orientation=None)
    save_jpeg(pixels, tagged, orientation=orientation)
    upright = load_image(plain)
    # The same encoder on the same pixels gives the same decoded data: compare exactly.
    np.testing.assert_array_equal(load_image(tagged), np.rot90(upright, k=turn))
    assert load_image(tagged).flags.c_contiguous


# --- other inputs --------------------------------------------------------------------------

def test_bytes_input():
    data = OBAMA.read_bytes()
    expected = load_image(OBAMA)
    np.testing.assert_array_equal(load_image(data), expected)
    np.testing.assert_array_equal(load_image(bytearray(data)), expected)
    np.testing.assert_array_equal(load_image(memoryview(data)), expected)


def test_bad_bytes_input():
    with pytest.raises(ImageError, match=r"^<image>: empty image data"):
        load_image(b"")
    with pytest.raises(ImageError, match=r"^<image>: not an image"):
        load_image(b"hello, this is text\n" * 10)


def test_ndarray_input():
    rgb = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    out = load_image(rgb)
    assert_rgb(out)
    np.testing.assert_array_equal(out, rgb)
    assert not np.shares_memory(out, rgb)

    # Non-contiguous views are accepted and returned contiguous.
    out = load_image(rgb[:, ::-1])
    assert_rgb(out)
    np.testing.assert_array_equal(out, rgb[:, ::-1])

    grey = rgb[..., 0].copy()
    out = load_image(grey)
    assert_rgb(out)
    np.testing.assert_array_equal(out, np.stack([grey] * 3, axis=2))

    rgba = np.dstack([rgb, np.full((30, 40), 255, np.uint8)])
    rgba[:, :10, 3] = 0
    out = load_image(rgba)
    assert (out[:, :10] == 255).all()
    np.testing.assert_array_equal(out[:, 10:], rgb[:, 10:])


@pytest.mark.parametrize("array,words", [
    (np.zeros((30, 30, 3), dtype=np.float32), "uint8"),
    (np.zeros((30, 30, 2), dtype=np.uint8), "shape"),
    (np.zeros((30,), dtype=np.uint8), "shape"),
    (np.zeros((5, 30, 3), dtype=np.uint8), "image is 30x5 pixels; at least 20x20 needed"),
])
def test_bad_ndarray_input(array, words):
    with pytest.raises(ImageError) as excinfo:
        load_image(array)
    assert str(excinfo.value).startswith("<image>: ")
    assert words in str(excinfo.value)


# --- bad files -----------------------------------------------------------------------------

def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n" * 20)
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert_image_error(excinfo, path, "not an image")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.touch()
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert_image_error(excinfo, path, "empty", "0 bytes")


def test_truncated_jpeg(tmp_path):
    data = OBAMA.read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert_image_error(excinfo, path, "truncated")


def test_truncated_png(tmp_path):
    data = RGBA_PNG.read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert_image_error(excinfo, path, "truncated")


@pytest.mark.parametrize("source", [OBAMA, RGBA_PNG])
def test_truncation_caught_even_if_pillow_told_to_allow_it(tmp_path, monkeypatch, source):
    # Another library in the process may switch this global on; truncated photos must
    # still be refused.
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = source.read_bytes()
    path = tmp_path / f"cut{source.suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert_image_error(excinfo, path, "truncated")
    # ... while complete photos still load under that setting.
    assert_rgb(load_image(source))


def test_pillow_globals_untouched(tmp_path):
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    load_image(OBAMA)
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(50_000, 50_000))
    with pytest.raises(ImageError):
        load_image(huge)
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_one_pixel_image(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path)
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    message = assert_image_error(excinfo, path)
    assert message == f"{path}: image is 1x1 pixels; at least 20x20 needed"


def test_smallest_accepted_size(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (MIN_SIDE, MIN_SIDE)).save(path)
    assert load_image(path).shape == (MIN_SIDE, MIN_SIDE, 3)
    narrow = tmp_path / "narrow.png"
    Image.new("RGB", (500, MIN_SIDE - 1)).save(narrow)
    with pytest.raises(ImageError, match="500x19 pixels"):
        load_image(narrow)


def test_huge_png_header_fails_fast(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(50_000, 50_000))
    assert path.stat().st_size < 200
    start = time.perf_counter()
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    elapsed = time.perf_counter() - start
    message = assert_image_error(excinfo, path)
    assert message == (f"{path}: image is 50000x50000 pixels (2500.0 MP), "
                       "over the 60.0 MP limit")
    assert elapsed < 0.5
    # The header alone is still readable.
    assert read_image_info(path) == (50_000, 50_000)


def test_over_our_limit_but_under_pillows(tmp_path):
    # 70 MP: below Pillow's own bomb threshold, so only our max_pixels check can stop it.
    path = tmp_path / "big.png"
    path.write_bytes(png_header_only(10_000, 7_000))
    start = time.perf_counter()
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert time.perf_counter() - start < 0.5
    assert str(excinfo.value) == (f"{path}: image is 10000x7000 pixels (70.0 MP), "
                                  f"over the {MAX_PIXELS / 1e6:.1f} MP limit")


def test_max_pixels_argument(tmp_path):
    path = tmp_path / "small.png"
    Image.new("RGB", (100, 60)).save(path)
    with pytest.raises(ImageError) as excinfo:
        load_image(path, max_pixels=5_000)
    assert str(excinfo.value) == (f"{path}: image is 100x60 pixels (0.006 MP), "
                                  "over the 0.005 MP limit")
    assert load_image(path, max_pixels=6_000).shape == (60, 100, 3)
    assert load_image(path, max_pixels=None).shape == (60, 100, 3)


def test_nonexistent_path(tmp_path):
    path = tmp_path / "missing.jpg"
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert_image_error(excinfo, path, "does not exist")


def test_directory(tmp_path):
    path = tmp_path / "folder.jpg"
    path.mkdir()
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert_image_error(excinfo, path, "directory")


def test_permission_denied(tmp_path):
    """Root reads any plain file, so as root a write-only kernel file stands in for one."""
    if os.geteuid() == 0:
        path = Path("/proc/sys/vm/drop_caches")  # mode 0200 and enforced for root too
        for read in (load_image, image_sha256):
            with pytest.raises(ImageError) as excinfo:
                read(path)
            assert_image_error(excinfo, path, "permission denied")
        return
    path = tmp_path / "locked.jpg"
    shutil.copyfile(OBAMA, path)
    path.chmod(0)
    try:
        for read in (load_image, image_sha256):
            with pytest.raises(ImageError) as excinfo:
                read(path)
            assert_image_error(excinfo, path, "permission denied")
    finally:
        path.chmod(0o600)


# --- hashing and listing -------------------------------------------------------------------

def test_image_sha256_streams_whole_file(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, 3 * 2**20 + 123, dtype=np.uint8).tobytes()
    path = tmp_path / "blob.jpg"
    path.write_bytes(data)
    assert image_sha256(path) == hashlib.sha256(data).hexdigest()
    assert image_sha256(str(path)) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty.jpg"
    empty.touch()
    assert image_sha256(empty) == hashlib.sha256(b"").hexdigest()


def test_image_sha256_errors(tmp_path):
    with pytest.raises(ImageError) as excinfo:
        image_sha256(tmp_path / "missing.jpg")
    assert_image_error(excinfo, tmp_path / "missing.jpg", "does not exist")
    with pytest.raises(ImageError) as excinfo:
        image_sha256(tmp_path)
    assert_image_error(excinfo, tmp_path, "directory")


@pytest.mark.parametrize("suffix", sorted(IMAGE_EXTENSIONS))
def test_every_listed_extension_is_found_and_decoded(tmp_path, suffix):
    """A photo written in the format Pillow files under each extension is listed and loads."""
    y, x = np.mgrid[0:48, 0:64]
    source = np.dstack([x * 4, y * 5, (x + y) * 2]).astype(np.uint8)  # smooth, so JPEG keeps it close
    fmt = Image.registered_extensions()[suffix]
    path = tmp_path / f"photo{suffix.upper()}"
    Image.fromarray(source).save(path, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    (tmp_path / "notes.txt").write_text("not a photo")
    assert iter_image_files(tmp_path) == [path]
    image = load_image(path)
    assert_rgb(image)
    if fmt == "JPEG":  # lossy: close, not equal
        assert np.abs(image.astype(int) - source).mean() < 3
    else:
        np.testing.assert_array_equal(image, source)


def test_image_extensions_cannot_be_changed():
    with pytest.raises(AttributeError):
        IMAGE_EXTENSIONS.add(".gif")


def test_iter_image_files(tmp_path):
    names = [
        "b.JPG", "a.png", "z.webp", "y.bmp", "x.tif", "w.Jpeg",
        "notes.txt", "a.jpg.txt", "noext", ".hidden.jpg", "._resource.jpg",
        "sub/c.jpeg", "sub/.secret.png", "sub/deeper/d.TIFF",
        ".thumbnails/t.jpg", "sub/.cache/e.jpg",
        "a_sub/f.png",
    ]
    for name in names:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (tmp_path / "dir.jpg").mkdir()  # a folder named like a photo is not a photo

    found = iter_image_files(tmp_path)
    assert all(isinstance(p, Path) for p in found)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a.png", "a_sub/f.png", "b.JPG", "sub/c.jpeg", "sub/deeper/d.TIFF",
        "w.Jpeg", "x.tif", "y.bmp", "z.webp",
    ]
    assert iter_image_files(str(tmp_path)) == found


def test_iter_image_files_errors(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        iter_image_files(tmp_path / "nowhere")
    afile = tmp_path / "a.jpg"
    afile.write_bytes(b"x")
    with pytest.raises(ImageError, match="not a folder"):
        iter_image_files(afile)
    assert iter_image_files(tmp_path) == [afile]


def test_iter_image_files_on_fixtures():
    found = iter_image_files(QUERIES)
    assert all(p.parent == QUERIES for p in found)
    assert [p.name for p in found] == [
        "32bit.png", "alex_lacamoire1.jpg", "johnsnow_test1.jpg", "kit_with_rose.jpg", "lin-manuel-miranda.png",
        "multiface.jpg", "obama-1080p.jpg", "obama-240p.jpg", "obama-480p.jpg", "obama-720p.jpg", "obama1.jpg",
        "obama_and_biden.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg", "two_people.jpg",
    ]
