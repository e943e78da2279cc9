"""The ASGI application: ``uvicorn <package>.main:app`` or ``fastapi run``."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from .cors import CORSPolicies, add_cors
from .health import router as health_router
from .settings import SERVICE, ConfigError, Settings, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; without ``settings``, read them from the environment.

    Raises :class:`ConfigError` when the configuration is invalid.
    """
    if settings is None:
        settings = load_settings()
    configure_logging(settings.log_level)
    app = FastAPI(title=SERVICE.title)
    app.include_router(health_router)
    # Middleware added later wraps what was added before. Add your own middleware here,
    # above add_cors: CORS must stay outermost so that every response, errors and
    # responses produced by other middleware included, carries its headers.
    add_cors(app, CORSPolicies.from_settings(settings))
    return app


def configure_logging(level: str) -> None:
    """Send this package's records (CORS refusals among them) to stderr at ``level``."""
    package_logger = logging.getLogger(__package__)
    package_logger.setLevel(level)
    if not package_logger.handlers and not logging.getLogger().handlers:
        # Nothing configured logging (plain uvicorn does not touch the root logger).
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        package_logger.addHandler(handler)


def _app_from_environment() -> FastAPI:
    try:
        return create_app()
    except ConfigError as error:
        # One clear message and a non-zero exit, instead of a traceback.
        raise SystemExit(str(error)) from None


app = _app_from_environment()
