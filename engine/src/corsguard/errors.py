"""Unhandled exceptions become a JSON 500 that browsers on allowed origins can read.

Starlette answers an unhandled exception from ``ServerErrorMiddleware``, which sits
outside every middleware added with ``add_middleware``: that 500 never passes through
the CORS middleware, and the browser reports a CORS failure instead of the error. The
CORS middleware (``middleware.py``) catches what the app raises before its response starts,
sends the response below with the same CORS headers as any other response, and raises the
exception again: the server logs it with its traceback, once, and a test client raises it.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

LOGGED_LENGTH = 200


def loggable(value: str) -> str:
    """A request-derived value as a log record may show it: quoted with every control
    character escaped (no forged lines, no terminal escapes), and cut after
    ``LOGGED_LENGTH`` characters so that a request cannot write kilobytes to the log."""
    if len(value) > LOGGED_LENGTH:
        return repr(value[:LOGGED_LENGTH]) + "..."
    return repr(value)


def internal_error() -> Response:
    """The 500 to send for an unhandled exception: ``{"detail": "Internal Server Error"}``,
    nothing of the exception itself. Not logged here: the exception is raised again after
    this response, and the server logs it with its traceback (uvicorn: "Exception in ASGI
    application"), so a record here would only repeat the traceback."""
    return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
