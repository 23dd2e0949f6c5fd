"""The search page: a small local web app over one image column of one table.

Type a description, and the pictures closest to it appear as you type (a similarity search on the
column's embedding index); a second page shows the table's first rows and its history.

>>> from lakehouse.web import create_app, serve
>>> clip = lh.functions.clip(lh.functions.SHAPES_CLIP)
>>> _ = pics.add_embedding_index("image", embedding=clip, progress=False)
>>> app = create_app(pics, "image", k=24)  # an ASGI app
>>> serve(pics, "image", port=8000)  # serves until stopped, as `lakehouse serve`  # doctest: +SKIP
"""

from lakehouse.web.app import create_app
from lakehouse.web.server import ServeError, serve

__all__ = ["create_app", "serve", "ServeError"]
