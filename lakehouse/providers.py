"""Which module provides a namespace of built-in functions, imported the first time it is needed.

The modules that define built-ins (``lakehouse.functions.image``, ``...video``) sit above the
layers that look them up: a media type checks its values with the checker its functions module
registers (:mod:`lakehouse.types`), and expressions find their methods in the function registry
(:mod:`lakehouse.exprs.registry`). Those lower layers never import the higher modules; they ask
this table, which :mod:`lakehouse.functions` fills, to import the provider of a namespace by name.
So ``import lakehouse`` stays fast (Pillow, PyAV and pypdf load when a media function or check
first runs) and the layers stay one-way.

>>> import sys
>>> load("document")  # lakehouse.functions provides it: its functions register on import
>>> "lakehouse.functions.document" in sys.modules
True
>>> load("no-such-namespace")  # nothing provides it: nothing to import
"""

from __future__ import annotations

import importlib
import threading

_PROVIDERS: dict[str, str] = {}
_lock = threading.Lock()


def provide(namespace: str, module: str) -> None:
    """Record that importing ``module`` registers the built-ins of ``namespace``."""
    with _lock:
        _PROVIDERS[namespace] = module


def load(namespace: str) -> None:
    """Import the module that provides ``namespace``, if one does (once; later calls are cheap)."""
    module = _PROVIDERS.get(namespace)
    if module is not None:
        importlib.import_module(module)


def namespaces() -> list[str]:
    """Every namespace a module was recorded for, in order."""
    return sorted(_PROVIDERS)


__all__ = ["load", "namespaces", "provide"]
