"""Running the search page: listen on an address and serve the app with uvicorn until stopped."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from lakehouse.errors import Error
from lakehouse.web.app import LOCAL_HOSTS, create_app

if TYPE_CHECKING:
    from lakehouse.table import Table

ANY_ADDRESS = ("0.0.0.0", "::", "")


class ServeError(Error, OSError):
    """The search page cannot listen on the address it was given (say, the port is taken).

    >>> import socket
    >>> taken = socket.create_server(("127.0.0.1", 0))
    >>> _ = pics.add_embedding_index("image", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
    ...                              progress=False)
    >>> serve(pics, "image", port=taken.getsockname()[1])
    Traceback (most recent call last):
    lakehouse.web.server.ServeError: cannot listen on 127.0.0.1:...: ...; choose another port
    >>> taken.close()
    """


def serve(table: Table, column: str, *, host: str = "127.0.0.1", port: int = 8000, k: int = 24,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the search page of ``table``'s image ``column`` on ``host:port`` until interrupted
    (Ctrl+C or SIGTERM). ``port=0`` takes any free port. The embedding model is loaded before
    the first request is answered; then ``on_ready`` is called with the page's URL.

    By default only this machine can reach the page; with ``host="0.0.0.0"`` any machine that
    can reach this one can read the table through it.

    >>> serve(pics, "image", on_ready=print)  # serves until stopped  # doctest: +SKIP
    http://127.0.0.1:8000/
    """
    import uvicorn  # the web server loads only when a page is served

    allowed = ["*"] if host in ANY_ADDRESS else sorted({*LOCAL_HOSTS, host})
    app = create_app(table, column, k=k, allowed_hosts=allowed)
    sock = _listen(host, port)
    try:
        app.state.cards.warm()
        bound_port = sock.getsockname()[1]
        config = uvicorn.Config(app, host=host, port=bound_port, log_level="warning",
                                access_log=False, server_header=False)
        if on_ready is not None:
            shown = f"[{host}]" if ":" in host else host
            on_ready(f"http://{shown}:{bound_port}/")
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl+C is how the page is stopped: not an error
        pass
    finally:
        sock.close()


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = "; choose another port" if exc.errno == errno.EADDRINUSE else ""
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from exc
    return sock
