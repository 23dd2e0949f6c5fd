"""``lh.functions.openai``: OpenAI-compatible endpoints as functions of computed columns.

:func:`chat` (text, and images for vision models), :func:`embeddings` (plus
:func:`embedding_function` for ``add_embedding_index``) and :func:`transcriptions` build
expressions for any OpenAI-compatible server: OpenAI, vLLM, Ollama, llama.cpp's server, a
gateway. A definition stores the endpoint, the model, the parameters and the *name* of the
key's secret (``lh.secret("OPENAI_API_KEY")``), never the key.

How a batch of rows is computed (each call of the registered function gets up to 256 rows):

1. every row's result is looked up in the lakehouse's cache
   (:mod:`lakehouse.functions.remote.cache`) unless ``cache=False``; equal inputs of a batch
   are sent once;
2. the rest are sent ``concurrency`` at a time, paced by the endpoint's limiter (``rpm``,
   ``tpm``) and retried on 429, 5xx and connection errors as
   :mod:`lakehouse.functions.remote.transport` says; embeddings send up to 64 texts a request;
3. results are stored in the cache; a row that still failed (a 400, retries run out) is a
   per-row error: the column's ``on_error`` stops the write naming the row (``"abort"``) or
   records ``errortype``/``errormsg`` (``"ignore"``). A refused key, an unknown model and a
   missing secret stop the write.

Counters (requests, retries, 429s, failures, cache hits, tokens in and out) are kept per call
definition and read with :func:`stats`, per column when given a table.

A stored definition's key is sent only to an endpoint this process allowed: one a function here
was built for in this process, the OpenAI API, or a base URL the user trusts by name
(``lh.connect(..., trusted_models=[base_url])`` or ``LAKEHOUSE_TRUSTED_MODELS``). So someone who
can rewrite a table's definition cannot make it send your key elsewhere.

>>> caption = lh.functions.openai.chat(t.title, model="gpt-4o-mini", system="One line.")
>>> caption  # doctest: +ELLIPSIS
openai.chat(title, options={'function': 'chat', ...})
>>> caption.type
lh.String
>>> caption.kwargs[0][1]["api_key"]  # the name of the secret, not its value
{'secret': 'OPENAI_API_KEY'}
>>> _ = t.add_computed_column(blurb=caption)  # needs the endpoint and the key  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl

from lakehouse import trust
from lakehouse import types as T
from lakehouse.errors import (
    InvalidOptionError,
    RemoteCallError,
    RemoteModelError,
    TypeMismatchError,
)
from lakehouse.exprs.nodes import Call, Expr, lit
from lakehouse.exprs.registry import Function, register
from lakehouse.functions.embeddings import EmbeddingFunction, register_kind
from lakehouse.functions.remote import cache as results
from lakehouse.functions.remote import transport
from lakehouse.functions.remote.transport import Request, Usage
from lakehouse.secrets import Secret, refuse_literals, secret

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY = "OPENAI_API_KEY"
BATCH_ROWS = 256
INPUTS_PER_REQUEST = 64  # texts per embeddings request
_CHARS_PER_TOKEN = 4  # the estimate when the server reports no usage
_IMAGE_TOKENS = 85
_allowed: set[str] = set()
_memo = threading.local()  # the last failed batch's results, for the executor's row re-runs
_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class Options:
    """Everything a stored call says about its endpoint (the JSON under ``options``)."""

    function: str  # "chat" | "embeddings" | "transcriptions"
    base_url: str
    model: str
    api_key: Secret | None
    params: dict[str, Any]
    rpm: float | None = None
    tpm: float | None = None
    cache: bool = True
    concurrency: int = 8
    max_retries: int = 6

    def to_json(self) -> dict[str, Any]:
        return {"function": self.function, "base_url": self.base_url, "model": self.model,
                "api_key": None if self.api_key is None else self.api_key.to_json(),
                "params": self.params, "rpm": self.rpm, "tpm": self.tpm, "cache": self.cache,
                "concurrency": self.concurrency, "max_retries": self.max_retries}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Options:
        key = data.get("api_key")
        return Options(str(data["function"]), str(data["base_url"]), str(data["model"]),
                       None if key is None else Secret.from_json(key), dict(data["params"]),
                       data.get("rpm"), data.get("tpm"), bool(data.get("cache", True)),
                       int(data.get("concurrency") or 8), int(data.get("max_retries", 6)))

    @property
    def path(self) -> str:
        return {"chat": "/chat/completions", "embeddings": "/embeddings",
                "transcriptions": "/audio/transcriptions"}[self.function]

    def request_id(self) -> dict[str, Any]:
        """What identifies the results (the cache key's and the counters' part): no secret,
        no pacing."""
        return {"base_url": self.base_url.rstrip("/"), "path": self.path, "model": self.model,
                "params": self.params}

    def usage_key(self) -> str:
        return hashlib.sha256(json.dumps(self.request_id(), sort_keys=True).encode()).hexdigest()

    def counters(self) -> Usage:
        return transport.usage(self.usage_key(), self.function, self.model, self.base_url)


# --- the public functions --------------------------------------------------------------------
def chat(prompt: Any, *, model: str, base_url: str = DEFAULT_BASE_URL,
         api_key: Secret | None = secret(DEFAULT_KEY), system: str | None = None,
         images: Expr | None = None, temperature: float | None = None,
         max_tokens: int | None = None, rpm: float | None = None, tpm: float | None = None,
         cache: bool = True, concurrency: int = 8, max_retries: int = 6) -> Expr:
    """A chat completion per row: the answer (String) of ``model`` to ``prompt`` (a String
    expression), after the ``system`` message. ``images`` (an Image column) are sent with the
    prompt, as data URLs, for vision models. ``rpm``/``tpm`` pace the endpoint (requests and
    tokens per minute); ``cache=False`` asks again for inputs already answered.

    ``api_key`` names a secret (``lh.secret("NAME")`` or ``lh.secret("NAME", file=...)``);
    ``None`` sends no key (a local server). A plain string is refused: it would be stored.

    >>> expr = lh.functions.openai.chat("Say hi to " + t.title, model="llama3",
    ...                                 base_url="http://localhost:11434/v1", api_key=None)
    >>> expr.type, expr.kwargs[0][1]["model"]
    (lh.String, 'llama3')
    >>> lh.functions.openai.chat(t.title, model="gpt-4o", api_key="sk-proj-123")
    Traceback (most recent call last):
    ...
    lakehouse.errors.SecretLiteralError: openai.chat: argument 'api_key' holds a literal ...
    """
    params = _without_none({"system": system, "temperature": temperature,
                            "max_tokens": max_tokens})
    options = _options("chat", base_url, model, api_key, params, rpm, tpm, cache, concurrency,
                       max_retries)
    args = [_text(prompt, "chat", "prompt")]
    if images is not None:
        if not isinstance(images, Expr) or images.type.kind != "image":
            raise TypeMismatchError(f"openai.chat: images must be an Image column expression, "
                                    f"got {images!r}")
        args.append(images)
    return Call("openai.chat", tuple(args), (("options", options.to_json()),), T.String)


def embeddings(text: Any, *, model: str, base_url: str = DEFAULT_BASE_URL,
               api_key: Secret | None = secret(DEFAULT_KEY), dimensions: int | None = None,
               dim: int | None = None, rpm: float | None = None, tpm: float | None = None,
               cache: bool = True, concurrency: int = 8, max_retries: int = 6) -> Expr:
    """The embedding (``Array[(dim,), "float32"]``) of each row's text. ``dimensions`` asks
    the model for shorter vectors (text-embedding-3 models); ``dim`` states the length the
    model gives, else one request asks it now.

    >>> vectors = lh.functions.openai.embeddings(t.title, model="text-embedding-3-small",
    ...                                          dimensions=256)
    >>> vectors.type
    lh.Array[(256,), float32]
    """
    params = _without_none({"dimensions": dimensions})
    options = _options("embeddings", base_url, model, api_key, params, rpm, tpm, cache,
                       concurrency, max_retries)
    length = dimensions or dim or _probe_dim(options)
    return Call("openai.embeddings", (_text(text, "embeddings", "text"),),
                (("options", {**options.to_json(), "dim": length}),),
                T.Array[(length,), "float32"])


def transcriptions(audio: Expr, *, model: str, base_url: str = DEFAULT_BASE_URL,
                   api_key: Secret | None = secret(DEFAULT_KEY), language: str | None = None,
                   prompt: str | None = None, temperature: float | None = None,
                   rpm: float | None = None, cache: bool = True, concurrency: int = 8,
                   max_retries: int = 6) -> Expr:
    """The transcript (String) of each row's audio (an Audio column), by a speech-to-text
    model (``whisper-1``, a local whisper server).

    >>> lh.functions.openai.transcriptions(sounds.sound, model="whisper-1").type
    lh.String
    """
    if not isinstance(audio, Expr) or audio.type.kind != "audio":
        raise TypeMismatchError(f"openai.transcriptions takes an Audio column expression, got "
                                f"{audio!r}")
    params = _without_none({"language": language, "prompt": prompt, "temperature": temperature})
    options = _options("transcriptions", base_url, model, api_key, params, rpm, None, cache,
                       concurrency, max_retries)
    return Call("openai.transcriptions", (audio,), (("options", options.to_json()),), T.String)


def embedding_function(model: str, *, base_url: str = DEFAULT_BASE_URL,
                       api_key: Secret | None = secret(DEFAULT_KEY),
                       dimensions: int | None = None, dim: int | None = None,
                       rpm: float | None = None, tpm: float | None = None, cache: bool = True,
                       concurrency: int = 8, max_retries: int = 6,
                       batch_size: int = BATCH_ROWS) -> RemoteEmbeddingFunction:
    """An embedding function for ``t.add_embedding_index(column, embedding=...)`` and text
    search, computed by an OpenAI-compatible endpoint. The index stores its spec: endpoint,
    model, parameters and the secret's name.

    >>> fn = lh.functions.openai.embedding_function("text-embedding-3-small", dim=1536)
    >>> fn.describe(), fn.dim, fn.spec()["options"]["api_key"]
    ('openai(text-embedding-3-small at https://api.openai.com/v1)', 1536, \
{'secret': 'OPENAI_API_KEY'})
    """
    params = _without_none({"dimensions": dimensions})
    options = _options("embeddings", base_url, model, api_key, params, rpm, tpm, cache,
                       concurrency, max_retries)
    length = dimensions or dim or _probe_dim(options)
    return RemoteEmbeddingFunction("openai", model, batch_size=batch_size,
                                   remote=json.dumps({**options.to_json(), "dim": length},
                                                     sort_keys=True))


def stats(table: Any = None) -> pl.DataFrame:
    """The counters of remote calls made by this process: one row per call definition
    (function, model, endpoint, parameters), or with ``table``, one row per column (or
    embedding index) of that table that calls a remote model, named in ``column``.

    >>> lh.functions.openai.stats().columns[:4]
    ['column', 'function', 'model', 'base_url']
    """
    counters = transport.all_usage()
    if table is None:
        rows = [{"column": None, **dataclasses.asdict(u)} for u in counters.values()]
    else:
        rows = []
        tdef = table.table_definition
        for column in (*tdef.columns, *tdef.hidden):
            for options in _stored_options(column.expr_json or {}):
                found = counters.get(options.usage_key())
                name = column.index["name"] if column.index else column.name
                empty = Usage(options.function, options.model, options.base_url)
                rows.append({"column": name, **dataclasses.asdict(found or empty)})
    fields = ["column", *(f.name for f in dataclasses.fields(Usage))]
    return pl.DataFrame(rows, schema={f: pl.String if f in ("column", "function", "model",
                                                            "base_url") else pl.Int64
                                      for f in fields})


def reset_stats() -> None:
    """Set every counter back to zero (before a run you want to measure).

    >>> lh.functions.openai.reset_stats(); lh.functions.openai.stats().height
    0
    """
    transport.reset_usage()


# --- the embedding function for indexes ------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RemoteEmbeddingFunction(EmbeddingFunction):
    """An :class:`~lakehouse.functions.EmbeddingFunction` computed by a remote endpoint; build
    it with :func:`embedding_function`. ``remote`` holds its options as JSON text.

    >>> fn = lh.functions.openai.embedding_function("nomic-embed-text", dim=768, api_key=None,
    ...                                             base_url="http://localhost:11434/v1")
    >>> EmbeddingFunction.from_spec(fn.spec()) == fn
    True
    """

    remote: str = "{}"

    @property
    def options(self) -> Options:
        return Options.from_json(json.loads(self.remote))

    @property
    def modalities(self) -> tuple[str, ...]:
        return ("string",)

    @property
    def dim(self) -> int:
        return int(json.loads(self.remote)["dim"])

    def spec(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "batch_size": self.batch_size,
                "options": json.loads(self.remote)}

    def describe(self) -> str:
        return f"openai({self.model} at {self.options.base_url})"

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        vectors = _run(self.options, [texts], self.dim)
        return np.stack(vectors) if vectors else np.zeros((0, self.dim), np.float32)

    def embed_images(self, images: list[Any]) -> np.ndarray:
        raise TypeMismatchError(f"{self.describe()} embeds text only, not images")


def _from_spec(spec: dict[str, Any]) -> RemoteEmbeddingFunction:
    options = dict(spec["options"])
    Options.from_json(options)  # checked: a malformed spec fails here
    return RemoteEmbeddingFunction("openai", str(spec["model"]),
                                   batch_size=int(spec.get("batch_size") or BATCH_ROWS),
                                   remote=json.dumps(options, sort_keys=True))


def _parse(name: str) -> RemoteEmbeddingFunction:
    """``openai:MODEL`` or ``openai:MODEL@BASE_URL`` (the command line's ``--model``)."""
    model, at, base_url = name.partition("@")
    return embedding_function(model, base_url=base_url if at else DEFAULT_BASE_URL)


# --- running a batch ---------------------------------------------------------------------------
def _run(options: Options, columns: Sequence[Sequence[Any]], dim: int | None = None) -> list[Any]:
    """The results of one batch of rows (one list per argument), through the cache, the
    limiter and the retries; raises the first row's error when rows failed (see the module)."""
    _check_endpoint(options)
    if options.api_key is not None:
        options.api_key.resolve()  # a missing secret stops the write before any request
    rows = list(zip(*columns, strict=True))
    keys = [results.cache_key(options.request_id(), _input_bytes(options, row)) for row in rows]
    memo = getattr(_memo, "results", {})
    if len(rows) == 1 and keys[0] in memo:  # the executor re-runs a failed batch row by row
        return [_raise_or(memo.pop(keys[0]))]
    _memo.results = {}
    counts = options.counters()
    counts.add(rows=len(rows))
    known = results.current().lookup(keys) if options.cache else {}
    counts.add(cache_hits=sum(1 for k in keys if k in known))
    todo = {k: row for k, row in zip(keys, rows, strict=True) if k not in known}
    answers = _compute(options, todo, counts)
    fresh = {k: v for k, v in answers.items() if not isinstance(v, BaseException)}
    if options.cache:
        results.current().store({k: _encode(options, v) for k, v in fresh.items()})
    values = {**{k: _decode(options, v, dim) for k, v in known.items()}, **fresh}
    failed = {k: v for k, v in answers.items() if isinstance(v, BaseException)}
    if failed:
        _memo.results = {**values, **failed}
        raise next(v for k, v in failed.items())
    return [values[k] for k in keys]


def _compute(options: Options, todo: dict[str, tuple[Any, ...]],
             counts: Usage) -> dict[str, Any]:
    """Send the rows of ``todo`` (by key) concurrently; each gives a value or an exception."""
    if not todo:
        return {}
    pace = transport.limiter(options.base_url, options.model, options.rpm, options.tpm)
    groups = _groups(options, list(todo))
    out: dict[str, Any] = {}
    with ThreadPoolExecutor(max_workers=min(options.concurrency, len(groups))) as pool:
        futures = [pool.submit(_send_group, options, [(k, todo[k]) for k in group], pace, counts)
                   for group in groups]
        try:
            for future in futures:
                out.update(future.result())
        except RemoteModelError:
            pool.shutdown(cancel_futures=True)
            raise
    return out


def _groups(options: Options, keys: list[str]) -> list[list[str]]:
    size = INPUTS_PER_REQUEST if options.function == "embeddings" else 1
    return [keys[i:i + size] for i in range(0, len(keys), size)]


def _send_group(options: Options, rows: list[tuple[str, tuple[Any, ...]]],
                pace: Any, counts: Usage) -> dict[str, Any]:
    """Send one request for ``rows``; a group refused as a whole is split to find its bad
    rows (a 400 names no row)."""
    try:
        body = transport.send(_request(options, [row for _, row in rows]), pace, counts)
        values = _values(options, body, len(rows))
    except RemoteCallError as exc:
        if len(rows) == 1:
            return {rows[0][0]: exc}
        out: dict[str, Any] = {}
        for row in rows:
            out.update(_send_group(options, [row], pace, counts))
        return out
    return {key: value for (key, _), value in zip(rows, values, strict=True)}


def _request(options: Options, rows: list[tuple[Any, ...]]) -> Request:
    common = {"base_url": options.base_url, "path": options.path, "model": options.model,
              "api_key": options.api_key, "max_retries": options.max_retries}
    params = options.params
    if options.function == "embeddings":
        texts = [str(row[0]) for row in rows]
        return Request(**common, json={"model": options.model, "input": texts, **params},
                       tokens=sum(_tokens(t) for t in texts))
    if options.function == "transcriptions":
        audio = bytes(rows[0][0])
        data = {"model": options.model, "response_format": "json",
                **{k: str(v) for k, v in params.items()}}
        return Request(**common, files={"file": ("audio" + _audio_suffix(audio), audio,
                                                  "application/octet-stream")}, data=data)
    prompt, image = rows[0][0], rows[0][1] if len(rows[0]) > 1 else None
    messages = [{"role": "system", "content": params["system"]}] if "system" in params else []
    content: Any = str(prompt)
    if image is not None:
        content = [{"type": "text", "text": str(prompt)},
                   {"type": "image_url", "image_url": {"url": _image_url(image)}}]
    messages.append({"role": "user", "content": content})
    body = {"model": options.model, "messages": messages,
            **{k: v for k, v in params.items() if k != "system"}}
    tokens = (_tokens(str(prompt) + params.get("system", "")) + int(params.get("max_tokens", 0))
              + (_IMAGE_TOKENS if image is not None else 0))
    return Request(**common, json=body, tokens=tokens)


def _values(options: Options, body: Any, n: int) -> list[Any]:
    """The row values of an answer, checked to have the OpenAI shape."""
    try:
        if options.function == "embeddings":
            data = sorted(body["data"], key=lambda d: d.get("index", 0))
            if len(data) != n:
                raise ValueError(f"{len(data)} embeddings for {n} inputs")
            return [np.asarray(d["embedding"], dtype=np.float32) for d in data]
        if options.function == "transcriptions":
            return [str(body["text"])]
        return [str(body["choices"][0]["message"]["content"])]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise RemoteCallError(f"{options.base_url}{options.path} answered in an unexpected "
                              f"shape ({type(exc).__name__}: {exc})") from None


# --- helpers ------------------------------------------------------------------------------------
def _options(function: str, base_url: str, model: str, api_key: Any, params: dict[str, Any],
             rpm: float | None, tpm: float | None, cache: bool, concurrency: int,
             max_retries: int) -> Options:
    """The checked options of a call; the endpoint becomes one this process allows."""
    where = f"openai.{function}"
    if isinstance(api_key, str):
        refuse_literals(where, [("api_key", api_key)])
    if api_key is not None and not isinstance(api_key, Secret):
        raise TypeMismatchError(f"{where}: api_key must be lh.secret('NAME') or None, got "
                                f"{type(api_key).__name__}")
    if not isinstance(model, str) or not model:
        raise InvalidOptionError(f"{where}: model must name a model, got {model!r}")
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
        raise InvalidOptionError(f"{where}: base_url must be an http(s) URL such as "
                                 f"{DEFAULT_BASE_URL!r}, got {base_url!r}")
    for name, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise InvalidOptionError(f"{where}: {name} must be a positive number, got {value!r}")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidOptionError(f"{where}: concurrency must be at least 1, got {concurrency!r}")
    if not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidOptionError(f"{where}: max_retries must be 0 or more, got {max_retries!r}")
    refuse_literals(where, list(params.items()))
    base_url = base_url.rstrip("/")
    with _lock:
        _allowed.add(base_url)
    return Options(function, base_url, model, api_key, params, rpm, tpm, bool(cache),
                   concurrency, max_retries)


def endpoints_allowed() -> frozenset[str]:
    """The endpoints this process built remote models for (their base URLs): allowed here, and
    handed to the processes that work for this one (Ray workers,
    :mod:`lakehouse.exec.permissions`).

    >>> allow_endpoints(["https://models.example.com/v1"])
    >>> "https://models.example.com/v1" in endpoints_allowed()
    True
    """
    with _lock:
        return frozenset(_allowed)


def allow_endpoints(urls: Iterable[str]) -> None:
    """Allow in this process the endpoints the process it works for built remote models for
    (:func:`endpoints_allowed` there), exactly those.

    >>> allow_endpoints(["https://models.example.com/v1"])
    """
    with _lock:
        _allowed.update(urls)


def _check_endpoint(options: Options) -> None:
    """Refuse to send a key to an endpoint the user did not allow (see the module)."""
    if options.api_key is None or options.base_url == DEFAULT_BASE_URL:
        return
    with _lock:
        allowed = options.base_url in _allowed
    if not allowed and not trust.model_trusted(options.base_url):
        raise RemoteModelError(
            f"a stored definition sends the secret {options.api_key!r} to {options.base_url}, "
            "which this process has not been allowed to call; if you trust it, pass "
            f"lh.connect(..., trusted_models=[{options.base_url!r}]) or set "
            f"{trust.MODELS_VARIABLE}={options.base_url}")


def _probe_dim(options: Options) -> int:
    """The length of the model's vectors, asked with one (cached) request."""
    return len(_run(options, [["dimension probe"]])[0])


def _text(value: Any, function: str, name: str) -> Expr:
    expr = lit(value)
    if expr.type.kind != "string":
        raise TypeMismatchError(f"openai.{function}: {name} must be a String expression, got "
                                f"{expr!r} ({expr.type})")
    return expr


def _without_none(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / _CHARS_PER_TOKEN))


