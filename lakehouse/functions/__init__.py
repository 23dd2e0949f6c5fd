"""Built-in functions usable in expressions, registered in :mod:`lakehouse.exprs.registry`.

Importing this package registers the string and embedding functions, and records which module
provides each namespace of media functions (:mod:`lakehouse.providers`): those load the first
time a media method, check or stored function of their kind is used.
"""

from lakehouse import providers
from lakehouse.functions import strings  # noqa: F401  (registers the str.* functions)
from lakehouse.functions.embeddings import (
    SHAPES_CLIP,
    EmbeddingFunction,
    clip,
    sentence_transformer,
)
from lakehouse.functions.remote import openai  # lh.functions.openai (httpx loads on first call)

for _namespace, _module in (("str", "strings"), ("embed", "embeddings"), ("media", "media"),
                            ("image", "image"), ("video", "video"), ("audio", "audio"),
                            ("document", "document"), ("openai", "remote.openai")):
    providers.provide(_namespace, f"lakehouse.functions.{_module}")

__all__ = ["SHAPES_CLIP", "EmbeddingFunction", "clip", "openai", "sentence_transformer"]
