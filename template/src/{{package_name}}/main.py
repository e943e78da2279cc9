"""The app: ``fastapi run`` and ``uvicorn <package>.main:app`` serve ``app``.

``create_app`` is the one place that assembles the service: your routers, your
middleware, then the CORS layer around all of them.
"""

from __future__ import annotations

from corsguard import add_cors, app_or_exit, configure_logging
from fastapi import FastAPI

from .routers import health
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; without ``settings``, read them from the environment.

    Raises :class:`corsguard.ConfigError` when the configuration is invalid.
    """
    if settings is None:
        settings = Settings.load()
    configure_logging(settings.log_level)
    app = FastAPI(title=Settings.profiles().title)

    app.include_router(health.router)

    # Middleware: add yours above this line. add_cors must stay last, so that the CORS
    # layer wraps every other middleware and every response carries the CORS decision.
    add_cors(app, settings)
    return app


app = app_or_exit(create_app)
