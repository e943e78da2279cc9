"""corsguard: a validated, per-environment CORS policy for FastAPI apps.

Two steps adopt it: settings that inherit :class:`CORSSettings`, and :func:`add_cors` as
the last middleware the app adds::

    from corsguard import CORSSettings, add_cors

    class Settings(CORSSettings): ...

    app = FastAPI()
    add_cors(app, Settings.load())

The names below are the public interface; everything else may change between releases.
"""

from importlib.metadata import version

from .app import app_or_exit, configure_logging, startup_line
from .explain import Verdict, explain
from .middleware import CORSPolicies, CORSPolicy, add_cors
from .origins import NULL, WILDCARD, OriginError, parse_origin
from .settings import ConfigError, CORSConfigDict, CORSSettings, PathPolicy, ServiceFile
from .store import RuntimeOrigins, StoredOrigin, StoreError

__version__ = version("corsguard")

__all__ = [
    "NULL",
    "WILDCARD",
    "CORSConfigDict",
    "CORSPolicies",
    "CORSPolicy",
    "CORSSettings",
    "ConfigError",
    "OriginError",
    "PathPolicy",
    "RuntimeOrigins",
    "ServiceFile",
    "StoreError",
    "StoredOrigin",
    "Verdict",
    "__version__",
    "add_cors",
    "app_or_exit",
    "configure_logging",
    "explain",
    "parse_origin",
    "startup_line",
]
