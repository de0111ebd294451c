"""Photos of every kind become RGB arrays; what cannot be read gets one clear line (imgrec_helpers.data)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from imgrec_helpers import data
from imgrec_helpers.errors import DataError, ImageError


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("mode,fmt", [("L", "PNG"), ("RGB", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"),
                                      ("CMYK", "JPEG"), ("LA", "PNG"), ("1", "PNG")])
def test_every_mode_becomes_rgb(tmp_path, mode, fmt):
    img = Image.new(mode, (40, 30))
    path = _save(img, tmp_path / f"x.{fmt.lower()}", format=fmt)
    arr = data.load_image(path)
    assert arr.shape == (30, 40, 3) and arr.dtype == np.uint8
    assert data.load_image(path, 32).shape == (32, 32, 3)


def test_transparent_png_is_composited_on_white(tmp_path):
    img = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent red
    arr = data.load_image(_save(img, tmp_path / "t.png"))
    assert (arr == 255).all()


def test_16_bit_png_keeps_its_brightness(tmp_path):
    img = Image.fromarray(np.full((10, 10), 65535 // 2, np.uint16))
    path = _save(img, tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")
    arr = data.load_image(path)
    assert arr.shape == (10, 10, 3) and 120 <= arr.mean() <= 135  # mid grey, not clipped white


def test_center_crop_keeps_proportions(tmp_path):
    arr = np.zeros((100, 300, 3), np.uint8)
    arr[:, 100:200] = 255  # a white square in the middle of a wide photo
    path = _save(Image.fromarray(arr), tmp_path / "wide.png")
    assert data.load_image(path, 10).mean() > 250          # cropped to the white centre
    assert data.load_image(path, 10, crop=False).mean() < 150  # squeezed: black sides remain


def test_very_large_jpeg_is_decoded_small(tmp_path):
    import tracemalloc

    path = tmp_path / "huge.jpg"
    Image.new("RGB", (10_000, 10_000), (10, 200, 30)).save(path, quality=50)
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning would be noise in a lesson or the CLI
        arr = data.load_image(path, 224)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert arr.shape == (224, 224, 3) and abs(int(arr[..., 1].mean()) - 200) < 5
    assert peak < 200 * 2**20  # a full decode would need 300 MB


def test_image_over_pillows_pixel_limit_is_called_too_large_not_unreadable(tmp_path, monkeypatch):
    path = tmp_path / "panorama.png"
    Image.new("RGB", (100, 50)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # stands in for Pillow's 89 million, refused above 2x
    with pytest.raises(ImageError) as err:
        data.load_image(path, 32)
    message = str(err.value)
    assert message == (f"{path}: too large to decode safely (5,000 pixels; Pillow refuses more than 2,000); "
                       "shrink it, e.g. to 4,000 pixels across, and try again")


@pytest.mark.parametrize("content,name,says", [(b"\xff\xd8\xff\xe0" + b"\x00" * 20, "truncated.jpg", "not a readable image"),
                                               (b"hello, not an image", "notes.jpg", "not a readable image"),
                                               (b"", "empty.png", "an empty file (0 bytes)")])
def test_unreadable_files_name_the_file(tmp_path, content, name, says):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError) as err:
        data.load_image(path, 32)
    message = str(err.value)
    assert name in message and says in message and "\n" not in message


def test_truncated_real_jpeg(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(ImageError, match="cut.jpg"):
        data.load_image(path, 32)


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such image file"):
        data.load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        data.load_image(tmp_path)


def test_class_folders_errors(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        data.class_folders(tmp_path / "missing")
    (tmp_path / "dog").mkdir()
    with pytest.raises(DataError, match="no images found"):
        data.class_folders(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "dog" / "a.jpg")
    with pytest.raises(DataError, match="only one class folder.*dog"):
        data.class_folders(tmp_path)
    (tmp_path / "cat").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "cat" / "b.png")
    assert data.class_folders(tmp_path) == ["cat", "dog"]
    folder = data.load_image_folder(tmp_path, 16)
    assert folder.images.shape == (2, 16, 16, 3) and folder.labels.tolist() == [0, 1]
    assert folder.class_names == ["cat", "dog"]


def _heic(path, img: Image.Image):
    import pillow_heif  # a dependency of the course (pyproject.toml): missing, it is a failure, not a skip
    pillow_heif.from_pillow(img).save(path, quality=90)
    return path


def test_heic_photos_from_iphones_are_read(tmp_path):
    """HEIC, iPhones' default format, which Pillow alone cannot identify: read through pillow-heif."""
    img = Image.new("RGB", (60, 40), (200, 30, 30))
    img.paste((20, 40, 220), (30, 0, 60, 40))  # right half blue
    arr = data.load_image(_heic(tmp_path / "IMG_0001.HEIC", img))
    assert arr.shape == (40, 60, 3)
    assert arr[:, :25, 0].mean() > 150 and arr[:, 35:, 2].mean() > 150  # red left, blue right: the real pixels
    assert data.load_image(tmp_path / "IMG_0001.HEIC", 32).shape == (32, 32, 3)


