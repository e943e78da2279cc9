"""Start-up: logging, one line that says which policy is in force, and one clear exit
on a bad configuration."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from contextlib import suppress

from fastapi import FastAPI

from .settings import (
    ENVIRONMENT_VARIABLE,
    SERVICE,
    ConfigError,
    CORSSettings,
    unprefixed_variables,
    variable_names,
    variables_set,
)

SERVICE_LOGGER = __name__.split(".")[0]
# Always at INFO: the one start-up line must show at the service's default level too.
startup_logger = logging.getLogger(f"{SERVICE_LOGGER}.startup")
startup_logger.setLevel(logging.INFO)


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
    """``create_app()`` and the start-up line; on a bad configuration, the message once
    and a non-zero exit instead of a traceback (and instead of a server that waits)."""
    try:
        app = create_app()
    except ConfigError as error:
        sys.stderr.write(f"{error}\n")
        sys.stderr.flush()
        stop_supervisor()
        raise SystemExit(1) from None
    settings = getattr(app.state, "cors_settings", None)
    if isinstance(settings, CORSSettings):
        startup_logger.info("%s", startup_line(settings))
    return app


def stop_supervisor() -> None:
    """End the uvicorn process that started this one, if any.

    ``fastapi dev`` (the reloader) and ``--workers`` run the app in a child process;
    the parent would wait for a file change, or start the failing worker again, forever.
    Its end is what makes the command exit, non-zero, with the message shown once.
    """
    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None and "uvicorn" in sys.modules:
        with suppress(ProcessLookupError):  # another worker may have ended it already
            os.kill(parent.pid, signal.SIGKILL)


def startup_line(settings: CORSSettings) -> str:
    """Which environment and policy are in force, and which values variables set."""
    if ENVIRONMENT_VARIABLE in os.environ:
        chosen = f"ENVIRONMENT={settings.environment}"
    else:
        chosen = (
            f"ENVIRONMENT not set: serving the {settings.environment!r} profile "
            f"(the first of {', '.join(SERVICE.profiles)}; set ENVIRONMENT in every deployment)"
        )
    policy = settings.default_policy
    parts = [
        chosen,
        f"origins {', '.join(policy.allow_origins) or '(none)'}",
        f"credentials {'on' if policy.allow_credentials else 'off'}",
        f"methods {', '.join(policy.allow_methods)}",
        f"write protection {'on' if settings.cors_cross_origin_protection else 'off'}",
    ]
    if settings.cors_path_policies:
        named = (
            f"{name} ({', '.join(path.prefixes)})"
            for name, path in settings.cors_path_policies.items()
        )
        parts.append(f"path policies {'; '.join(named)}")
    names = variable_names(type(settings))
    overridden = sorted(name for name in variables_set(type(settings)) if name.upper() in names)
    if overridden:
        parts.append(f"from variables: {', '.join(overridden)}")
    ignored = unprefixed_variables(type(settings))
    if ignored:
        prefix = settings.env_name("cors_")
        parts.append(f"ignored (this service reads {prefix}*): {', '.join(ignored)}")
    return "CORS policy in force: " + "; ".join(parts)
