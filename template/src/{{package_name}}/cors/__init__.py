"""CORS for this service, maintained by fastapi-cors-template: do not edit these files.

``copier update`` brings the template's fixes to this package and to ``tests/cors/``;
edits made here would meet those fixes as conflicts. The service's own code (the app
factory in ``main.py``, ``Settings`` in ``settings.py``, the ``routers`` package and
``tests/``) uses only what this module exports.
"""

from .app import app_or_exit, configure_logging
from .middleware import add_cors
from .settings import SERVICE, ConfigError, CORSSettings

__all__ = [
    "SERVICE",
    "CORSSettings",
    "ConfigError",
    "add_cors",
    "app_or_exit",
    "configure_logging",
]
