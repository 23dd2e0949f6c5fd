"""Video functions (PyAV): ``t.video.duration``, ``t.video.frame(at=1.0)``, ...

Video values travel as the bytes of their file (MP4, WebM, MKV, ...). Each function opens them
with PyAV; opening parses only the container headers, so the properties are cheap, and
``frame(at=...)`` seeks to the keyframe before ``at`` and decodes from there, not from the start.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import av
import av.container

from lakehouse import types as T
from lakehouse.functions.audio import (
    AUDIO_FORMATS,
    decodes_a_frame,
    is_attached_picture,
    open_av,
    seconds,
    transcode_audio,
)
from lakehouse.functions.image import encode_image
from lakehouse.functions.media import media_check, media_function

_WHAT = "video"


def video_stream(container: av.container.InputContainer) -> Any:
    """The video stream (not cover art); ValueError for a still image or no video stream."""
    fmt = container.format.name
    if fmt.endswith("_pipe") or fmt.startswith("image2"):  # FFmpeg reads a still as a video
        raise ValueError(f"an image ({fmt.removesuffix('_pipe')}), not a video")
    streams = [s for s in container.streams.video if not is_attached_picture(s)]
    if not streams:
        raise ValueError("no video stream")
    return streams[0]


def stream_fps(stream: Any) -> float | None:
    """The stream's average frame rate (else FFmpeg's guess); None where unknown."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def _frame_count(container: av.container.InputContainer, stream: Any) -> int:
    """Frames as the container records them, else the video packets counted (one frame per
    packet: reading packets is far cheaper than decoding them)."""
    if stream.frames:
        return int(stream.frames)
    return sum(1 for packet in container.demux(stream) if packet.size)


def _duration(container: av.container.InputContainer, stream: Any) -> float | None:
    found = seconds(stream.duration, stream.time_base)
    if found is None and container.duration is not None:
        found = container.duration / av.time_base
    if found is None:  # a raw stream without timing (MPEG-1 elementary stream): frames / rate
        fps = stream_fps(stream)
        found = _frame_count(container, stream) / fps if fps else None
    return found


@media_check("video")
def check(data: bytes, ctype: T.VideoType, reuse: bool = False) -> None:
    decodes_a_frame(data, _WHAT, video_stream)


@media_function("video", "duration", T.Float, is_property=True)
def duration(data: bytes) -> float | None:
    """Length of the video stream in seconds.

    >>> clips.select(clips.video.duration).collect().item()
    5.28
    """
    with open_av(data, _WHAT) as container:
        return _duration(container, video_stream(container))


@media_function("video", "fps", T.Float, is_property=True)
def fps(data: bytes) -> float | None:
    """Average frames per second.

    >>> clips.select(clips.video.fps).collect().item()
    25.0
    """
    with open_av(data, _WHAT) as container:
        return stream_fps(video_stream(container))


@media_function("video", "width", T.Int, is_property=True)
def width(data: bytes) -> int:
    """Frame width in pixels.

    >>> clips.select(clips.video.width, clips.video.height).collect().row(0)
    (1280, 720)
    """
    with open_av(data, _WHAT) as container:
        return int(video_stream(container).codec_context.width)


@media_function("video", "height", T.Int, is_property=True)
def height(data: bytes) -> int:
    """Frame height in pixels.

    >>> clips.where(clips.video.height >= 720).count()
    1
    """
    with open_av(data, _WHAT) as container:
        return int(video_stream(container).codec_context.height)


@media_function("video", "frame_count", T.Int, is_property=True)
def frame_count(data: bytes) -> int:
    """Number of frames (from the container, else counted).

    >>> clips.select(clips.video.frame_count).collect().item()
    132
    """
    with open_av(data, _WHAT) as container:
        return _frame_count(container, video_stream(container))


@media_function("video", "metadata", T.Json)
def metadata(data: bytes) -> dict[str, Any]:
    """Container format, duration (s), file size (bytes), width, height, fps, codec, pixel
    format, frame count, bit rate and whether there is an audio track (and its codec), as Json.

    >>> import json
    >>> facts = json.loads(clips.select(clips.video.metadata()).collect().item())
    >>> facts["codec"], facts["has_audio"], facts["audio_codec"]
    ('h264', True, 'aac')
    """
    with open_av(data, _WHAT) as container:
        stream = video_stream(container)
        ctx = stream.codec_context
        audio = container.streams.audio[0].codec_context.name if container.streams.audio \
            else None
        return {"format": container.format.name, "duration": _duration(container, stream),
                "size": len(data), "width": int(ctx.width), "height": int(ctx.height),
                "fps": stream_fps(stream), "codec": ctx.name, "pix_fmt": ctx.pix_fmt,
                "frame_count": _frame_count(container, stream),
                "bit_rate": container.bit_rate or ctx.bit_rate,
                "has_audio": audio is not None, "audio_codec": audio}


@media_function("video", "frame", T.Image)
def frame(data: bytes, at: float = 0.0) -> bytes:
    """The frame shown at ``at`` seconds from the start, as a JPEG image.

    >>> still = clips.video.frame(at=2.5)
    >>> clips.select(still.width, still.height).collect().row(0)
    (1280, 720)
    >>> lh.to_pil(clips.select(still).collect().item()).format
    'JPEG'
    """
    at = float(at)
    length = duration(data)  # opened apart: without timing, it reads the whole stream
    if at < 0 or (length is not None and at >= length):
        raise ValueError(f"at={at} s is outside the video (0 to {length or 0:.3f} s)")
    with open_av(data, _WHAT) as container:
        stream = video_stream(container)
        shown = None
        for time, decoded in _timed_frames(container, stream, at):
            if shown is not None and time > at + 1e-6:
                break
            shown = decoded
        if shown is None:
            raise ValueError(f"no frame at {at} s")
        return encode_image(shown.to_image(), "JPEG")


def _timed_frames(container: av.container.InputContainer, stream: Any,
                  at: float) -> Iterator[tuple[float, av.VideoFrame]]:
    """(seconds from the start, frame) from the keyframe at or before ``at``; from the first
    frame for streams without timestamps (raw MPEG), whose frames are timed by their index."""
    start = seconds(stream.start_time, stream.time_base)
    if start is not None and at > 0:
        container.seek(int((start + at) / stream.time_base), stream=stream, backward=True)
    fps = stream_fps(stream) or 1.0
    for index, decoded in enumerate(container.decode(stream)):
        if decoded.time is not None and start is not None:
            yield decoded.time - start, decoded
        else:
            yield index / fps, decoded


@media_function("video", "extract_audio", T.Audio, choices={"format": tuple(AUDIO_FORMATS)})
def extract_audio(data: bytes, format: str = "wav") -> bytes:
    """The audio track as a ``format`` file: ``"wav"`` (16-bit PCM), ``"ogg"`` (Opus) or
    ``"mp3"``.

    >>> sound = clips.video.extract_audio("wav")
    >>> clips.select(sound.sample_rate, sound.channels).collect().row(0)
    (48000, 6)
    """
    with open_av(data, _WHAT) as container:
        video_stream(container)
        if not container.streams.audio:
            raise ValueError("the video has no audio track")
        return transcode_audio(container, container.streams.audio[0], format)
