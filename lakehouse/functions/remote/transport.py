"""Sending one request to an OpenAI-compatible endpoint: limits, retries, errors and counters.

Built on ``httpx``: a small, well-kept HTTP client with a thread-safe connection pool, per-phase
timeouts and multipart uploads, and nothing else. The ``openai`` package was not taken: it
brings pydantic models and its own retry loop, which would have to be switched off to pace
requests by our limiter, honour the rate-limit headers ourselves, cache by input, and keep
secrets out of its errors; we need raw status codes and headers, which httpx gives directly.

What :func:`send` does with an answer:

- 2xx: the JSON body, after counting the tokens the server reports;
- 429 and 5xx, timeouts and connection errors: retried up to ``max_retries`` times after
  :func:`~lakehouse.functions.remote.limits.retry_delay` (the server's ``Retry-After`` when it
  sent one); a 429 gives its request back to the limiter; then a per-row
  :class:`~lakehouse.RemoteCallError`;
- 401, 403 and 404: :class:`~lakehouse.RemoteModelError`, which stops the whole write (no
  row can be computed with a refused key or an unknown model);
- other 4xx (400, 413, 422): a per-row :class:`~lakehouse.RemoteCallError` with the server's
  message, not retried.

The secret is resolved for each request and sent only in the ``Authorization`` header; it is
cut out of every message built here.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Mapping
from typing import Any

from lakehouse.errors import RemoteCallError, RemoteModelError
from lakehouse.functions.remote import limits
from lakehouse.secrets import Secret

_FATAL = (401, 403, 404)
_TIMEOUT_S = 120.0


@dataclasses.dataclass
class Usage:
    """Counters of one call definition (a function with its model, endpoint and parameters)."""

    function: str
    model: str
    base_url: str
    rows: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    failures: int = 0
    cache_hits: int = 0
    tokens_in: int = 0
    tokens_out: int = 0

    def add(self, **counts: int) -> None:
        with _lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


@dataclasses.dataclass(frozen=True)
class Request:
    """One request: where it goes, its JSON body or multipart form, and how to pace it."""

    base_url: str
    path: str
    model: str
    api_key: Secret | None
    json: dict[str, Any] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None
    tokens: int = 1
    max_retries: int = 6


_limiters: dict[tuple[str, str], limits.Limiter] = {}
_usage: dict[str, Usage] = {}
_client: Any = None
_lock = threading.RLock()


def limiter(base_url: str, model: str, rpm: float | None, tpm: float | None) -> limits.Limiter:
    """The limiter of an endpoint and model, shared by the process (its limits set to these)."""
    key = (base_url, model)
    with _lock:
        found = _limiters.get(key)
        if found is None:
            found = _limiters[key] = limits.Limiter(rpm, tpm)
        elif found.limits != (rpm, tpm):
            found.configure(rpm, tpm)
        return found


def usage(key: str, function: str, model: str, base_url: str) -> Usage:
    """The counters of the call definition ``key`` (made on first use)."""
    with _lock:
        found = _usage.get(key)
        if found is None:
            found = _usage[key] = Usage(function, model, base_url)
        return found


def all_usage() -> dict[str, Usage]:
    """Every call definition's counters, by key."""
    with _lock:
        return {k: dataclasses.replace(u) for k, u in _usage.items()}


def reset_usage() -> None:
    """Forget the counters (the limiters keep their state)."""
    with _lock:
        _usage.clear()


def send(request: Request, pace: limits.Limiter, counts: Usage) -> dict[str, Any]:
    """Send ``request`` under ``pace`` with retries (see the module rules); the JSON answer."""
    key = request.api_key.resolve() if request.api_key is not None else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    where = f"{request.base_url.rstrip('/')}{request.path}"
    problem = ""
    for attempt in range(request.max_retries + 1):
        if attempt:
            counts.add(retries=1)
        pace.acquire(request.tokens)
        counts.add(requests=1)
        try:
            answer = _http().post(where, headers=headers, json=request.json,
                                  files=request.files, data=request.data)
        except _transport_errors() as exc:
            problem = f"{type(exc).__name__}: {_hide(str(exc), key)}"
            time.sleep(limits.retry_delay(attempt, {}))
            continue
        answer_headers = {k.lower(): v for k, v in answer.headers.items()}
        pace.observe(answer_headers)
        if answer.status_code < 300:
            return _accepted(answer, request, pace, counts, key)
        message = _hide(_server_message(answer), key)
        if answer.status_code in _FATAL:
            secret = f" and the secret {request.api_key!r}" if request.api_key else ""
            raise RemoteModelError(
                f"{where} answered {answer.status_code} for model {request.model!r}: {message}; "
                f"check the model name, the base_url{secret}")
        if answer.status_code != 429 and answer.status_code < 500:
            counts.add(failures=1)
            raise RemoteCallError(f"{where} refused the input ({answer.status_code}): {message}")
        if answer.status_code == 429:
            counts.add(rate_limited=1)
            pace.refund(request.tokens)
        problem = f"{answer.status_code}: {message}"
        if attempt < request.max_retries:
            time.sleep(limits.retry_delay(attempt, answer_headers))
    counts.add(failures=1)
    raise RemoteCallError(f"{where} still failed after {request.max_retries} retries "
                          f"({problem})")


def _accepted(answer: Any, request: Request, pace: limits.Limiter, counts: Usage,
              key: str | None) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError as exc:
        counts.add(failures=1)
        raise RemoteCallError(f"{request.base_url}{request.path} answered with text that is not "
                              f"JSON: {_hide(answer.text[:200], key)!r}") from exc
    reported = body.get("usage") if isinstance(body, Mapping) else None
    if isinstance(reported, Mapping):
        used_in = int(reported.get("prompt_tokens") or reported.get("input_tokens") or 0)
        used_out = int(reported.get("completion_tokens") or reported.get("output_tokens") or 0)
        pace.settle(request.tokens, used_in + used_out)
    else:
        used_in, used_out = request.tokens, 0
    counts.add(tokens_in=used_in, tokens_out=used_out)
    return body


def _server_message(answer: Any) -> str:
    """The server's own words: ``error.message`` of an OpenAI-style body, else the text."""
    try:
        body = answer.json()
    except ValueError:
        return answer.text[:500] or answer.reason_phrase
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping) and error.get("message"):
        return str(error["message"])[:500]
    if isinstance(error, str):
        return error[:500]
    return str(body)[:500]


def _hide(text: str, key: str | None) -> str:
    return text.replace(key, "***") if key else text


def _http() -> Any:
    """The process's HTTP client (thread-safe, pooled; httpx imported on first use)."""
    global _client
    with _lock:
        if _client is None:
            import httpx  # only when a remote model is called

            _client = httpx.Client(timeout=httpx.Timeout(_TIMEOUT_S, connect=10.0),
                                   limits=httpx.Limits(max_connections=64,
                                                       max_keepalive_connections=32))
        return _client


def _transport_errors() -> tuple[type[BaseException], ...]:
    import httpx  # only when a remote model is called

    return (httpx.TransportError,)


__all__ = ["Request", "Usage", "all_usage", "limiter", "reset_usage", "send", "usage"]
