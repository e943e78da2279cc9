"""Run-time origins: added and removed while the service runs, in a SQLite file or in
PostgreSQL, checked by the rules of configured origins, seen by a running app without a
restart, and kept through a store outage.

The PostgreSQL cases run against the throw-away server of the ``postgres`` fixture; each
test starts from an empty schema.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI, HTTPException, Request, WebSocket
from pydantic import BaseModel
from starlette.websockets import WebSocketDisconnect

import corsguard.store
from corsguard.store import OriginStore, RuntimeOrigins, SQLiteStore

from .pgserver import PostgresServer
from .service import (
    ConfigError,
    OriginError,
    Settings,
    check,
    create_app,
    main,
    startup_line,
)

with warnings.catch_warnings():
    # As in test_defect_server_errors: Starlette 1.10 asks for httpx2, 0.51 names an
    # alias new anyio releases deprecate; the test client works with either.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette.testclient`")
    warnings.filterwarnings("ignore", message=r"The anyio.abc.BlockingPortal alias")
    from fastapi.testclient import TestClient

CONFIGURED = "https://app.example.com"  # in the production profile
PARTNER = "https://partner.example.org"  # configured in the partner path policy
TENANT = "https://tenant.example.com"
OTHER_TENANT = "https://other.example.com"
EVIL = "https://evil.com"
STORE_LOGGER = "corsguard.store"
CHANGES_LOGGER = "corsguard.origins"
STARTUP_LOGGER = "corsguard.startup"
WAIT = 5.0  # seconds a running app may take to see a change
PARTNER_POLICY = {
    "prefixes": ["/partner"],
    "allow_origins": [PARTNER],
    "allow_methods": ["GET", "POST"],
}
# Rows the rules refuse, as someone might write them into the table by hand:
# (policy column, origin column).
BAD_ROWS = [
    ("", "https://*.com"),
    ("", "*"),
    ("", "not an origin"),
    ("", "null"),
    ("nope", "https://ok.example.com"),
]
PASSWORD = "s3cret-password"  # noqa: S105 - never in a message or a log
CROSS_SITE = {"Sec-Fetch-Site": "cross-site"}
TENANT_WRITE = {"Origin": TENANT, **CROSS_SITE}


# -- Stores -----------------------------------------------------------------------------


def reset_postgres(url: str) -> None:
    """An empty schema: the store as a new deployment finds it."""
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS corsguard_origins, corsguard_schema CASCADE")
        db.execute("DROP FUNCTION IF EXISTS corsguard_origins_changed() CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty store of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'origins.db'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    reset_postgres(server.url)
    return server.url


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    reset_postgres(postgres.url)
    return postgres.url


def write_by_hand(url: str, rows: list[tuple[str, str]]) -> None:
    """Insert (policy, origin) rows without corsguard, as psql or sqlite3 would."""
    OriginStore.open(url).migrate()  # the table, as a deployment has it
    if url.startswith("sqlite"):
        path = SQLiteStore(url).path
        with closing(sqlite3.connect(path)) as db:
            db.executemany("INSERT INTO corsguard_origins (policy, origin) VALUES (?, ?)", rows)
            db.commit()
    else:
        with psycopg.connect(url, autocommit=True) as db:
            for row in rows:
                db.execute("INSERT INTO corsguard_origins (policy, origin) VALUES (%s, %s)", row)


def stored(url: str) -> list[tuple[str, str]]:
    """Every (policy, origin) row of the store, read without corsguard."""
    query = "SELECT policy, origin FROM corsguard_origins ORDER BY policy, origin"
    if url.startswith("sqlite"):
        with closing(sqlite3.connect(SQLiteStore(url).path)) as db:
            return [(policy, origin) for policy, origin in db.execute(query)]
    with psycopg.connect(url) as db:
        return [(policy, origin) for policy, origin in db.execute(query)]


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- The service --------------------------------------------------------------------------


def settings_for(url: str, environment: str = "production", **values: Any) -> Settings:
    return Settings(_env_file=None, environment=environment, cors_origin_store=url, **values)


def service(settings: Settings) -> FastAPI:
    """The test service with a write, a WebSocket, and a route under /partner."""
    app = create_app(settings)

    @app.post("/items")
    @app.get("/partner/data")
    @app.post("/partner/data")
    def handler() -> dict[str, str]:
        return {"status": "done"}

    @app.websocket("/ws")
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hello")
        await websocket.close()

    return app


def allowed(client: TestClient, origin: str, path: str = "/health") -> bool:
    response = client.get(path, headers={"Origin": origin})
    assert response.status_code == 200, response.text
    header: str | None = response.headers.get("access-control-allow-origin")
    return header == origin


def wait_until(check: Callable[[], bool], what: str, timeout: float = WAIT) -> float:
    """Seconds until ``check()`` holds; fails after ``timeout``."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not seen within {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start


