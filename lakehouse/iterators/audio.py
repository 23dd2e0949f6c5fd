"""The rows of ``audio_splitter``: clips of an audio file (or a video's sound), as WAV files.

The sound is decoded with PyAV and resampled to 16-bit PCM at its own rate and channel layout,
frame by frame; samples are kept only until the clip they belong to is written, so a long
recording is never held whole. Clip boundaries are sample positions: clip ``i`` starts at
``round(i * (duration - overlap) * rate)`` and holds ``round(duration * rate)`` samples, the
last one fewer. Times count from the first decoded sample. WAV files are written with the
standard library's :mod:`wave`.
"""

from __future__ import annotations

import io
import itertools
import wave
from collections.abc import Iterator
from typing import Any

import av
import numpy as np

from lakehouse.functions.audio import audio_stream, open_av


def clips(data: bytes, *, duration: float, overlap: float) -> Iterator[dict[str, Any]]:
    """One row per clip of the sound in ``data``: ``clip`` (WAV bytes), ``start_time`` and
    ``end_time`` (seconds); ValueError if the file has no readable sound."""
    with open_av(data, "audio file") as container:
        stream = audio_stream(container)
        codec = stream.codec_context
        rate, channels = int(codec.sample_rate), int(codec.channels)
        resampler = av.AudioResampler(format="s16", layout=codec.layout.name, rate=rate)
        buffer = _Samples(channels)
        length = max(1, round(duration * rate))
        clip = 0  # the index of the next clip
        for frame in itertools.chain(container.decode(stream), [None]):  # None: flush
            for ready in resampler.resample(frame):
                buffer.add(ready.to_ndarray())
            while buffer.end >= _start(clip, duration, overlap, rate) + length:
                yield _row(buffer, _start(clip, duration, overlap, rate), length, rate)
                clip += 1
        if buffer.end == 0:
            raise ValueError("no decodable audio samples")
        covered = _start(clip - 1, duration, overlap, rate) + length if clip else 0
        if buffer.end > covered:  # the rest, shorter than a clip
            start = _start(clip, duration, overlap, rate)
            yield _row(buffer, start, buffer.end - start, rate)


def _start(clip: int, duration: float, overlap: float, rate: int) -> int:
    return round(clip * (duration - overlap) * rate)


class _Samples:
    """Decoded samples from position :attr:`offset` to :attr:`end` (interleaved int16)."""

    def __init__(self, channels: int) -> None:
        self.channels = channels
        self.offset = 0
        self.end = 0
        self._parts: list[np.ndarray] = []

    def add(self, packed: np.ndarray) -> None:
        part = packed.reshape(-1, self.channels)
        self._parts.append(part)
        self.end += len(part)

    def take(self, start: int, count: int) -> np.ndarray:
        """Samples ``start`` to ``start + count``; those before ``start`` are let go."""
        joined = np.concatenate(self._parts) if len(self._parts) != 1 else self._parts[0]
        joined = joined[start - self.offset:]
        self._parts = [joined]
        self.offset = start
        return joined[:count]


def _row(buffer: _Samples, start: int, count: int, rate: int) -> dict[str, Any]:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(buffer.channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(buffer.take(start, count).astype("<i2", copy=False).tobytes())
    return {"clip": out.getvalue(), "start_time": start / rate, "end_time": (start + count) / rate}
