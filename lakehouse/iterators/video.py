"""The rows of ``frame_iterator``: frames decoded with PyAV, one at a time, encoded as JPEG.

The file is read packet by packet (demuxing, which does not decode). Every packet is counted,
which gives each frame its exact index in presentation order (the number of packets shown
before it: one frame per packet). What is decoded depends on the frames wanted:

- every frame, or ``every_n``: every packet is decoded;
- ``keyframes_only``: the decoder skips every frame but the keyframes
  (``skip_frame = "NONKEY"``);
- ``fps``: packets before the next wanted time are held back, not decoded. When a keyframe at
  or before that time arrives, the held packets are dropped: decoding starts again at that
  keyframe, as a seek to it would, but without going back over packets already read. When a
  packet at or after the wanted time arrives, the held packets are decoded, those before the
  wanted time with ``skip_frame = "NONREF"``: frames that no other frame refers to are not
  decoded at all.

Frames become baseline JPEG images (JFIF, 4:2:0, quality 90) encoded by libjpeg-turbo
(simplejpeg). A frame whose chroma is already 4:2:0 (the yuv420p of nearly all H.264, HEVC, VP9
and AV1 video, 8 or 10 bits) is encoded straight from its YUV planes, without going through
RGB: FFmpeg's swscale only turns them into what JFIF holds (full-range BT.601 YCbCr): a range
stretch of the planes for limited-range BT.601 video, a matrix change too for BT.709, nothing
at all for yuvj420p. Any other frame (4:4:4, 4:2:2, RGB, grey, palette) is converted to RGB and
left to libjpeg-turbo to subsample, as Pillow would. A 720p frame is encoded in about 2.6 ms
here against 3.6 ms through ``to_ndarray("rgb24")`` and Pillow, for the same image; decoding
included, 1.2-1.3x the frames/s (see benchmarks/iterators.py).
"""

from __future__ import annotations

import heapq
import math
import threading
from collections.abc import Iterator
from typing import Any

import av
import av.container
import numpy as np
import simplejpeg
from av.video.reformatter import VideoReformatter

from lakehouse.functions.audio import open_av, seconds
from lakehouse.functions.video import stream_fps, video_stream

EPSILON = 1e-6  # seconds: timestamps this close to a wanted time count as at it
JPEG_QUALITY = 90  # as lakehouse.functions.image.encode_image writes JPEG

_decoded = 0
_decoded_lock = threading.Lock()


def decoded_frames() -> int:
    """How many video frames the frame iterators have decoded in this process so far: a
    counter that shows what sampling saves (tests and benchmarks compare it before and after).

    >>> before = decoded_frames()
    >>> rows = list(lh.iterators.frame_iterator(clips.video, keyframes_only=True).rows(
    ...     clips.select(clips.video).collect().item()))
    >>> len(rows), decoded_frames() - before  # one keyframe, nothing else decoded
    (1, 1)
    """
    return _decoded


def _count_decoded() -> None:
    global _decoded
    with _decoded_lock:
        _decoded += 1


class _Wanted:
    """Which frames to keep, and (with ``fps``) the next wanted time."""

    def __init__(self, fps: float | None, every_n: int | None, keyframes_only: bool) -> None:
        self.fps = fps
        self.every_n = every_n
        self.keyframes_only = keyframes_only
        self.target = 0.0  # seconds: keep the first frame at or after it (fps only)

    @property
    def sparse(self) -> bool:
        """Whether packets before :attr:`target` may go undecoded."""
        return self.fps is not None

    def keep(self, index: int, time: float, keyframe: bool) -> bool:
        if self.keyframes_only:
            return keyframe  # a decoder that ignores skip_frame still gives only keyframes
        if self.every_n is not None:
            return index % self.every_n == 0
        if self.fps is None:
            return True
        if time < self.target - EPSILON:
            return False
        self.target = (math.floor((time + EPSILON) * self.fps) + 1) / self.fps
        return True


