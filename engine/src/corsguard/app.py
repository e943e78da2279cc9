"""Start-up: logging, one line that says which policy is in force, and one clear exit
on a bad configuration."""

from __future__ import annotations

import fnmatch
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from fastapi import FastAPI

from .settings import (
    ConfigError,
    CORSSettings,
    dotenv_file_values,
    unprefixed_variables,
    variable_names,
    variables_set,
)

LOGGER = "corsguard"
# Always at INFO: the one start-up line must show at the service's default level too.
startup_logger = logging.getLogger(f"{LOGGER}.startup")
startup_logger.setLevel(logging.INFO)
# uvicorn's code for "the app cannot start": its worker supervisor (--workers N) stops
# every worker instead of starting the failing one again, forever.
STARTUP_FAILURE = 3


def configure_logging(level: str) -> None:
    """Send this package's records (CORS refusals among them) to stderr at ``level``."""
    package_logger = logging.getLogger(LOGGER)
    package_logger.setLevel(level)
    if not package_logger.handlers and not logging.getLogger().handlers:
        # Nothing configured logging (plain uvicorn does not touch the root logger).
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        package_logger.addHandler(handler)


def app_or_exit(create_app: Callable[[], FastAPI]) -> FastAPI:
    """``create_app()`` and the start-up line; on a bad configuration, the message once
    and exit status 3 instead of a traceback.

    ``fastapi run`` and ``fastapi dev`` import the app before they start any worker, so
    they end there. A worker of ``uvicorn --workers N`` that exits with 3 makes uvicorn
    stop the others rather than start it again; the sibling workers that fail the same
    way print nothing more. Nothing else is signalled or killed.
    """
    try:
        app = create_app()
    except ConfigError as error:
        if first_to_report():
            sys.stderr.write(f"{error}\n")
            sys.stderr.flush()
        raise SystemExit(STARTUP_FAILURE) from None
    settings = getattr(app.state, "cors_settings", None)
    if isinstance(settings, CORSSettings):
        startup_logger.info("%s", startup_line(settings))
    return app


def first_to_report(within: float = 60.0) -> bool:
    """Whether this process is the first of its siblings (children of one supervisor) to
    report a bad configuration in the last ``within`` seconds; True outside a supervisor."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return True
    marker = Path(tempfile.gettempdir()) / f"corsguard-config-error-{parent.pid}"
    with suppress(FileNotFoundError):
        if time.time() - marker.stat().st_mtime > within:  # a stale marker of another run
            marker.unlink()
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return True  # no usable temporary directory: report in every worker
    return True


def environment_source(settings_cls: type[CORSSettings]) -> str | None:
    """Where the profile's variable is set: "the environment", ".env", or None."""
    wanted = settings_cls.environment_variable().upper()
    if any(name.upper() == wanted for name in os.environ):
        return "the environment"
    env_file = settings_cls.model_config.get("env_file")
    if any(name.upper() == wanted for name in dotenv_file_values(env_file)):
        return ".env"
    return None


def startup_line(settings: CORSSettings) -> str:
    """Which environment and policy are in force, and which values variables set."""
    settings_cls = type(settings)
    variable = settings_cls.environment_variable()
    source = environment_source(settings_cls)
    profiles = list(settings_cls.profiles().profiles)
    if source == "the environment":
        chosen = f"{variable}={settings.environment}"
    elif source == ".env":
        chosen = f"{variable}={settings.environment} (from .env)"
    elif profiles:
        chosen = (
            f"{variable} not set: serving the {settings.environment!r} profile "
            f"(the default of {', '.join(profiles)}; set {variable} in every deployment)"
        )
    else:
        chosen = "no profiles: fields from variables, .env and defaults"
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
    names = variable_names(settings_cls)
    overridden = sorted(
        name
        for name in variables_set(settings_cls)
        if name.upper() != variable.upper()
        and any(fnmatch.fnmatchcase(name.upper(), known) for known in names)
    )
    if overridden:
        parts.append(f"from variables: {', '.join(overridden)}")
    ignored = unprefixed_variables(settings_cls)
    if ignored:
        prefix = settings.env_name("cors_")
        parts.append(f"ignored (this service reads {prefix}*): {', '.join(ignored)}")
    return "CORS policy in force: " + "; ".join(parts)
