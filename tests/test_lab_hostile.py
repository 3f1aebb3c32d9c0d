"""Hostile input to the 2-D lab, below the app (issue 30, item 4): the text target's word
and the uploaded picture (genlab.lab.targets) and the URL's parameters (genlab.lab.state).
Each is refused, or taken, with one line saying what was wrong and what is allowed; none
raises anything but that ValueError, and a picture too large is refused from its header
before a pixel is decoded."""
from __future__ import annotations

import io
import string
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from genlab.lab.state import MAX_PROBLEMS, SHOWN, LabState, from_query
from genlab.lab.targets import (MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, MAX_TEXT, Grid, clean_text,
                                grid_density, image_target, text_target)

GRID = Grid(64)


def png_header(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG that declares width x height grey pixels and holds ``idat`` as its data: a
    few dozen bytes can declare a picture of gigabytes (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(idat))
            + chunk(b"IEND", b""))


def picture(width: int = 40, height: int = 30, fmt: str = "PNG") -> bytes:
    """A dark square on white, encoded as ``fmt``."""
    a = np.full((height, width), 255, np.uint8)
    a[height // 4: 3 * height // 4, width // 4: 3 * width // 4] = 0
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def no_decoding(monkeypatch):
    """Decoding pixels fails the test: a refusal must come from the header alone."""
    def load(self):
        raise AssertionError(f"decoded a {self.size} picture")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


# -- typed text ---------------------------------------------------------------------------
@pytest.mark.parametrize("text,said", [
    ("w" * 10_000, "1 to 12 characters (got 10,000)"),
    ("   \t ", "1 to 12 characters (got only spaces)"),
    ("", "1 to 12 characters (got none)"),
    ("a\x00b", "control or invisible characters (U+0000)"),
    ("red\x1b[31m", "control or invisible characters (U+001B)"),
    ("a\tb", "U+0009"),
    ("\u202eevil", "U+202E"),  # a right-to-left override
    ("zero\u200bwidth", "U+200B"),
    ("hi 🙂", "no glyph for '🙂'"),
    ("Café", "no glyph for 'é'"),
])
def test_bad_text_is_refused_in_one_line_saying_what_is_allowed(text, said):
    with pytest.raises(ValueError) as e:
        clean_text(text)
    msg = str(e.value)
    assert said in msg and "\n" not in msg and len(msg) < 200
    with pytest.raises(ValueError, match="1 to 12 characters"):
        text_target(text, GRID)


def test_every_printable_ascii_character_is_taken_and_drawn():
    chars = string.printable[:95]  # digits, letters, punctuation, space
    for i in range(0, len(chars), MAX_TEXT):
        word = chars[i:i + MAX_TEXT]
        if word.strip():
            assert clean_text(word) == word.strip()
            assert grid_density(text_target(word, GRID), GRID).sum() > 0
    assert clean_text("  Hi there  ") == "Hi there"


# -- the URL ------------------------------------------------------------------------------
@pytest.mark.parametrize("key,value,said", [
    ("text", "x" * 100_000, "(100,000 characters)"),
    ("text", "a\x00b", "U+0000"),
    ("text", "🙂🙂", "no glyph for '🙂'"),
    ("text", "      ", "only spaces"),
    ("seed", "9" * 5000, "(5,000 characters)"),  # past Python's int() digit limit
    ("seed", "-1", "a whole number from 0 to 2147483647"),
    ("batch", "99999999999999999999", "a whole number from 8 to 4096"),
    ("lr", "1e999", "a number from 1e-05 to 0.1"),
    ("lr", "-0.001", "a number from 1e-05 to 0.1"),
    ("families", "../../etc/passwd", "comma-separated, of realnvp"),
])
def test_a_hostile_url_value_is_one_short_line_and_its_default(key, value, said):
    state, problems = from_query({key: value, "seed": "3"} if key != "seed" else {key: value})
    assert getattr(state, key) == getattr(LabState(), key)
    assert len(problems) == 1 and said in problems[0], problems
    line = problems[0]
    assert line.startswith(f"URL parameter {key}=") and "\n" not in line and "\x00" not in line
    assert len(line) < 300  # the value is cut to SHOWN characters, not echoed whole


def test_a_huge_or_hidden_parameter_name_is_shown_cut_and_escaped():
    _, problems = from_query({"k" * 100_000: "1", "a\x00\x1b": "2"})
    assert len(problems) == 2
    assert f"'{'k' * SHOWN}'… (100,000 characters)" in problems[0] and len(problems[0]) < 300
    assert "'a\\x00\\x1b'" in problems[1] and "\x00" not in problems[1]


def test_many_bad_parameters_are_said_in_a_bounded_number_of_lines():
    state, problems = from_query({f"p{i}": "x" for i in range(1000)} | {"seed": "5"})
    assert state.seed == 5
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == "... and 992 more URL parameters not taken"


# -- uploaded pictures ----------------------------------------------------------------------
def test_a_good_png_and_a_jpeg_become_densities():
    for fmt in ("PNG", "JPEG"):
        t = image_target(picture(fmt=fmt), GRID)
        assert grid_density(t, GRID).sum() * GRID.cell_area == pytest.approx(1.0)
    photo = image_target(picture(3000, 2000, "JPEG"), GRID)  # decoded at a reduced scale (draft)
    assert (photo.values > 0.5).mean() > 0.1


@pytest.mark.parametrize("data,said", [
    (b"hello, I am a text file", "not a readable image (UnidentifiedImageError); upload a PNG or JPEG"),
    (picture()[:60], "not a readable image (image file is truncated"),
    (picture(fmt="GIF"), "not a readable image (UnidentifiedImageError)"),  # only PNG and JPEG decoders
    (picture(fmt="BMP"), "not a readable image (UnidentifiedImageError)"),
])
def test_a_file_that_is_not_a_whole_png_or_jpeg_is_one_line(data, said):
    with pytest.raises(ValueError) as e:
        image_target(data, GRID)
    assert said in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("side", [5000, 12_000, 30_000])
def test_a_decompression_bomb_is_refused_from_its_header(side, no_decoding):
    """5000^2 is over genlab's limit only; 12000^2 makes Pillow warn, 30000^2 raise
    (DecompressionBombWarning, DecompressionBombError): each is the same one line."""
    bomb = png_header(side, side)
    assert len(bomb) < 100 and side * side > MAX_IMAGE_PIXELS
    with pytest.raises(ValueError) as e:
        image_target(bomb, GRID)
    assert f"more than the {MAX_IMAGE_PIXELS:,} pixels (4096x4096) allowed" in str(e.value)


def test_a_file_over_the_byte_limit_is_refused_before_it_is_opened(no_decoding, monkeypatch):
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("opened a file over the limit"))
    big = picture() + bytes(50 * 2 ** 20)  # 50 MB
    with pytest.raises(ValueError) as e:
        image_target(big, GRID)
    assert f"the file has {len(big):,} bytes, more than the {MAX_IMAGE_BYTES:,} (10 MB) allowed" in str(e.value)


def test_a_very_thin_picture_keeps_its_ink():
    line = np.zeros((1, 20_000), np.uint8)  # black: all ink
    buf = io.BytesIO()
    Image.fromarray(line).save(buf, "PNG")
    t = image_target(buf.getvalue(), GRID)
    assert t.values.sum() > 0  # fitted to at least one pixel across, not "blank"
