"""Start-up helpers for the app factory: logging, and one clear exit on a bad configuration."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI

from .settings import ConfigError

SERVICE_LOGGER = __name__.split(".")[0]


def configure_logging(level: str) -> None:
    """Send the service's records (CORS refusals among them) to stderr at ``level``."""
    service_logger = logging.getLogger(SERVICE_LOGGER)
    service_logger.setLevel(level)
    if not service_logger.handlers and not logging.getLogger().handlers:
        # Nothing configured logging (plain uvicorn does not touch the root logger).
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        service_logger.addHandler(handler)


def app_or_exit(create_app: Callable[[], FastAPI]) -> FastAPI:
    """``create_app()``, or one clear message and a non-zero exit instead of a traceback."""
    try:
        return create_app()
    except ConfigError as error:
        raise SystemExit(str(error)) from None
