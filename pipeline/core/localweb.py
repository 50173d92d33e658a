"""What the project's local pages (``boorugan label``, ``boorugan play``) share: a loopback-only
FastAPI app that a web page elsewhere cannot reach through DNS rebinding, three static files
served from a fixed table, JSON errors, and a socket bound before the URL is printed."""

from __future__ import annotations

import socket
from importlib import resources

from pipeline.core.errors import StageError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
STATIC = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}


def error_status(exc: BaseException, command: str) -> tuple[int, str]:
    """(HTTP status, message) for a failure no endpoint expected: the CLI's own paragraph
    (pipeline/core/failures.py), as a 507 for a full disk, 503 for memory, 413 for a picture too
    large, 500 otherwise."""
    from pipeline.core.failures import explain

    message = explain(exc, command).message
    low = message.lower()
    status = (507 if "is full" in low else 503 if "out of memory" in low
              else 413 if "decompression bomb" in low else 500)
    return status, message


def local_app(title: str, host: str, package: str, command: str = "page"):
    """A FastAPI app serving ``package``'s static/ files; on a loopback ``host`` it answers only
    requests addressed to loopback names; every error comes back as ``{"error": ...}`` JSON, an
    unexpected one too (``command`` names the page in its message), never as a plain-text 500."""
    import logging

    from fastapi import FastAPI
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from pipeline.core.failures import debug_wanted

    log = logging.getLogger(package)
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def _json_errors(request, call_next):
        try:
            return await call_next(request)
        except Exception as e:  # noqa: BLE001 - the page's error boundary
            status, message = error_status(e, command)
            log.error("%s %s: %s", request.method, request.url.path, message, exc_info=debug_wanted())
            return JSONResponse({"error": message}, status_code=status)

    if host in LOOPBACK:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "::1", "[::1]"])

    @app.exception_handler(StarletteHTTPException)
    def _error(request, exc: StarletteHTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    for route, (name, media) in STATIC.items():
        def page(name=name, media=media):
            body = resources.files(package).joinpath("static", name).read_bytes()
            return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})

        app.get(route, include_in_schema=False)(page)
    return app


def bind(host: str, port: int, knob: str) -> socket.socket:
    """A listening socket (port 0 = any free port), so the printed URL is the real one; a port in
    use names the ``knob`` (e.g. ``label.port``) to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise StageError(f"cannot listen on {host}:{port} ({e.strerror}); pick another with -S {knob}=N "
                         "(0 = any free port)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"