def records(caplog: pytest.LogCaptureFixture, logger: str, text: str) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == logger and text in record.getMessage()
    ]


@pytest.fixture
def cli(
    clean_environment: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str, str]]:
    """``corsguard ARGS`` against a store: (exit status, stdout, stderr)."""

    def run(url: str, *arguments: str) -> tuple[int, str, str]:
        monkeypatch.setenv("CORS_ORIGIN_STORE", url)
        capsys.readouterr()
        status = main(list(arguments))
        out, err = capsys.readouterr()
        return status, out, err

    return run


# -- 1. Validation when added -----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["https://a.example.com/app", "https://*.com", "https://*.co.uk", "null"],
)
def test_add_refuses_what_start_up_refuses_in_the_same_words(store_url: str, value: str) -> None:
    runtime = RuntimeOrigins(settings_for(store_url))
    with pytest.raises(OriginError) as refused:
        runtime.add(value)
    with pytest.raises(ConfigError) as at_start_up:
        Settings.load(environment="production", cors_allow_origins=[value])
    assert str(refused.value) in str(at_start_up.value)
    assert repr(value) in str(refused.value)
    assert runtime.list() == []


def test_add_refuses_the_wildcard_and_an_unknown_policy(store_url: str) -> None:
    runtime = RuntimeOrigins(
        settings_for(store_url, cors_path_policies={"partner": PARTNER_POLICY})
    )
    with pytest.raises(OriginError, match=r"'\*' cannot be a run-time origin: it would allow"):
        runtime.add("*")
    with pytest.raises(
        OriginError, match="no path policy named 'nope': use one of default, partner"
    ):
        runtime.add(TENANT, policy="nope")
    assert runtime.list() == []


def test_null_is_a_run_time_origin_outside_production(store_url: str) -> None:
    assert RuntimeOrigins(settings_for(store_url, "development")).add("null") == "null"
    assert stored(store_url) == [("", "null")]


def test_add_stores_the_normal_form_and_remove_accepts_any_spelling(store_url: str) -> None:
    runtime = RuntimeOrigins(settings_for(store_url))
    assert runtime.add("HTTPS://T.Example.com:443/", by="alice") == "https://t.example.com"
    assert stored(store_url) == [("", "https://t.example.com")]
    [(row, problem)] = runtime.list()
    assert (row.origin, row.policy, row.added_by, problem) == (
        "https://t.example.com",
        None,
        "alice",
        None,
    )
    assert runtime.remove("https://T.EXAMPLE.com/") is True
    assert runtime.remove("https://t.example.com") is False
    assert stored(store_url) == []


