"""Audio functions (PyAV): ``t.audio.duration``, ``t.audio.sample_rate``, ``t.audio.metadata()``.

Audio values travel as the bytes of their file (WAV, MP3, OGG, FLAC, ...). Each function opens
them with PyAV, which reads any container FFmpeg knows; opening only parses the headers, so the
properties are cheap. The helpers here (:func:`open_av`, :func:`transcode_audio`) also serve the
video functions.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import av
import av.container
import av.stream

from lakehouse import types as T
from lakehouse.functions.media import media_check, media_function

# the formats transcode_audio writes: container format -> (encoder, most channels, 0 = any)
AUDIO_FORMATS: dict[str, tuple[str, int]] = {"wav": ("pcm_s16le", 0), "ogg": ("libopus", 0),
                                              "mp3": ("libmp3lame", 2)}


@contextlib.contextmanager
def open_av(data: bytes, what: str) -> Iterator[av.container.InputContainer]:
    """The PyAV container of ``data``; FFmpeg errors, when opening or decoding inside the block,
    become ValueError("not a readable <what> (<reason>)")."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            yield container
    except av.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ValueError(f"not a readable {what} ({reason})") from None


def seconds(value: int | None, time_base: Fraction | None) -> float | None:
    """A stream timestamp or duration in seconds (None where unknown)."""
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def is_attached_picture(stream: av.stream.Stream) -> bool:
    """Whether a video stream is cover art (an MP3's album picture), not moving pictures."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def audio_stream(container: av.container.InputContainer) -> Any:
    """The first audio stream; ValueError if there is none."""
    if not container.streams.audio:
        raise ValueError("no audio stream")
    return container.streams.audio[0]


def _duration(container: av.container.InputContainer, stream: Any) -> float | None:
    found = seconds(stream.duration, stream.time_base)
    if found is None and container.duration is not None:
        found = container.duration / av.time_base
    if found is None:  # a raw stream without timing: count the samples
        samples = sum(frame.samples for frame in container.decode(stream))
        found = samples / stream.codec_context.sample_rate if samples else None
    return found


def decodes_a_frame(data: bytes, what: str, pick: Callable[[Any], Any]) -> None:
    """Open ``data``, choose its stream with ``pick`` and decode one frame; ValueError if it
    cannot: the check made on every inserted audio file and video."""
    with open_av(data, what) as container:
        for _ in container.decode(pick(container)):
            return
    raise ValueError(f"no decodable {what.split()[0]} frame")


@media_check("audio")
def check(data: bytes, ctype: T.AudioType, reuse: bool = False) -> None:
    decodes_a_frame(data, "audio file", audio_stream)


@media_function("audio", "duration", T.Float, is_property=True)
def duration(data: bytes) -> float | None:
    """Length in seconds.

    >>> round(sounds.select(sounds.sound.duration).collect().item(), 2)
    7.1
    """
    with open_av(data, "audio file") as container:
        return _duration(container, audio_stream(container))


@media_function("audio", "sample_rate", T.Int, is_property=True)
def sample_rate(data: bytes) -> int:
    """Samples per second (per channel), e.g. 44100.

    >>> sounds.select(sounds.sound.sample_rate).collect().item()
    11025
    """
    with open_av(data, "audio file") as container:
        return int(audio_stream(container).codec_context.sample_rate)


@media_function("audio", "channels", T.Int, is_property=True)
def channels(data: bytes) -> int:
    """Number of channels: 1 (mono), 2 (stereo), 6 (5.1), ...

    >>> sounds.select(sounds.sound.channels).collect().item()
    1
    """
    with open_av(data, "audio file") as container:
        return int(audio_stream(container).codec_context.channels)


@media_function("audio", "metadata", T.Json)
def metadata(data: bytes) -> dict[str, Any]:
    """Container format, codec, duration (s), sample rate, channels and bit rate, as Json.

    >>> import json
    >>> facts = json.loads(sounds.select(sounds.sound.metadata()).collect().item())
    >>> facts["format"], facts["codec"], facts["channels"]
    ('wav', 'pcm_u8', 1)
    """
    with open_av(data, "audio file") as container:
        stream = audio_stream(container)
        ctx = stream.codec_context
        return {"format": container.format.name, "codec": ctx.name,
                "duration": _duration(container, stream), "sample_rate": int(ctx.sample_rate),
                "channels": int(ctx.channels), "bit_rate": container.bit_rate or ctx.bit_rate,
                "size": len(data)}


def transcode_audio(container: av.container.InputContainer, stream: Any, format: str) -> bytes:
    """The audio ``stream`` of ``container`` re-encoded as a ``format`` file: ``"wav"`` (16-bit
    PCM), ``"ogg"`` (Opus, 48 kHz) or ``"mp3"`` (at most two channels)."""
    if format not in AUDIO_FORMATS:
        raise ValueError(f"audio format must be one of {sorted(AUDIO_FORMATS)}, got {format!r}")
    encoder, max_channels = AUDIO_FORMATS[format]
    source = stream.codec_context
    rate = source.sample_rate
    rates = av.Codec(encoder, "w").audio_rates
    if rates and rate not in rates:  # the nearest rate the encoder takes, higher if there is one
        rate = min((r for r in rates if r >= rate), default=max(rates))
    layout = source.layout.name
    if max_channels and source.channels > max_channels:
        layout = "stereo"
    out = io.BytesIO()
    with av.open(out, mode="w", format=format) as target:
        encoded = target.add_stream(encoder, rate=rate, layout=layout)
        resampler = av.AudioResampler(format=encoded.codec_context.format.name,
                                      layout=encoded.codec_context.layout.name, rate=rate)
        for frame in itertools.chain(container.decode(stream), [None]):  # None: flush
            for ready in resampler.resample(frame):
                target.mux(encoded.encode(ready))
        target.mux(encoded.encode(None))
    return out.getvalue()
