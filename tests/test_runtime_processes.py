"""Run-time origins across real processes, as a deployment runs them.

Two uvicorn processes with ``--workers 2`` each serve the engine's sample app
(``engine/tests/sample``, production profile) on 127.0.0.1 from one store: a SQLite file
they share, or a PostgreSQL cluster the test starts from the Debian package. A change
made with ``corsguard origins`` (a command, as an owner types it) reaches every worker,
each known by the pid its ``GET /pid`` returns; a row written by hand that the rules
refuse is skipped by every worker and reported naming it; and a PostgreSQL outage costs
no request: every worker keeps its last set, then catches up when the store is back.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow

ENGINE = ROOT / "engine"
TENANT = "https://tenant-a.example.net"
# Every worker must answer a change within this, from the command returning.
BOUND = 5.0
# After the store restarts: within the watcher's backoff (0.25 s doubling to 4 s).
BACKOFF_BOUND = 6.0
# While PostgreSQL is down: requests through the workers, and their p99 bound.
OUTAGE_REQUESTS = 200
OUTAGE_P99 = 0.5


def load(name: str, path: Path) -> ModuleType:
    """A module by its file: the engine's tests and this suite both call their package
    ``tests``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# The process machinery the benchmark also drives: uvicorn fleets, probes by pid, the
# corsguard command, and the engine's throw-away PostgreSQL server.
runtime = load("bench_runtime", ROOT / "bench" / "runtime.py")
Fleet = runtime.Fleet


def corsguard(*args: str, store: str) -> Any:
    try:
        return runtime.corsguard(*args, store=store)
    except runtime.Broken as error:
        pytest.fail(str(error))


def until(fleet: Any, origin: str, allowed: bool, since: float, bound: float) -> float:
    try:
        return float(fleet.until(origin, allowed, since, bound))
    except runtime.Broken as error:
        pytest.fail(str(error))


def every_worker_refuses(fleet: Any, origin: str) -> None:
    answers = fleet.everywhere(origin)
    assert set(answers) == fleet.pids
    allowing = {pid: answer.allow for pid, answer in answers.items() if answer.allow is not None}
    assert not allowing, f"workers allowed {origin}: {allowing}"


@pytest.fixture
def fleet_of(tmp_path: Path) -> Iterator[Any]:
    """Start two processes of two workers on a store; stopped at the end."""
    started: list[Any] = []

    def start(store: str, name: str = "server") -> Any:
        fleet = Fleet(tmp_path / name, store, name=name)
        started.append(fleet)
        try:
            fleet.start()
        except runtime.Broken as error:
            pytest.fail(str(error))
        assert len(fleet.servers) == 2 and len(fleet.pids) == 4, fleet.pids
        # Four workers opening a new store at once: each read it at start-up.
        assert runtime.NO_STORE_AT_START not in fleet.stderr(), fleet.stderr()
        assert fleet.lines("run-time origins 0 from") == dict.fromkeys(fleet.pids, 1)
        return fleet

    yield start
    for fleet in started:
        fleet.stop()


@pytest.fixture
def postgres() -> Iterator[Any]:
    """A PostgreSQL cluster of this test's own on 127.0.0.1 (``engine/tests/pgserver.py``);
    its ``stop()`` is immediate, as a crash would be for the workers."""
    problem = runtime.missing()
    assert problem is None, problem
    with runtime.postgres_cluster() as cluster:
        yield cluster


def change_everywhere(fleet: Any, origin: str) -> None:
    """Add ``origin`` with the command, see every worker allow it; remove it, see every
    worker refuse it; each change logged once, by the command."""
    every_worker_refuses(fleet, origin)
    added = corsguard("origins", "add", origin, "--by", "alice", store=fleet.store)
    seconds = until(fleet, origin, True, time.monotonic(), BOUND)
    assert f"{origin} is a run-time origin of the default policy" in added.stdout
    assert f"added run-time origin {origin!r} to the default policy by alice" in added.stderr
    removed = corsguard("origins", "remove", origin, "--by", "alice", store=fleet.store)
    gone = until(fleet, origin, False, time.monotonic(), BOUND)
    assert f"removed run-time origin {origin!r} from the default policy by alice" in (
        removed.stderr
    )
    # Logged by the process that made the change, not once more by each worker.
    assert "added run-time origin" not in fleet.stderr()
    assert "removed run-time origin" not in fleet.stderr()
    print(f"{fleet.store}: added in every worker after {seconds:.3f} s, removed after {gone:.3f} s")