def _input_bytes(options: Options, row: tuple[Any, ...]) -> bytes:
    parts = [v.encode() if isinstance(v, str) else b"" if v is None else bytes(v) for v in row]
    return b"\0".join(hashlib.sha256(p).digest() for p in parts)


def _encode(options: Options, value: Any) -> bytes:
    if options.function == "embeddings":
        return np.asarray(value, dtype="<f4").tobytes()
    return str(value).encode()


def _decode(options: Options, data: bytes, dim: int | None) -> Any:
    if options.function == "embeddings":
        return np.frombuffer(data, dtype="<f4").copy()
    return data.decode()


def _raise_or(value: Any) -> Any:
    if isinstance(value, BaseException):
        raise value
    return value


def _image_url(image: Any) -> str:
    if isinstance(image, str):  # a reference the endpoint fetches itself
        return image
    data = bytes(image)
    mime = ("image/png" if data.startswith(b"\x89PNG") else
            "image/gif" if data.startswith(b"GIF8") else
            "image/webp" if data[8:12] == b"WEBP" else "image/jpeg")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _audio_suffix(data: bytes) -> str:
    for magic, suffix in ((b"RIFF", ".wav"), (b"OggS", ".ogg"), (b"fLaC", ".flac"),
                          (b"ID3", ".mp3"), (b"\xff\xfb", ".mp3")):
        if data.startswith(magic):
            return suffix
    return ".mp4" if data[4:8] == b"ftyp" else ".bin"


