"""Pacing remote calls: a token bucket per endpoint, and when to retry.

The rules:

- one :class:`Limiter` per endpoint (base URL and model), shared by every column and thread of
  the process that calls it, holds two buckets: requests per minute and tokens per minute. A
  request takes one request and its estimated tokens before it is sent; requests are spaced
  evenly (a bucket of one request), so no window of the server's sees a burst;
- a request the server refused with 429 did not count against its quota: its request is given
  back (:meth:`Limiter.refund`), so refusals do not slow the pace below the limit;
- the server's rate-limit headers win: ``x-ratelimit-remaining-requests: 0`` (or tokens) with
  ``x-ratelimit-reset-requests: 6m0s`` pauses the whole endpoint until the reset;
- a retried request waits :func:`retry_delay`: the server's ``retry-after-ms`` or
  ``Retry-After`` (seconds or an HTTP date) when it sent one, else a full-jitter exponential
  backoff from :data:`BASE_DELAY_S` (a module setting, which tests make small).

>>> retry_delay(0, {"retry-after": "2"}), retry_delay(0, {"retry-after-ms": "250"})
(2.0, 0.25)
>>> parse_duration("6m0s"), parse_duration("20ms"), parse_duration("1.5s")
(360.0, 0.02, 1.5)
"""

from __future__ import annotations

import dataclasses
import email.utils
import math
import random
import re
import threading
import time
from collections.abc import Mapping

BASE_DELAY_S = 0.5
"""The first backoff step (seconds) when the server says nothing about when to retry."""
MAX_DELAY_S = 30.0
"""The longest backoff step, and the longest wait a server's header may impose on one request."""

_SLACK = 1.5  # the request bucket's capacity, in requests
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


@dataclasses.dataclass
class _Bucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``capacity``."""

    rate: float
    capacity: float
    level: float
    stamp: float

    def refill(self, now: float) -> None:
        """Add what the time since the last refill brings, up to the capacity (a level above
        it, from refunds, is kept until spent)."""
        if self.level < self.capacity:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` tokens are there (a request larger than the bucket waits
        until the bucket is full, then goes)."""
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing / self.rate)


class Limiter:
    """Requests and tokens per minute for one endpoint, shared by threads (see module rules).

    >>> limiter = Limiter(rpm=6000, tpm=None)
    >>> start = time.monotonic(); limiter.acquire(10); limiter.acquire(10)
    >>> round(time.monotonic() - start, 2) >= 0.01  # 100 requests a second: 10 ms apart
    True
    """

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self.requests = self.tokens = None
        self.configure(rpm, tpm)

    def configure(self, rpm: float | None, tpm: float | None) -> None:
        """Set the limits (a later call with other values replaces them)."""
        now = time.monotonic()
        with self._lock:
            self.limits = (rpm, tpm)
            # one request, and half of one more: a thread that wakes late does not lose the
            # time it overslept (the pace stays at rpm), and no burst exceeds 1.5 requests
            self.requests = None if not rpm else _Bucket(rpm / 60.0, _SLACK, 1.0, now)
            self.tokens = None if not tpm else _Bucket(tpm / 60.0, tpm / 60.0, tpm / 60.0, now)

    def acquire(self, tokens: int) -> None:
        """Block until one request and ``tokens`` tokens may be spent, and spend them."""
        while True:
            with self._lock:
                now = time.monotonic()
                wait = self._paused_until - now
                for bucket, amount in ((self.requests, 1), (self.tokens, tokens)):
                    if bucket is not None:
                        bucket.refill(now)
                        wait = max(wait, bucket.wait_for(amount))
                if wait <= 0:
                    for bucket, amount in ((self.requests, 1), (self.tokens, tokens)):
                        if bucket is not None:
                            bucket.level -= amount
                    return
            time.sleep(min(wait, 1.0))

    def refund(self, tokens: int) -> None:
        """Give back a request and its tokens the server did not count (it answered 429)."""
        with self._lock:
            for bucket, amount in ((self.requests, 1), (self.tokens, tokens)):
                if bucket is not None:
                    bucket.level += amount

    def settle(self, estimated: int, actual: int) -> None:
        """Correct the tokens spent for a request once the server reported what it used."""
        with self._lock:
            if self.tokens is not None:
                self.tokens.level -= actual - estimated

    def observe(self, headers: Mapping[str, str]) -> None:
        """Pause the endpoint until the server's reset when its headers say a quota is spent."""
        pause = 0.0
        for quota in ("requests", "tokens"):
            remaining = headers.get(f"x-ratelimit-remaining-{quota}")
            reset = headers.get(f"x-ratelimit-reset-{quota}")
            if remaining is not None and reset is not None and remaining.strip() == "0":
                pause = max(pause, parse_duration(reset) or 0.0)
        if pause > 0:
            with self._lock:
                self._paused_until = max(self._paused_until,
                                         time.monotonic() + min(pause, MAX_DELAY_S))


def retry_delay(attempt: int, headers: Mapping[str, str]) -> float:
    """Seconds to wait before retry number ``attempt + 1``: the server's ``retry-after-ms`` or
    ``Retry-After`` (seconds or an HTTP date) when given, else full-jitter exponential backoff
    (uniform in [0, base * 2**attempt], at most :data:`MAX_DELAY_S`)."""
    told = _server_delay(headers)
    if told is not None:
        return min(told, MAX_DELAY_S)
    return random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2 ** attempt))


def _server_delay(headers: Mapping[str, str]) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    after = headers.get("retry-after")
    if after is None:
        return None
    after = after.strip()
    try:
        return max(0.0, float(after))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(after)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_duration(text: str) -> float | None:
    """Seconds in a rate-limit reset header: ``"1s"``, ``"6m0s"``, ``"20ms"``, ``"0.5"``."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return math.fsum(float(n) * _UNITS[u] for n, u in parts)


__all__ = ["BASE_DELAY_S", "MAX_DELAY_S", "Limiter", "parse_duration", "retry_delay"]
