"""Run a project page's real uvicorn server on a free loopback port in a thread, for the tests."""

from __future__ import annotations

import contextlib
import threading
import time


@contextlib.contextmanager
def serving(make_server, what: str):
    """``make_server(sock)`` -> a uvicorn.Server; yields the URL it answers on, stops it after."""
    from pipeline.core.localweb import bind, url_of

    sock = bind("127.0.0.1", 0, "port")
    server = make_server(sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the {what} server did not start")
        time.sleep(0.05)
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