def _stored_options(expr_json: dict[str, Any]) -> list[Options]:
    """The options of every remote call in a stored expression (an index's spec too)."""
    found: list[Options] = []
    stack = [expr_json]
    while stack:
        node = stack.pop()
        if node.get("op") == "call":
            for name, value in node.get("kwargs", []):
                if name == "options" and str(node.get("fn", "")).startswith("openai."):
                    found.append(Options.from_json(value))
                elif name == "model" and isinstance(value, dict) and value.get("kind") == "openai":
                    found.append(Options.from_json(value["options"]))
        stack.extend(a for a in node.get("args", []) if isinstance(a, dict))
        stack.extend(v for k, v in node.items() if k != "args" and isinstance(v, dict))
    return found


def _batched(function: str) -> Callable[..., list[Any]]:
    def run(values: list[Any], *, options: dict[str, Any]) -> list[Any]:
        return _run(Options.from_json(options), [values], options.get("dim"))
    run.__name__ = run.__qualname__ = f"openai_{function}"
    return run


def _chat_rows(prompts: list[str], images: list[Any] | None = None, *,
               options: dict[str, Any]) -> list[Any]:
    columns = [prompts] if images is None else [prompts, images]
    return _run(Options.from_json(options), columns)


def _string(_: list[T.ColumnType]) -> T.ColumnType:
    return T.String


def _carried(_: list[T.ColumnType]) -> T.ColumnType:
    raise TypeMismatchError("openai.embeddings calls carry their vector type")


register(Function("openai.chat", _chat_rows, _string, batched=True, batch_size=BATCH_ROWS,
                  null_safe=(False, True)))
register(Function("openai.embeddings", _batched("embeddings"), _carried, batched=True,
                  batch_size=BATCH_ROWS, null_safe=(False,)))
register(Function("openai.transcriptions", _batched("transcriptions"), _string, batched=True,
                  batch_size=BATCH_ROWS, null_safe=(False,)))
register_kind("openai", _from_spec, _parse)

__all__ = ["DEFAULT_BASE_URL", "Options", "RemoteEmbeddingFunction", "chat", "embedding_function",
           "embeddings", "reset_stats", "stats", "transcriptions"]