def test_origins_command_exit_statuses_and_json(
    store_url: str, cli: Callable[..., tuple[int, str, str]]
) -> None:
    production = ("--env", "production")
    status, out, err = cli(store_url, "origins", "add", "https://*.com", *production)
    assert (status, out) == (2, "")
    with pytest.raises(ConfigError) as at_start_up:
        Settings.load(environment="production", cors_allow_origins=["https://*.com"])
    assert err.strip() in str(at_start_up.value)

    status, out, err = cli(store_url, "origins", "add", "null", *production)
    assert status == 2
    assert "'null' is refused in production" in err
    status, _, err = cli(store_url, "origins", "add", "*", *production)
    assert status == 2
    assert "'*' cannot be a run-time origin" in err
    for verb in ("add", "remove"):
        status, _, err = cli(store_url, "origins", verb, TENANT, "--policy", "nope", *production)
        assert status == 2, verb
        assert "no path policy named 'nope': use one of default" in err

    status, out, err = cli(
        store_url, "origins", "add", "HTTPS://T.Example.com:443/", "--by", "bob", *production
    )
    assert (status, err) == (0, "")
    assert out.startswith("https://t.example.com is a run-time origin of the default policy")

    status, out, _ = cli(store_url, "origins", "list", "--json", *production)
    assert status == 0
    [row] = json.loads(out)
    assert {key: row[key] for key in ("origin", "policy", "added_by", "skipped")} == {
        "origin": "https://t.example.com",
        "policy": "default",
        "added_by": "bob",
        "skipped": None,
    }
    assert row["added_at"]

    status, out, err = cli(store_url, "origins", "remove", OTHER_TENANT, *production)
    assert (status, out) == (1, "")
    assert f"{OTHER_TENANT} is not a run-time origin of the default policy" in err
    status, out, _ = cli(store_url, "origins", "remove", "https://t.example.com", *production)
    assert status == 0
    assert out.startswith("removed https://t.example.com from the default policy")
    status, out, _ = cli(store_url, "origins", "list", "--json", *production)
    assert (status, json.loads(out)) == (0, [])