def bad_row_skipped_everywhere(fleet: Any, write: Any) -> None:
    """``write(sql)`` puts a pattern for a whole public suffix and a good origin into the
    table by hand, in one statement; once every worker allows the good one it has read
    both, and none allows what the bad one would."""
    good = "https://tenant-b.example.net"
    write(
        "INSERT INTO corsguard_origins (policy, origin, added_by) VALUES "
        f"('', '{runtime.BAD_ROW}', 'by hand'), ('', '{good}', 'by hand')"
    )
    until(fleet, good, True, time.monotonic(), BOUND)
    every_worker_refuses(fleet, runtime.REFUSED)
    report = f"skipped run-time origin {runtime.BAD_ROW!r} of the default policy"
    try:
        lines = fleet.wait_for_lines(report, BOUND)
    except runtime.Broken as error:
        pytest.fail(str(error))
    assert dict(lines) == dict.fromkeys(fleet.pids, 1), lines  # each worker, once
    line = fleet.first_line(report)
    assert "ERROR" in line and "corsguard.store" in line, line
    # The command that removes it, whole: the profile the processes serve, the row quoted.
    assert line.endswith(f"corsguard origins remove --env production {runtime.BAD_ROW!r}"), line


def test_sqlite_store_reaches_every_worker_of_two_processes(tmp_path: Path, fleet_of: Any) -> None:
    database = tmp_path / "origins.db"
    fleet = fleet_of(f"sqlite:///{database}")
    change_everywhere(fleet, TENANT)

    def write(sql: str) -> None:
        db = sqlite3.connect(database)
        with db:
            db.execute(sql)
        db.close()
        # A row written by hand is not pushed; any change made through corsguard (or
        # the poll, CORS_ORIGIN_POLL) makes every worker read the file again.
        corsguard("origins", "add", "https://tenant-c.example.net", store=fleet.store)

    bad_row_skipped_everywhere(fleet, write)


def test_postgresql_store_reaches_every_worker_and_outlives_an_outage(
    fleet_of: Any, postgres: Any
) -> None:
    fleet = fleet_of(postgres.url)
    change_everywhere(fleet, TENANT)
    # Written with psql; the table's trigger pushes a row written by hand too.
    bad_row_skipped_everywhere(fleet, postgres.psql)

    known = "https://known.example.net"
    corsguard("origins", "add", known, store=fleet.store)
    until(fleet, known, True, time.monotonic(), BOUND)

    postgres.stop()
    lost = fleet.wait_for_lines(runtime.LOST, BOUND)
    answers = [
        fleet.answer(number, (runtime.CONFIGURED, known)[number % 2])
        for number in range(OUTAGE_REQUESTS)
    ]
    refused = [answer for answer in answers if not answer.allowed]
    assert not refused, f"{len(refused)} requests lost their CORS header: {refused[:3]}"
    assert {answer.status for answer in answers} == {200}
    assert {answer.pid for answer in answers} == fleet.pids  # every worker answered
    p99 = runtime.percentile([answer.seconds for answer in answers], 0.99)
    print(f"store stopped: p99 of {OUTAGE_REQUESTS} requests {p99 * 1e3:.2f} ms")
    assert p99 < OUTAGE_P99, f"p99 {p99:.3f} s while the store is down"
    # Reported once per worker, not once per request.
    assert fleet.lines(runtime.LOST) == lost == dict.fromkeys(fleet.pids, 1), lost
    assert "keeping the last 2 run-time origins" in fleet.first_line(runtime.LOST)

    postgres.start()
    # Made as soon as the store is back, while workers may still wait out their backoff:
    # each reloads everything when it reconnects.
    later = "https://later.example.net"
    corsguard("origins", "add", later, store=fleet.store)
    seconds = until(fleet, later, True, time.monotonic(), BACKOFF_BOUND)
    print(f"store back: a change made then in every worker after {seconds:.3f} s")
    back = fleet.wait_for_lines(runtime.BACK, BOUND)
    assert dict(back) == dict.fromkeys(fleet.pids, 1), back
    corsguard("origins", "remove", known, store=fleet.store)
    until(fleet, known, False, time.monotonic(), BOUND)