def test_a_heic_over_pillows_pixel_limit_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    path = _heic(tmp_path / "huge.heic", Image.new("RGB", (128, 96), (0, 0, 255)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # so that 128 x 96 counts as huge
    with pytest.raises(ImageError, match=r"huge\.heic: too large to decode safely \(12,288 pixels; Pillow refuses "
                                         r"more than 2,000\); shrink it"):
        data.load_image(path)


def test_a_truncated_heic_or_heic_without_its_reader_is_one_line(tmp_path, monkeypatch):
    whole = _heic(tmp_path / "whole.heic", Image.new("RGB", (64, 64), (0, 128, 0))).read_bytes()
    (tmp_path / "cut.heic").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ImageError, match=r"cut\.heic: not a readable image \(ValueError: .*\); replace it") as err:
        data.load_image(tmp_path / "cut.heic")
    assert "\n" not in str(err.value) and " )" not in str(err.value)
    monkeypatch.setitem(__import__("sys").modules, "pillow_heif", None)  # as where the package is missing
    with pytest.raises(ImageError, match=r"whole\.heic: a HEIC/HEIF photo .*pip install pillow-heif, or convert"):
        data.load_image(tmp_path / "whole.heic")


def test_folders_list_every_photo_format_load_image_reads(tmp_path):
    """A folder of a phone's or camera's photos: HEIC, AVIF, JFIF, PPM are listed like JPEG and PNG, and each
    listed format really loads; other files (notes, icons) are not images."""
    img = Image.new("RGB", (20, 20), (10, 200, 10))
    _heic(tmp_path / "a.HEIC", img)
    img.save(tmp_path / "b.jfif", format="JPEG")
    img.save(tmp_path / "c.ppm")
    img.save(tmp_path / "d.avif")
    img.save(tmp_path / "e.PNG")
    (tmp_path / "notes.txt").write_text("not an image")
    img.save(tmp_path / "icon.ico")
    listed = data.list_images(tmp_path)
    assert [p.name for p in listed] == ["a.HEIC", "b.jfif", "c.ppm", "d.avif", "e.PNG"]
    for path in listed:
        assert data.load_image(path, 8)[..., 1].mean() > 150, path.name


def test_a_rotated_heic_is_turned_upright_once_like_a_jpeg(tmp_path):
    """A phone held upright stores the orientation as EXIF 6: the HEIC comes out as the JPEG does, not twice turned."""
    img = Image.new("RGB", (60, 40), (200, 30, 30))
    img.paste((20, 40, 220), (30, 0, 60, 40))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view
    img.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    import pillow_heif  # a dependency of the course (pyproject.toml): missing, it is a failure, not a skip
    pillow_heif.from_pillow(img).save(tmp_path / "rot.heic", exif=exif.tobytes(), quality=90)
    jpeg, heic = data.load_image(tmp_path / "rot.jpg"), data.load_image(tmp_path / "rot.heic")
    assert jpeg.shape == heic.shape == (60, 40, 3)
    assert np.abs(jpeg.astype(int) - heic.astype(int)).mean() < 10


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_as_pillow_turns_it(tmp_path, orientation):
    from PIL import ImageOps

    img = Image.new("RGB", (60, 40), (200, 30, 30))
    img.paste((20, 40, 220), (30, 0, 60, 40))
    img.paste((0, 255, 0), (0, 0, 10, 10))  # a corner mark: every flip and turn looks different
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(img, tmp_path / "o.png", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(data.load_image(path), expected)


def test_photos_with_damaged_exif_load_quietly(tmp_path, recwarn):
    """Bytes changed at random inside a JPEG's EXIF block, 300 times: every photo loads with its real pixels,
    no Pillow warning escapes ("Corrupt EXIF data"), and nothing raises (exif_transpose raised struct.error)."""
    import io
    import random

    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x0131] = 6, "Camera", "Editor 1.0"
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(buffer, "JPEG", exif=exif.tobytes())
    whole = buffer.getvalue()
    start = whole.index(b"Exif\x00\x00")
    end = start - 2 + int.from_bytes(whole[start - 2:start], "big")  # the APP1 segment's payload
    rng = random.Random(1)
    for _ in range(300):
        damaged = bytearray(whole)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(start, end)] = rng.randrange(256)
        (tmp_path / "p.jpg").write_bytes(bytes(damaged))
        arr = data.load_image(tmp_path / "p.jpg")
        assert arr.shape in ((30, 40, 3), (40, 30, 3)) and abs(arr.mean() - 20) < 2
    assert not [w for w in recwarn if "PIL" in w.filename], [str(w.message) for w in recwarn][:3]