def test_origins_command_without_a_store_names_the_variable(
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    status, out, err = cli("", "origins", "list", "--env", "production")
    assert (status, out) == (2, "")
    assert "production has no origin store: set CORS_ORIGIN_STORE" in err


# -- 2. Added to the profile and to one policy --------------------------------------------


def test_run_time_origins_add_to_their_own_policy(store_url: str) -> None:
    settings = settings_for(store_url, cors_path_policies={"partner": PARTNER_POLICY})
    runtime = RuntimeOrigins(settings)
    runtime.add(TENANT)
    runtime.add(OTHER_TENANT, policy="partner")
    with TestClient(service(settings)) as client:
        # The default policy: its configured origin and its run-time one, not the partner's.
        assert allowed(client, CONFIGURED)
        assert allowed(client, TENANT)
        assert not allowed(client, OTHER_TENANT)
        assert not allowed(client, PARTNER)
        # The partner policy: likewise the other way round.
        assert allowed(client, PARTNER, "/partner/data")
        assert allowed(client, OTHER_TENANT, "/partner/data")
        assert not allowed(client, TENANT, "/partner/data")
        assert not allowed(client, EVIL, "/partner/data")
        # Write protection asks the same policies.
        for origin, path, status in [
            (TENANT, "/items", 200),
            (OTHER_TENANT, "/items", 403),
            (OTHER_TENANT, "/partner/data", 200),
            (TENANT, "/partner/data", 403),
        ]:
            response = client.post(path, headers={"Origin": origin, **CROSS_SITE})
            assert response.status_code == status, (origin, path, response.text)


def test_write_protection_and_websockets_follow_additions_and_removals(store_url: str) -> None:
    settings = settings_for(store_url, cors_origin_poll=3600)
    with TestClient(service(settings)) as client:

        def write_status() -> int:
            status: int = client.post("/items", headers=TENANT_WRITE).status_code
            return status

        assert write_status() == 403
        with pytest.raises(WebSocketDisconnect) as closed:
            client.websocket_connect("/ws", headers={"Origin": TENANT}).__enter__()
        assert closed.value.code == 1008

        other = RuntimeOrigins(settings)  # as another process would
        other.add(TENANT)
        wait_until(lambda: write_status() == 200, "a write from the added origin passing")
        with client.websocket_connect("/ws", headers={"Origin": TENANT}) as websocket:
            assert websocket.receive_text() == "hello"

        other.remove(TENANT)
        wait_until(lambda: write_status() == 403, "a write from the removed origin refused")
        with pytest.raises(WebSocketDisconnect) as closed:
            client.websocket_connect("/ws", headers={"Origin": TENANT}).__enter__()
        assert closed.value.code == 1008
        assert allowed(client, CONFIGURED)


# -- 3. Seen by a running app without a restart -------------------------------------------


def test_a_change_by_another_process_is_pushed_to_a_running_app(store_url: str) -> None:
    # No poll to fall back on within the test: the change must be pushed.
    settings = settings_for(store_url, cors_origin_poll=3600)
    with TestClient(service(settings)) as client:
        assert not allowed(client, TENANT)
        other = RuntimeOrigins(settings)
        other.add(TENANT)
        wait_until(lambda: allowed(client, TENANT), f"{TENANT} allowed after add")
        assert allowed(client, CONFIGURED)
        other.remove(TENANT)
        wait_until(lambda: not allowed(client, TENANT), f"{TENANT} refused after remove")
        assert allowed(client, CONFIGURED)


def test_a_row_written_by_hand_reaches_a_running_app(store_url: str) -> None:
    # PostgreSQL's trigger pushes a hand-written row; SQLite's poll finds it.
    poll = 1 if store_url.startswith("sqlite") else 3600
    settings = settings_for(store_url, cors_origin_poll=poll)
    with TestClient(service(settings)) as client:
        assert not allowed(client, TENANT)
        write_by_hand(store_url, [("", TENANT)])
        wait_until(lambda: allowed(client, TENANT), f"{TENANT} written by hand, allowed")


# -- 4. Bad rows written by hand ----------------------------------------------------------


def test_a_bad_row_is_skipped_reported_once_and_removable(
    store_url: str,
    cli: Callable[..., tuple[int, str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    write_by_hand(store_url, [*BAD_ROWS, ("", TENANT)])
    settings = settings_for(store_url, cors_origin_poll=3600)
    with TestClient(service(settings)) as client:
        assert allowed(client, TENANT)
        for origin in (EVIL, "https://anything.co.uk", "null", "https://ok.example.com"):
            assert not allowed(client, origin), origin
        assert client.post("/items", headers={"Origin": EVIL, **CROSS_SITE}).status_code == 403
        # Two reloads more: the bad rows are not reported again.
        other = RuntimeOrigins(settings)
        other.add(OTHER_TENANT)
        wait_until(lambda: allowed(client, OTHER_TENANT), "a reload")
        other.remove(OTHER_TENANT)
        wait_until(lambda: not allowed(client, OTHER_TENANT), "a second reload")
        assert not allowed(client, EVIL)
    removals = []  # each report's own command, as an owner would paste it
    for policy, origin in BAD_ROWS:
        reports = records(caplog, STORE_LOGGER, f"skipped run-time origin {origin!r}")
        assert len(reports) == 1, (origin, reports)
        assert f"of the {policy or 'default'} policy" in reports[0]
        _, hint = reports[0].split("it is not applied. Remove it with: ")
        removals.append(shlex.split(hint))

    production = ("--env", "production")
    status, out, _ = cli(store_url, "origins", "list", *production)
    assert status == 0
    assert out.count("SKIPPED, never applied") == len(BAD_ROWS)
    for _, origin in BAD_ROWS:
        assert f"  {origin}  (" in out
    status, out, _ = cli(store_url, "origins", "list", "--json", *production)
    skipped = {row["origin"]: row["skipped"] for row in json.loads(out)}
    assert skipped.pop(TENANT) is None
    assert skipped["https://*.com"].startswith("'https://*.com' is broader than a registrable")
    assert all(skipped.values())

    for (_, origin), command in zip(BAD_ROWS, removals, strict=True):
        assert command[:5] == ["corsguard", "origins", "remove", *production], command
        assert command[-1] == origin, command
        status, out, err = cli(store_url, *command[1:])
        assert status == 0, (command, err)
    assert stored(store_url) == [("", TENANT)]


def test_an_empty_entry_is_refused_in_words_for_the_command_line(store_url: str) -> None:
    for value in ("", "  "):
        with pytest.raises(OriginError, match="an empty origin: give one, as in https://"):
            RuntimeOrigins(settings_for(store_url)).add(value)


def test_a_bad_row_written_while_running_never_widens_the_policy(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    poll = 1 if store_url.startswith("sqlite") else 3600
    settings = settings_for(store_url, cors_origin_poll=poll)
    with TestClient(service(settings)) as client:
        write_by_hand(store_url, [("", "https://*.com"), ("", TENANT)])
        wait_until(lambda: allowed(client, TENANT), "the good row of the same change")
        assert not allowed(client, EVIL)
    assert len(records(caplog, STORE_LOGGER, "skipped run-time origin 'https://*.com'")) == 1


# -- 5. Faults --------------------------------------------------------------------------


@pytest.fixture(params=["postgresql-closed-port", "sqlite-missing-directory"])
def unreachable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param.startswith("postgresql"):
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port()}/postgres"
    return f"sqlite:///{tmp_path / 'missing' / 'origins.db'}"


def test_unreachable_store_at_start_up_serves_the_configured_profile(
    unreachable_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(unreachable_url, cors_origin_store_required=False)
    app = service(settings)
    runtime = app.state.cors_origins
    assert isinstance(runtime, RuntimeOrigins)
    line = startup_line(settings, runtime)
    assert f"run-time origins NONE: store {runtime.store.name} unreachable" in line
    [error] = [record for record in caplog.records if record.name == STARTUP_LOGGER]
    assert error.levelno == logging.ERROR
    assert runtime.store.name in error.getMessage()
    assert "serving the configured profile WITHOUT run-time origins" in error.getMessage()
    assert "CORS_ORIGIN_STORE_REQUIRED=true" in error.getMessage()
    with TestClient(app) as client:
        assert allowed(client, CONFIGURED)
        assert not allowed(client, TENANT)
        if unreachable_url.startswith("sqlite"):
            # The store comes into being: the watcher, retrying, picks it up.
            SQLiteStore(unreachable_url).path.parent.mkdir()
            RuntimeOrigins(settings).add(TENANT)
            wait_until(lambda: allowed(client, TENANT), "the store once it exists", 6.0)
            assert f"run-time origins 1 from {runtime.store.name}" in startup_line(
                settings, runtime
            )
            [back] = records(caplog, STORE_LOGGER, "; 1 run-time origin in force")
            assert f"origin store {runtime.store.name} reachable" in back
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)
    assert PASSWORD not in line


def test_unreachable_store_required_refuses_to_start(unreachable_url: str) -> None:
    settings = settings_for(unreachable_url, cors_origin_store_required=True)
    with pytest.raises(ConfigError) as refused:
        create_app(settings)
    message = str(refused.value)
    assert OriginStore.open(unreachable_url).name in message
    assert "CORS_ORIGIN_STORE_REQUIRED=true" in message
    assert "fix CORS_ORIGIN_STORE" in message
    assert PASSWORD not in message


def test_a_required_store_unreachable_exits_3(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'origins.db'}"
    environment = {
        "PATH": "",
        "ENVIRONMENT": "production",
        "CORS_ORIGIN_STORE": url,
        "CORS_ORIGIN_STORE_REQUIRED": "true",
    }
    # Fixed arguments: this interpreter and the service's own package name.
    result = subprocess.run(
        [sys.executable, "-c", "import tests.sample.main"],
        cwd=Path(__file__).parent.parent,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr
    assert url in result.stderr
    assert "CORS_ORIGIN_STORE_REQUIRED=true" in result.stderr


def test_store_lost_while_running_keeps_the_last_set_and_catches_up(
    postgres: PostgresServer,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    cli: Callable[..., tuple[int, str, str]],
) -> None:
    # One report a second instead of a minute, so that the test sees the second one.
    monkeypatch.setattr(corsguard.store, "REPORT_INTERVAL", 1.0)
    settings = settings_for(postgres_url, cors_origin_poll=3600)
    RuntimeOrigins(settings).add(TENANT)

    def lost() -> list[str]:
        return records(caplog, STORE_LOGGER, "unreachable")

    with TestClient(service(settings)) as client:
        assert allowed(client, TENANT)
        with psycopg.connect(postgres_url, autocommit=True) as db:
            # The test server commits asynchronously; its immediate stop would lose the row.
            db.execute("CHECKPOINT")
        postgres.stop()
        try:
            wait_until(lambda: len(lost()) == 1, "the loss reported")
            [first] = [record for record in caplog.records if record.name == STORE_LOGGER]
            for _ in range(200):
                before = time.monotonic()
                response = client.get("/health", headers={"Origin": TENANT})
                assert response.status_code == 200
                assert response.headers["access-control-allow-origin"] == TENANT
                assert time.monotonic() - before < 0.2
            # One report per interval (1 s here), however many requests.
            assert len(lost()) <= 1 + int(time.time() - first.created), lost()
            assert "keeping the last 1 run-time origin, reconnecting" in lost()[0]
            wait_until(lambda: len(lost()) >= 2, "the loss reported again after the interval")
            assert allowed(client, TENANT)
            assert not allowed(client, OTHER_TENANT)
            # Meanwhile a change cannot be made, and says why.
            status, out, err = cli(
                postgres_url, "origins", "add", OTHER_TENANT, "--env", "production"
            )
            assert (status, out) == (2, "")
            assert f"the origin store {postgres_url} failed: connection failed" in err
        finally:
            postgres.start()  # the same port and data
        RuntimeOrigins(settings).add(OTHER_TENANT)  # before or after the watcher is back
        wait_until(lambda: allowed(client, OTHER_TENANT), "the change after restart", 6.0)
        assert allowed(client, TENANT)
    assert records(caplog, STORE_LOGGER, "reachable again; 2 run-time origins in force")


# -- 6. The Python API, through an owner's admin route ------------------------------------


class NewOrigin(BaseModel):
    origin: str


def test_an_admin_route_adds_through_the_python_api(
    store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(store_url, cors_origin_poll=3600)
    app = service(settings)

    @app.post("/admin/origins", status_code=201)
    def add_origin(body: NewOrigin, request: Request) -> dict[str, str]:
        user = request.headers.get("X-User", "")
        try:
            entry = request.app.state.cors_origins.add(body.origin, by=user)
        except OriginError as error:
            raise HTTPException(status_code=422, detail=str(error)) from None
        return {"origin": entry}

    with TestClient(app) as client:
        response = client.post(
            "/admin/origins", json={"origin": "https://*.co.uk"}, headers={"X-User": "alice"}
        )
        assert response.status_code == 422
        with pytest.raises(OriginError) as refused:
            RuntimeOrigins(settings).add("https://*.co.uk")
        assert response.json()["detail"] == str(refused.value)

        response = client.post(
            "/admin/origins",
            json={"origin": "HTTPS://Tenant.Example.com"},
            headers={"X-User": "alice"},
        )
        assert (response.status_code, response.json()) == (201, {"origin": TENANT})
        wait_until(lambda: allowed(client, TENANT), "the origin added by the admin route")
    [change] = records(caplog, CHANGES_LOGGER, TENANT)
    assert f"added run-time origin {TENANT!r} to the default policy by alice" in change
    assert records(caplog, CHANGES_LOGGER, "*.co.uk") == []


# -- 7. show, explain and the start-up line -----------------------------------------------


def test_show_explain_and_the_start_up_line_know_run_time_origins(
    store_url: str, cli: Callable[..., tuple[int, str, str]]
) -> None:
    settings = settings_for(store_url)
    RuntimeOrigins(settings).add(TENANT)
    write_by_hand(store_url, [("", "https://*.com"), ("", "null")])

    status, out, _ = cli(store_url, "show")
    assert status == 0
    production = out[out.index("production:") :].splitlines()
    assert f"  CORS_ALLOW_ORIGINS (run-time)  {TENANT}" in production
    [store] = [line for line in production if line.startswith("  CORS_ORIGIN_STORE ")]
    assert store.endswith("(1 run-time origin in force, 2 rows skipped: corsguard origins list)")

    status, out, _ = cli(store_url, "explain", "--env", "production", "--origin", TENANT)
    assert status == 0
    assert f"run-time entry {TENANT!r}" in out
    # Origins only the bad rows would allow.
    for origin in (EVIL, "null"):
        status, out, _ = cli(store_url, "explain", "--env", "production", "--origin", origin)
        assert status == 1, origin
        assert "REFUSED:" in out

    app = service(settings)
    line = startup_line(settings, app.state.cors_origins)
    name = OriginStore.open(store_url).name
    assert f"run-time origins 1 from {name} (2 bad rows skipped)" in line


class ToApp(httpx.BaseTransport):
    """Where a deployment would be: each request of ``corsguard check`` goes to a running
    app (its lifespan started, so its watcher follows the store)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        headers = {name: value for name, value in request.headers.items() if name != "host"}
        answer = self.client.request(request.method, request.url.path, headers=headers)
        return httpx.Response(answer.status_code, headers=answer.headers.multi_items())


def test_check_probes_run_time_origins_and_names_a_deployment_without_them(
    store_url: str,
) -> None:
    settings = settings_for(store_url)
    RuntimeOrigins(settings).add(TENANT)
    with TestClient(service(settings)) as client:
        report = check(settings, "http://api.example.test", timeout=2, transport=ToApp(client))
    assert report.agrees, report.lines()
    assert {row.policy for row in report.checked if row.origin == TENANT} == {"allowed"}

    # A deployment that does not read the store (CORS_ORIGIN_STORE unset there) refuses
    # the tenant that the store allows: check names that origin.
    stale = service(settings_for(store_url).model_copy(update={"cors_origin_store": None}))
    with TestClient(stale) as client:
        report = check(settings, "http://api.example.test", timeout=2, transport=ToApp(client))
    assert {finding.fault for finding in report.findings} == {"policy-differs"}, report.lines()
    assert all(TENANT in finding.request for finding in report.findings), report.lines()


# -- 8. The schema ----------------------------------------------------------------------


def test_migrate_twice_changes_nothing(store_url: str) -> None:
    store = OriginStore.open(store_url)
    store.migrate()
    store.add(TENANT, None, "alice")
    store.migrate()
    assert [(row.origin, row.added_by) for row in store.rows()] == [(TENANT, "alice")]
    if store_url.startswith("sqlite"):
        with closing(sqlite3.connect(SQLiteStore(store_url).path)) as db:
            versions = db.execute("SELECT version FROM corsguard_schema").fetchall()
    else:
        with psycopg.connect(store_url) as db:
            versions = db.execute("SELECT version FROM corsguard_schema").fetchall()
            triggers = db.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname = 'corsguard_origins_changed'"
            ).fetchone()
            assert triggers == (1,)
    assert versions == [(corsguard.store.SCHEMA_VERSION,)]


@pytest.fixture
def fresh_database(postgres: PostgresServer) -> Iterator[str]:
    """A database of its own, never migrated."""
    name = f"corsguard_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url, autocommit=True) as db:
        db.execute(f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(postgres.url, autocommit=True) as db:
        db.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_processes_migrating_a_new_store_at_once_both_succeed(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'origins.db'}"
    else:
        url = request.getfixturevalue("fresh_database")
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def migrate() -> None:
        store = OriginStore.open(url)
        start.wait()
        try:
            store.migrate()
        except Exception as error:  # whatever either one raises fails the test
            failures.append(error)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    store = OriginStore.open(url)
    store.add(TENANT, None, None)
    assert [row.origin for row in store.rows()] == [TENANT]


# -- 9. Shutdown ------------------------------------------------------------------------


class OneFeedStore(OriginStore):
    """A store of no rows whose one feed waits as ``waiting`` says; it records whether
    the feed was closed."""

    url = "sqlite:///unused.db"

    def __init__(self, waiting: str) -> None:
        self.waiting = waiting
        self.closed = False
        self.in_wait: asyncio.Event | None = None
        self.change: asyncio.Event | None = None

    def migrate(self) -> None:
        pass

    def listen(self) -> AbstractAsyncContextManager[Any]:
        return self._listen()

    @asynccontextmanager
    async def _listen(self) -> AsyncIterator[Any]:
        try:
            yield OneFeed(self)
        finally:
            self.closed = True


class OneFeed:
    def __init__(self, store: OneFeedStore) -> None:
        self.store = store

    async def rows(self) -> list[Any]:
        return []

    async def wait(self, timeout: float) -> None:
        store = self.store
        assert store.in_wait is not None
        assert store.change is not None
        store.in_wait.set()
        if store.waiting == "asyncio.wait_for":
            # As psycopg before 3.3 waits on its socket. On Python 3.10 and 3.11 a change
            # arriving in the same turn of the loop as the cancellation makes wait_for
            # return instead of raising.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(store.change.wait(), timeout)
            store.change.clear()  # read
        else:
            try:  # a wait that loses the first cancellation, on every Python
                await asyncio.sleep(timeout)
            except asyncio.CancelledError:
                store.waiting = "asyncio.wait_for"


@pytest.mark.parametrize("waiting", ["asyncio.wait_for", "swallowing once"])
def test_stop_ends_the_watcher_even_when_its_wait_loses_the_cancellation(
    waiting: str, tmp_path: Path
) -> None:
    store = OneFeedStore(waiting)
    runtime = RuntimeOrigins(settings_for(f"sqlite:///{tmp_path / 'o.db'}"), store=store)

    async def shut_down_as_a_change_arrives() -> bool:
        store.in_wait, store.change = asyncio.Event(), asyncio.Event()
        runtime.start()
        await asyncio.wait_for(store.in_wait.wait(), 5)
        store.change.set()  # the change and the cancellation, in one turn of the loop
        stopping = asyncio.ensure_future(runtime.stop())
        await asyncio.wait({stopping}, timeout=5)
        return stopping.done()

    assert asyncio.run(shut_down_as_a_change_arrives()), "stop() had not returned in 5 s"
    assert store.closed


def test_shutting_down_as_a_change_is_pushed_ends_promptly(store_url: str) -> None:
    # The app's shutdown and a push from another process, at once, a few times over:
    # each shutdown ends within seconds, whichever lands first.
    settings = settings_for(store_url, cors_origin_poll=3600)
    other = RuntimeOrigins(settings)
    for round in range(5):
        origin = f"https://tenant{round}.example.com"
        app = service(settings)

        def serve_and_shut_down() -> None:
            with TestClient(app) as client:  # noqa: B023 (each round's own app)
                assert allowed(client, CONFIGURED)
                other.add(origin)  # noqa: B023

        finished = threading.Thread(target=serve_and_shut_down, daemon=True)
        finished.start()
        finished.join(20)
        assert not finished.is_alive(), f"round {round}: the shutdown did not end in 20 s"
    assert len(other.list()) == 5


def test_stopping_while_the_sqlite_feed_opens_closes_what_it_opens(tmp_path: Path) -> None:
    # The feed is opened in a thread, which a cancellation does not stop: what it opens
    # after the watcher has gone (its connection, its socket, its row of listeners) is
    # closed and removed all the same.
    url = f"sqlite:///{tmp_path / 'o.db'}"
    store = SQLiteStore(url)
    store.migrate()
    connecting, release = threading.Event(), threading.Event()
    opened: list[sqlite3.Connection] = []
    connect = store.connect

    def slow_connect() -> sqlite3.Connection:
        db = connect()
        if not opened:  # the feed's: the first the watcher makes
            opened.append(db)
            connecting.set()
            release.wait(10)
        return db

    store.connect = slow_connect  # type: ignore[method-assign]
    runtime = RuntimeOrigins(settings_for(url), store=store)

    async def stop_while_opening() -> None:
        runtime.start()
        assert await asyncio.to_thread(connecting.wait, 5), "the feed never connected"
        await asyncio.wait_for(runtime.stop(), 5)
        release.set()  # the thread goes on opening the feed the watcher gave up

    asyncio.run(stop_while_opening())  # which waits for the thread to end
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")
    with closing(connect()) as db:
        assert db.execute("SELECT count(*) FROM corsguard_listeners").fetchone()[0] == 0
