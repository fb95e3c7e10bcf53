"""``facesearch serve``: the app on uvicorn, on an address checked against the API key rule.

The socket is bound here before uvicorn starts, so a port in use is one line, and port 0 picks a
free port (the URL printed says which). SIGINT and SIGTERM stop it gracefully: no new
connections, requests in progress finish (up to ``grace`` seconds), queued work is done, the
gallery is closed.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
import time
from typing import Callable, Iterator

import uvicorn

from facesearch.errors import FaceSearchError, one_line
from facesearch.gallery import Gallery
from facesearch.server.app import create_app
from facesearch.server.keys import is_loopback
from facesearch.server.state import ServerSettings

log = logging.getLogger(__name__)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6).

    Raises:
        FaceSearchError: the address cannot be used (in use, not an address of this machine).
    """
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise FaceSearchError(f"{host}:{port}: cannot listen there ({one_line(exc.strerror or exc)})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def check_keys_rule(gallery: Gallery, host: str) -> None:
    """Refuse an address other than loopback while the gallery has no API key in force.

    Raises:
        FaceSearchError: naming the address and the command that fixes it.
    """
    if not is_loopback(host) and not gallery.has_keys():
        raise FaceSearchError(f"{host}: refusing to listen beyond this machine without an API key; create one "
                              "with `facesearch keys create --role write` (or listen on 127.0.0.1)")


def serve(gallery: Gallery, settings: ServerSettings, port: int, *, grace: float = 30.0,
          on_ready: Callable[[str], None] | None = None, log_level: str = "warning") -> None:
    """Serve ``gallery`` on ``settings.host:port`` until SIGINT or SIGTERM.

    Args:
        on_ready: called with the base URL once the socket listens (before the models are loaded).
    """
    check_keys_rule(gallery, settings.host)
    sock = bind(settings.host, port)
    host, bound_port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{bound_port}"
    app = create_app(gallery, settings=settings)
    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=grace,
                            ws_max_size=settings.limits.max_upload_bytes + 4096,
                            access_log=log_level in ("info", "debug", "trace"))
    server = uvicorn.Server(config)
    if on_ready:
        on_ready(url)
    with _quiet_stop():
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()


@contextlib.contextmanager
def _quiet_stop() -> Iterator[None]:
    """uvicorn handles SIGINT and SIGTERM while it runs, then raises the signal again into the
    handler that was there before; this one notes it, so a stopped server returns normally
    (exit status 0) instead of dying of the signal after its graceful shutdown."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class BackgroundServer:
    """An app served by uvicorn on a thread of this process, for tests, benchmarks and screenshots::

        with BackgroundServer(create_app(gallery)) as url:
            urllib.request.urlopen(url + "/api/v1/health/live")

    Listens on ``host`` (loopback by default) and a free port; leaving the block stops it
    gracefully and runs the app's shutdown.
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, *, grace: float = 10.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.grace = grace
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    def __enter__(self) -> str:
        self._sock = bind(self.host, self.port)
        host, port = self._sock.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=self.grace,
                                access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="uvicorn", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise FaceSearchError(f"{self.url}: the server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=self.grace + 30)
        if self._sock is not None:
            self._sock.close()