class _Order:
    """Presentation indexes from packet timestamps: a frame's index is the number of packets
    whose timestamp is before its own (frames come out of the decoder in presentation order,
    and only after the packets shown before them have been read)."""

    def __init__(self) -> None:
        self._ahead: list[int] = []  # timestamps read but not yet passed
        self._passed = 0

    def add(self, pts: int) -> None:
        heapq.heappush(self._ahead, pts)

    def index(self, pts: int) -> int:
        while self._ahead and self._ahead[0] < pts:
            heapq.heappop(self._ahead)
            self._passed += 1
        return self._passed


def frames(data: bytes, *, fps: float | None, every_n: int | None,
           keyframes_only: bool) -> Iterator[dict[str, Any]]:
    """One row per wanted frame of the video ``data``: ``frame`` (JPEG bytes),
    ``frame_index`` and ``timestamp`` (see the module docstring); ValueError if the video
    cannot be read."""
    with open_av(data, "video") as container:
        stream = video_stream(container)
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        wanted = _Wanted(fps, every_n, keyframes_only)
        reformatter = VideoReformatter()  # one swscale context for the whole video
        for index, time, frame in _decode(container, stream, wanted):
            if wanted.keep(index, time, frame.key_frame):
                yield {"frame": _jpeg(frame, reformatter), "frame_index": index,
                       "timestamp": time}


def _decode(container: av.container.InputContainer, stream: Any,
            wanted: _Wanted) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """(index, seconds from the start, frame) of the frames decoded, in presentation order."""
    codec = stream.codec_context
    start = stream.start_time or 0
    order = _Order()
    held: list[av.Packet] = []
    count = 0
    rate = stream_fps(stream) or 1.0

    def timed(frame: av.VideoFrame) -> tuple[int, float, av.VideoFrame]:
        nonlocal count
        count += 1
        _count_decoded()
        if frame.pts is None:  # a raw stream without timestamps: frames timed by their count
            return count - 1, (count - 1) / rate, frame
        return order.index(frame.pts), _seconds(frame.pts - start, stream), frame

    for packet in container.demux(stream):
        if packet.pts is None and not packet.size:
            continue  # the empty packet that ends the stream: flushed below
        time = None if packet.pts is None else _seconds(packet.pts - start, stream)
        if packet.pts is not None:
            order.add(packet.pts)
        if (wanted.sparse and packet.is_keyframe and time is not None
                and time <= wanted.target + EPSILON):
            held.clear()  # the next wanted frame is this keyframe or after it
        held.append(packet)
        if wanted.sparse and time is not None and time < wanted.target - EPSILON:
            continue
        for ready in held:
            early = wanted.sparse and ready.pts is not None and \
                _seconds(ready.pts - start, stream) < wanted.target - EPSILON
            codec.skip_frame = "NONREF" if early else \
                ("NONKEY" if wanted.keyframes_only else "DEFAULT")
            for frame in codec.decode(ready):
                yield timed(frame)
        held.clear()
    for frame in codec.decode(None):
        yield timed(frame)


def _seconds(pts: int, stream: Any) -> float:
    return seconds(pts, stream.time_base) or 0.0


def _jpeg(frame: av.VideoFrame, reformatter: VideoReformatter) -> bytes:
    """``frame`` as a JPEG (quality 90) of the same size (see the module docstring);
    ``reformatter`` keeps swscale's context from one frame to the next.

    >>> frame = av.VideoFrame.from_ndarray(np.full((9, 15, 3), 200, np.uint8), format="rgb24")
    >>> jpeg = _jpeg(frame, VideoReformatter())
    >>> simplejpeg.decode_jpeg_header(jpeg)  # height, width, colour, chroma sampling
    (9, 15, 'YCbCr', '420')
    """
    if frame.format.chroma_width(2) == frame.format.chroma_height(2) == 1:  # 4:2:0 chroma
        yuv = reformatter.reformat(frame, format="yuv420p", dst_colorspace="itu601",
                                   dst_color_range="JPEG")
        y, u, v = (np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                   [:, :plane.width] for plane in yuv.planes)
        return simplejpeg.encode_jpeg_yuv_planes(y, u, v, quality=JPEG_QUALITY)
    rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
    return simplejpeg.encode_jpeg(rgb, quality=JPEG_QUALITY, colorsubsampling="420")
