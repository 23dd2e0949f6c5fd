"""A small OpenAI-compatible server for the remote model tests and benchmark (Starlette, served by
uvicorn on 127.0.0.1).

It answers deterministically: chat says ``echo: <prompt>`` (``[image <sha8>]`` added for an
image), embeddings are unit vectors seeded by the text's SHA-256 (``dimensions`` long, 8 by
default), a transcription is ``transcript of <n> bytes <sha8>``. An input holding ``BAD INPUT``
gets a 400. It checks the bearer key (401), refuses a seeded random share of requests with 429
(``Retry-After``) or 500, enforces a limit of requests per window (429 with ``Retry-After`` and
``x-ratelimit-*`` headers; refused requests do not count against it) and records every request:
the input, when, and the status it got.

``GET /control`` returns the counters; ``POST /control/reset`` clears them; ``POST
/control/faults`` sets the fault rates and limit (JSON fields of :class:`Faults`).
Run it alone with ``python tests/openai_server.py PORT KEY``.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
import random
import socket
import sys
import threading
import time
from collections import Counter, deque

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BAD = "BAD INPUT"


@dataclasses.dataclass
class Faults:
    """What the server does wrong, on purpose (seeded, so a run repeats)."""

    rate_429: float = 0.0  # share of requests refused with 429 and Retry-After
    rate_500: float = 0.0  # share of requests failing with 500
    retry_after: float = 1.0  # seconds, in Retry-After (whole seconds) and retry-after-ms
    limit: int | None = None  # accepted requests per window, None: no limit
    window_s: float = 60.0
    seed: int = 0


@dataclasses.dataclass
class Record:
    """One request as the server saw it."""

    input: str
    at: float  # time.monotonic() when it arrived
    status: int
    retry_after: float | None = None


class State:
    """The server's counters and settings, shared by its handlers (and a test in-process)."""

    def __init__(self, key: str | None) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.faults = Faults()
        self.rng = random.Random(0)
        self.records: list[Record] = []
        self.accepted: deque[float] = deque()

    def reset(self, faults: Faults | None = None) -> None:
        with self.lock:
            self.faults = faults or Faults()
            self.rng = random.Random(self.faults.seed)
            self.records.clear()
            self.accepted.clear()

    def calls(self) -> Counter[str]:
        """Requests per input (every status)."""
        with self.lock:
            return Counter(r.input for r in self.records)

    def successes(self) -> list[Record]:
        with self.lock:
            return [r for r in self.records if r.status == 200]

    def decide(self, label: str) -> tuple[int, dict[str, str]]:
        """The status this request gets (200, 429 or 500) and the headers that go with it;
        the request is recorded."""
        with self.lock:
            now = time.monotonic()
            faults = self.faults
            status, headers, after = 200, {}, None
            while self.accepted and self.accepted[0] <= now - faults.window_s:
                self.accepted.popleft()
            if faults.limit is not None and len(self.accepted) >= faults.limit:
                after = self.accepted[0] + faults.window_s - now
                status = 429
                headers = {"x-ratelimit-limit-requests": str(faults.limit),
                           "x-ratelimit-remaining-requests": "0",
                           "x-ratelimit-reset-requests": f"{after:.3f}s"}
            elif self.rng.random() < faults.rate_429:
                status, after = 429, faults.retry_after
            elif self.rng.random() < faults.rate_500:
                status = 500
            if after is not None:
                headers["retry-after"] = str(max(1, math.ceil(after))) if after >= 1 else "0"
                headers["retry-after-ms"] = str(int(after * 1000))
            if status == 200:
                self.accepted.append(now)
            self.records.append(Record(label, now, status, after))
            return status, headers


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error"}},
                        status_code=status, headers=headers)


def _authorized(state: State, request: Request) -> bool:
    return state.key is None or request.headers.get("authorization") == f"Bearer {state.key}"


