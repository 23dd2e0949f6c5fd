"""Where an embedding model comes from, checked before it loads, so that a missing piece fails
in seconds with one line instead of a traceback or a minute of retries.

Two things can be missing:

- **The libraries.** torch, open_clip and sentence-transformers are the optional ``models``
  extra (``pip install "lakehouse[models]"``): several GB that a user of tables, media, queries,
  the command line and the search page does not need. :func:`require_libraries` refuses a model
  whose libraries are not importable with :class:`~lakehouse.ModelsNotInstalledError`, without
  importing them.
- **The files of a hub model.** :func:`ensure_available` looks in the Hugging Face cache first. A
  cached model loads without the network. A model that is not cached is refused at once when
  ``HF_HUB_OFFLINE`` is set; otherwise one request, without retries and with a short timeout,
  asks the hub whether it answers, and only then does the model's library download it. Left to
  themselves the libraries retry each file five times with back-off (a minute and dozens of
  log lines on a machine without network) before they give up.

Local models (shipped, ``local-dir:``, ``package:`` or a folder, a weights file) have no hub
files and are checked by their digest instead (:mod:`lakehouse.functions.embeddings`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import os
from collections.abc import Iterator

from lakehouse.errors import ModelError, ModelsNotInstalledError

INSTALL_MODELS = 'pip install "lakehouse[models]"'
"""The command that installs the optional model libraries (named in every refusal)."""

PROBE_TIMEOUT_S = 5.0
"""How long the one request that asks whether the hub answers may take (connect and read)."""

_LIBRARIES = {"clip": ("torch", "torchvision", "open_clip"),
              "sentence_transformer": ("torch", "sentence_transformers")}


@dataclasses.dataclass(frozen=True)
class HubFiles:
    """The hub repository a model downloads from, and the files of which any one, cached,
    shows that the model is available locally (the first is the one it prefers)."""

    repo: str
    files: tuple[str, ...]


def require_libraries(kind: str, what: str) -> None:
    """Refuse ``what`` (a kind of model, or a model's description) when the libraries that a
    model of ``kind`` (``"clip"`` or ``"sentence_transformer"``) needs are not importable;
    nothing is imported.

    >>> require_libraries("clip", "a CLIP model")  # installed here: nothing to say
    """
    missing = [name for name in _LIBRARIES[kind] if not _importable(name)]
    if missing:
        message = (f"{what} needs the optional model libraries, and {', '.join(missing)} "
                   f"{'is' if len(missing) == 1 else 'are'} not installed; install them with "
                   f"{INSTALL_MODELS}")
        raise ModelsNotInstalledError(message)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent that fails to import, a broken __spec__
        return False


def sentence_transformer_files(name: str) -> HubFiles:
    """The repository of a sentence-transformers hub name: a bare name is one of the
    ``sentence-transformers`` organisation's, as the library reads it, unless it is one of the
    original transformers models the library keeps a list of.

    >>> sentence_transformer_files("all-MiniLM-L6-v2").repo
    'sentence-transformers/all-MiniLM-L6-v2'
    >>> sentence_transformer_files("BAAI/bge-small-en-v1.5").repo
    'BAAI/bge-small-en-v1.5'
    """
    from sentence_transformers.util import ORIGINAL_TRANSFORMER_MODELS  # only with the extra

    bare = "/" not in name and name.lower() not in ORIGINAL_TRANSFORMER_MODELS
    return HubFiles(f"sentence-transformers/{name}" if bare else name, ("config.json",))


def clip_files(model: str, pretrained: str | None) -> HubFiles | None:
    """The repository and weights files of an open_clip model with a ``pretrained`` tag (open_clip
    prefers the safetensors file and falls back to the ``.bin``), the configuration of an
    ``hf-hub:`` model, or None when nothing downloads (no tag: random weights).

    >>> clip_files("ViT-B-32", "laion2b_s34b_b79k")  # doctest: +NORMALIZE_WHITESPACE
    HubFiles(repo='laion/CLIP-ViT-B-32-laion2B-s34B-b79K',
             files=('open_clip_model.safetensors', 'open_clip_pytorch_model.bin'))
    """
    import open_clip  # only with the extra
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    if model.startswith("hf-hub:"):
        return HubFiles(model.removeprefix("hf-hub:"), ("open_clip_config.json",))
    hub = open_clip.get_pretrained_cfg(model, pretrained).get("hf_hub", "") if pretrained else ""
    if not hub:
        return None
    repo, filename = os.path.split(hub)
    filename = filename or HF_WEIGHTS_NAME
    if filename == HF_WEIGHTS_NAME:
        return HubFiles(repo, (HF_SAFE_WEIGHTS_NAME, filename))
    if filename.endswith((".bin", ".pth")):
        return HubFiles(repo, (filename[:-4] + ".safetensors", filename))
    return HubFiles(repo, (filename,))


def ensure_available(hub: HubFiles, what: str) -> bool:
    """Whether the model ``what`` describes is in the local cache (True: load it without the
    network); False when it is not but the hub answers (its library downloads it). Raises
    :class:`~lakehouse.ModelError` at once, in one line naming the model, where it looked and
    how to get it, when it is not cached and ``HF_HUB_OFFLINE`` is set or the hub cannot be
    reached (one request, no retries, :data:`PROBE_TIMEOUT_S`)."""
    # huggingface_hub comes with the models extra (sentence-transformers and open_clip need it)
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    if any(isinstance(try_to_load_from_cache(hub.repo, name), str) for name in hub.files):
        return True
    looked = f"{what} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}, repository " \
             f"{hub.repo})"
    fix = (f"download it once where the hub is reachable with `hf download {hub.repo}` "
           "(the same cache, or HF_HOME), or pass a local model folder or weights file")
    if constants.is_offline_mode():
        raise ModelError(f"{looked} and HF_HUB_OFFLINE is set, so it is not downloaded; {fix}")
    try:
        get_hf_file_metadata(hf_hub_url(hub.repo, hub.files[-1]), timeout=PROBE_TIMEOUT_S)
    except EntryNotFoundError:  # the repository answers; its library picks the files it needs
        return False
    except RepositoryNotFoundError as exc:
        message = (f"{looked}, and {constants.ENDPOINT} has no repository {hub.repo!r} (or it "
                   "needs a token: HF_TOKEN); check the model name")
        raise ModelError(message) from exc
    except Exception as exc:  # connection refused, no DNS, timeout, TLS, proxy: one line
        message = (f"{looked}, and {constants.ENDPOINT} cannot be reached "
                   f"({type(exc).__name__}: {first_line(exc)}); {fix}")
        raise ModelError(message) from exc
    return False


def first_line(exc: BaseException) -> str:
    """The first line of a library's message (some add paragraphs of advice below it), so that
    a refusal stays one line; the whole exception stays chained as its cause.

    >>> first_line(OSError("We couldn't connect.\\nCheck your internet connection."))
    "We couldn't connect."
    """
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else "no detail"


@contextlib.contextmanager
def quiet_hub_logs() -> Iterator[None]:
    """Keep huggingface_hub's retry warnings ("Retrying in 8s [Retry 4/5]") off stderr while a
    model loads: a failed load raises one :class:`~lakehouse.ModelError` that says why. The
    level of the ``huggingface_hub`` logger is process-wide, so it is put back at once."""
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hub_logger.setLevel(level)


__all__ = ["INSTALL_MODELS", "PROBE_TIMEOUT_S", "HubFiles", "clip_files", "ensure_available",
           "first_line", "quiet_hub_logs", "require_libraries", "sentence_transformer_files"]
