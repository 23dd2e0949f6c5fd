"""Built-in functions usable in expressions. Importing this package registers them."""

from lakehouse.functions import strings  # noqa: F401  (registers the str.* functions)
from lakehouse.functions.embeddings import (
    SHAPES_CLIP,
    EmbeddingFunction,
    clip,
    sentence_transformer,
)

__all__ = ["SHAPES_CLIP", "EmbeddingFunction", "clip", "sentence_transformer"]
