"""The search page: a small local web app over one image column of one table.

Type a description, and the pictures closest to it appear as you type (a similarity search on the
column's embedding index); a second page shows the table's first rows and its history.

>>> from lakehouse.web import create_app, serve
>>> app = create_app(db.get_table("pics"), "image", k=24)  # an ASGI app  # doctest: +SKIP
>>> serve(db.get_table("pics"), "image", port=8000)  # what `lakehouse serve` runs  # doctest: +SKIP
"""

from lakehouse.web.app import create_app
from lakehouse.web.server import ServeError, serve

__all__ = ["create_app", "serve", "ServeError"]