def _vector(text: str, dim: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32).tolist()


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def make_app(state: State) -> Starlette:
    """The app: the three OpenAI routes and the control routes, over ``state``."""

    async def chat(request: Request) -> JSONResponse:
        if not _authorized(state, request):
            return _error(401, "Incorrect API key provided")
        body = await request.json()
        content = body["messages"][-1]["content"]
        image = ""
        if isinstance(content, list):
            text = next(p["text"] for p in content if p["type"] == "text")
            url = next((p["image_url"]["url"] for p in content if p["type"] == "image_url"), "")
            data = base64.b64decode(url.split(",", 1)[1]) if url.startswith("data:") else b""
            image = f" [image {hashlib.sha256(data).hexdigest()[:8]}]"
            content = text
        label = content + image
        status, headers = state.decide(label)
        if status != 200:
            return _error(status, "Rate limit reached" if status == 429 else "server error",
                          headers)
        if BAD in content:
            with state.lock:
                state.records[-1].status = 400
            return _error(400, f"the prompt {content[:40]!r} is not acceptable")
        answer = f"echo: {content}{image}"
        return JSONResponse({"choices": [{"index": 0, "message": {"role": "assistant",
                                                                   "content": answer}}],
                             "usage": {"prompt_tokens": _tokens(content),
                                       "completion_tokens": _tokens(answer)}})

    async def embeddings(request: Request) -> JSONResponse:
        if not _authorized(state, request):
            return _error(401, "Incorrect API key provided")
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        status, headers = state.decide("\n".join(texts))
        if status != 200:
            return _error(status, "Rate limit reached" if status == 429 else "server error",
                          headers)
        if any(BAD in t for t in texts):
            with state.lock:
                state.records[-1].status = 400
            return _error(400, "an input is not acceptable")
        dim = int(body.get("dimensions") or 8)
        return JSONResponse({"data": [{"index": i, "embedding": _vector(t, dim)}
                                      for i, t in enumerate(texts)],
                             "usage": {"prompt_tokens": sum(_tokens(t) for t in texts)}})

    async def transcriptions(request: Request) -> JSONResponse:
        if not _authorized(state, request):
            return _error(401, "Incorrect API key provided")
        form = await request.form()
        data = await form["file"].read()  # type: ignore[union-attr]
        label = hashlib.sha256(data).hexdigest()[:8]
        status, headers = state.decide(label)
        if status != 200:
            return _error(status, "Rate limit reached" if status == 429 else "server error",
                          headers)
        return JSONResponse({"text": f"transcript of {len(data)} bytes {label}"})

    async def control(request: Request) -> JSONResponse:
        with state.lock:
            records = [dataclasses.asdict(r) for r in state.records]
        return JSONResponse({"records": records, "faults": dataclasses.asdict(state.faults)})

    async def reset(request: Request) -> JSONResponse:
        state.reset()
        return JSONResponse({"ok": True})

    async def faults(request: Request) -> JSONResponse:
        state.reset(Faults(**(await request.json())))
        return JSONResponse({"ok": True})

    return Starlette(routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
        Route("/control", control, methods=["GET"]),
        Route("/control/reset", reset, methods=["POST"]),
        Route("/control/faults", faults, methods=["POST"]),
    ])


@dataclasses.dataclass
class RunningServer:
    """A server started by :func:`start`: its ``/v1`` URL, state, and how to stop it."""

    base_url: str
    state: State
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(key: str | None, port: int | None = None) -> RunningServer:
    """Serve a fresh app on 127.0.0.1 in a thread; returns once it accepts connections."""
    state = State(key)
    port = port or free_port()
    config = uvicorn.Config(make_app(state), host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="openai-server")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the fake OpenAI server did not start on port {port}")
        time.sleep(0.02)
    return RunningServer(f"http://127.0.0.1:{port}/v1", state, server, thread)


if __name__ == "__main__":
    running = start(sys.argv[2] if len(sys.argv) > 2 else None, int(sys.argv[1]))
    print(running.base_url, flush=True)
    running.thread.join()
