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
import traceback
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from fastapi import FastAPI

from .settings import (
    ConfigError,
    CORSSettings,
    environment_setting,
    unprefixed_variables,
    variable_names,
    variables_set,
)
from .store import RuntimeOrigins

LOGGER = "corsguard"
# Always at INFO: the one start-up line must show at the service's default level too.
startup_logger = logging.getLogger(f"{LOGGER}.startup")
startup_logger.setLevel(logging.INFO)
# uvicorn's code for "the app cannot start": its worker supervisor (--workers N) stops
# every worker instead of starting the failing one again, forever.
STARTUP_FAILURE = 3
# The module whose frames are on the stack of a worker of `uvicorn --workers N` (and of
# `fastapi run --workers N`) while it imports the app.
UVICORN_WORKERS = "uvicorn.supervisors.multiprocess"
# In the temporary directory, followed by a supervisor's pid: its first worker reported.
MARKER = "corsguard-config-error-"


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
    and exit status 3 (uvicorn's STARTUP_FAILURE) instead of a traceback.

    Nothing is signalled or killed; what each command then does:

    * ``fastapi run [PATH]`` (``--workers N`` too) and ``fastapi dev [PATH]``, given a
      path or finding one, import the app in their own process to find it, so they end
      there, with status 3, before any server or worker starts.
    * ``uvicorn module:app --workers N`` and ``fastapi run --entrypoint module:app
      --workers N`` (or ``[tool.fastapi] entrypoint``) import it in the workers only. The
      first worker to fail reports, its siblings stay silent, and the supervisor stops
      every worker instead of starting the failing one again; it then exits with status
      0, uvicorn's own choice, which only the supervisor could change. Use ``fastapi run
      PATH --workers N`` where a non-zero status must stop a deployment.
    * ``uvicorn --reload`` and ``fastapi dev --entrypoint module:app`` report once per
      reload and keep waiting for a file change, as uvicorn does for any broken import.
    """
    try:
        app = create_app()
    except ConfigError as error:
        worker = in_uvicorn_worker()
        if not worker or first_to_report():
            sys.stderr.write(f"{error}\n")
            sys.stderr.flush()
        if worker:
            # Interpreter shutdown freezes uvicorn's health-check thread in this worker:
            # a check the supervisor sends meanwhile goes unanswered, and it waits out
            # its timeout (5 s by default) before it stops the others. Leave at once:
            # stderr is flushed, and nothing else runs before a server starts.
            sys.stdout.flush()
            os._exit(STARTUP_FAILURE)
        raise SystemExit(STARTUP_FAILURE) from None
    settings = getattr(app.state, "cors_settings", None)
    if isinstance(settings, CORSSettings):
        runtime = getattr(app.state, "cors_origins", None)
        startup_logger.info("%s", startup_line(settings, runtime))
    return app


def in_uvicorn_worker() -> bool:
    """Whether the app is being imported by a worker of ``uvicorn --workers N``."""
    return any(
        frame.f_globals.get("__name__") == UVICORN_WORKERS
        for frame, _ in traceback.walk_stack(None)
    )


def first_to_report(within: float = 60.0) -> bool:
    """Whether this worker is the first of its siblings (the workers of one uvicorn
    supervisor, which stops them all at the first failure) to report a bad configuration
    in the last ``within`` seconds; True outside a supervisor."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return True
    markers = Path(tempfile.gettempdir())
    marker = markers / f"{MARKER}{parent.pid}"
    for stale in markers.glob(f"{MARKER}*"):  # of earlier runs, this one's pid among them
        with suppress(OSError):
            if time.time() - stale.stat().st_mtime > within:
                stale.unlink()
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return True  # no usable temporary directory: report in every worker
    return True


def startup_line(settings: CORSSettings, runtime: RuntimeOrigins | None = None) -> str:
    """Which environment and policy are in force, and which values variables set; with
    ``runtime``, how many run-time origins the store gave (or that it could not)."""
    settings_cls = type(settings)
    variable = settings_cls.environment_variable()
    found = environment_setting(settings_cls, settings_cls.model_config.get("env_file"))
    source = None if found is None else found[1]
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
    if runtime is not None:
        if runtime.problem:
            parts.append(f"run-time origins NONE: store {runtime.store.name} unreachable")
        else:
            skipped = len(runtime.snapshot.skipped)
            line = f"run-time origins {runtime.snapshot.count} from {runtime.store.name}"
            parts.append(line + (f" ({skipped} bad rows skipped)" if skipped else ""))
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
