"""Unhandled exceptions become a JSON 500 that browsers on allowed origins can read.

Starlette answers an unhandled exception from ``ServerErrorMiddleware``, which sits
outside every middleware added with ``add_middleware``: that 500 never passes through
the CORS middleware, and the browser reports a CORS failure instead of the error. The
CORS middleware (``middleware.py``) catches what the app raises before its response starts
and sends the response below with the same CORS headers as any other response.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse, Response
from starlette.types import Scope

logger = logging.getLogger(__name__)

LOGGED_LENGTH = 200


def loggable(value: str) -> str:
    """A request-derived value as a log record may show it: quoted with every control
    character escaped (no forged lines, no terminal escapes), and cut after
    ``LOGGED_LENGTH`` characters so that a request cannot write kilobytes to the log."""
    if len(value) > LOGGED_LENGTH:
        return repr(value[:LOGGED_LENGTH]) + "..."
    return repr(value)


def internal_error(scope: Scope) -> Response:
    """Log the exception being handled, with its traceback, and return the 500 to send:
    ``{"detail": "Internal Server Error"}``, nothing of the exception itself."""
    logger.exception("Unhandled error in %s %s", scope["method"], loggable(scope["path"]))
    return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
