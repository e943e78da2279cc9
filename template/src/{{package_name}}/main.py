"""The ASGI application: ``uvicorn <package>.main:app`` or ``fastapi run``."""

from __future__ import annotations

from fastapi import FastAPI

from .cors import CORSPolicy, add_cors
from .health import router as health_router
from .settings import SERVICE, ConfigError, Settings, load_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; without ``settings``, read them from the environment.

    Raises :class:`ConfigError` when the configuration is invalid.
    """
    if settings is None:
        settings = load_settings()
    app = FastAPI(title=SERVICE.title)
    app.include_router(health_router)
    add_cors(app, CORSPolicy.from_settings(settings))
    return app


def _app_from_environment() -> FastAPI:
    try:
        return create_app()
    except ConfigError as error:
        # One clear message and a non-zero exit, instead of a traceback.
        raise SystemExit(str(error)) from None


app = _app_from_environment()
