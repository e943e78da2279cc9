"""Unhandled exceptions become a JSON 500 that browsers on allowed origins can read.

Starlette answers an unhandled exception from ``ServerErrorMiddleware``, which sits
outside every middleware added with ``add_middleware``: that 500 never passes through
the CORS middleware, and the browser reports a CORS failure instead of the error. This
middleware is installed inside the CORS middleware, so the 500 it sends gets the same
CORS headers as any other response.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class UnhandledErrorMiddleware:
    """Log the exception with its traceback; answer ``{"detail": "Internal Server Error"}``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        response_started = False

        async def send_and_track(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_and_track)
        except Exception:
            logger.exception("Unhandled error in %s %s", scope["method"], scope["path"])
            if response_started:
                raise  # Too late for another response: let the server close the connection.
            response = JSONResponse({"detail": "Internal Server Error"}, status_code=500)
            await response(scope, receive, send)
