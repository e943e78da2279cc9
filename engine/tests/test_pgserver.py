"""The throw-away PostgreSQL server of the ``postgres`` fixture (tests/pgserver.py), and
what the origin store asks of psycopg on it: LISTEN/NOTIFY between two connections read
with ``AsyncConnection.notifies(timeout=..., stop_after=...)``, a notification that
arrives while the listening connection runs a query, and a restart that breaks the old
connections while new ones work."""

from __future__ import annotations

import asyncio
import glob
import time
from pathlib import Path

import psycopg
import pytest

from . import pgserver
from .pgserver import PostgresServer

CHANNEL = "corsguard_pgserver_test"


def test_the_server_is_its_own_cluster_and_accepts_psycopg(postgres: PostgresServer) -> None:
    assert postgres.url == f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"
    assert postgres.port != 5432  # never the system cluster Debian's package starts
    with psycopg.connect(postgres.url, autocommit=True) as db:
        row = db.execute("SELECT current_user, current_setting('data_directory')").fetchone()
        assert row is not None
        user, data = row
        assert user == "postgres"
        assert Path(data).resolve() == postgres.data.resolve()
        db.execute("CREATE TABLE IF NOT EXISTS pgserver_probe (n integer)")
        db.execute("TRUNCATE pgserver_probe")
        db.execute("INSERT INTO pgserver_probe VALUES (1), (2)")
    assert postgres.psql("SELECT n FROM pgserver_probe ORDER BY n") == "1\n2\n"
    with pytest.raises(RuntimeError, match="psql failed"):
        postgres.psql("SELECT * FROM no_such_table")


def test_a_missing_installation_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(glob, "glob", lambda pattern: [])
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(RuntimeError, match="apt-get install postgresql"):
        pgserver.binaries()


async def listener(url: str) -> psycopg.AsyncConnection[tuple[object, ...]]:
    connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await connection.execute(f"LISTEN {CHANNEL}")
    return connection


async def received(
    connection: psycopg.AsyncConnection[tuple[object, ...]], timeout: float
) -> list[psycopg.Notify]:
    return [n async for n in connection.notifies(timeout=timeout, stop_after=1)]


def test_listen_notify_between_two_connections(postgres: PostgresServer) -> None:
    async def exchange() -> None:
        async with await listener(postgres.url) as listening:
            # Nothing sent: notifies() returns at its timeout, empty.
            started = time.monotonic()
            assert await received(listening, timeout=0.2) == []
            assert 0.15 < time.monotonic() - started < 2
            async with await psycopg.AsyncConnection.connect(
                postgres.url, autocommit=True
            ) as notifying:
                await notifying.execute(f"NOTIFY {CHANNEL}, 'https://app.example.com'")
                pid = notifying.info.backend_pid
            started = time.monotonic()
            [notification] = await received(listening, timeout=5)
            assert time.monotonic() - started < 2  # delivered, not the timeout
            assert notification.channel == CHANNEL
            assert notification.payload == "https://app.example.com"
            assert notification.pid == pid

    asyncio.run(exchange())


def test_a_notification_during_a_query_is_not_lost(postgres: PostgresServer) -> None:
    """The store re-reads its table on the listening connection between two waits; a
    change committed meanwhile must still wake the next wait (psycopg >= 3.2.4: before,
    a notification read during a query went to the notify handlers only, and was lost)."""

    async def exchange() -> None:
        async with await listener(postgres.url) as listening:
            with psycopg.connect(postgres.url, autocommit=True) as notifying:
                notifying.execute(f"NOTIFY {CHANNEL}, 'during'")
            # The server sends the notification before this query's ReadyForQuery at
            # the latest, so psycopg reads it while fetching the result.
            cursor = await listening.execute("SELECT 1")
            assert await cursor.fetchone() == (1,)
            payloads = [n.payload for n in await received(listening, timeout=2)]
            assert payloads == ["during"]

    asyncio.run(exchange())


def test_restart_breaks_old_connections_and_keeps_port_and_data(
    postgres: PostgresServer,
) -> None:
    url = postgres.url
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("CREATE TABLE IF NOT EXISTS pgserver_restart (n integer)")
        db.execute("TRUNCATE pgserver_restart")
    old = psycopg.connect(url, autocommit=True)
    try:
        with psycopg.connect(url) as db:  # committed just before an immediate stop
            db.execute("INSERT INTO pgserver_restart VALUES (7)")
        started = time.monotonic()
        postgres.restart()
        print(f"restart (immediate stop, start) took {time.monotonic() - started:.2f} s")
        assert postgres.url == url
        assert postgres.running()
        with psycopg.connect(url, autocommit=True) as db:
            assert db.execute("SELECT n FROM pgserver_restart").fetchall() == [(7,)]
        with pytest.raises(psycopg.OperationalError):
            old.execute("SELECT 1")
        assert old.broken
    finally:
        old.close()
