"""e) Run-time origins: what they cost per request, how fast a change reaches every worker,
and what requests meet while the store is down. Measured on the engine's sample app
(``engine/tests/sample``) in this repository's environment, beside nothing generated.

``bench/run.py`` calls :func:`section`; the servers and the store are real:

- the cost per request of the layer that ``add_cors`` installs, driven straight into it
  (as section b does), with 1, 1,000 and 100,000 origins given at run time (read from a
  SQLite store filled in one transaction) against the same origins configured;
- two uvicorn processes of two workers each on 127.0.0.1, for each store (a SQLite file
  they share, a PostgreSQL cluster started from the Debian package): the time from
  ``corsguard origins add`` (and ``remove``) returning until every worker answers
  accordingly;
- the same bounded load of sequential requests while the PostgreSQL store is up, stopped
  and restarting, and what each fault looks like to a browser and in the logs.

The in-process measurement runs in a fresh process of its own:

    python bench/runtime.py asgi ROUNDS BATCH_SECONDS SIZES DIRECTORY

The process machinery (:class:`Fleet`, :func:`postgres_cluster`, :func:`corsguard`) is
also what ``tests/test_runtime_processes.py`` drives.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import math
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
ENGINE = ROOT / "engine"
SETTINGS = "tests.sample:Settings"  # the engine's sample app, importable from ENGINE
CONFIGURED = "https://app.example.com"  # an origin of the sample's production profile
REFUSED = "https://evil.com"  # allowed by no profile; a pattern https://*.com would allow it
BAD_ROW = "https://*.com"  # broader than a registrable domain: refused when added
PGSERVER = ENGINE / "tests" / "pgserver.py"
# The app the servers run: the sample app with a route that names the worker answering.
APP_MODULE = "corsguard_workers"
APP_SOURCE = '''"""The engine's sample app with GET /pid (which worker answered), for the run-time
origin tests and benchmark. The corsguard records carry the worker's pid, so that each
line of a server's stderr names the worker that wrote it."""

import logging
import os

from corsguard import app_or_exit
from tests.sample import create_app

_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("%(levelname)s: [%(process)d] %(name)s: %(message)s"))
logging.getLogger("corsguard").addHandler(_handler)


def build():
    app = create_app()

    @app.get("/pid")
    async def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    return app


app = app_or_exit(build)
'''
# Lines the servers log (corsguard.store, corsguard.startup), as tests and tables find them.
LOST = "unreachable ("  # the store lost while serving: "... unreachable (why); keeping ..."
BACK = "reachable again"
SKIPPED = "skipped run-time origin"
NO_STORE_AT_START = "serving the configured profile WITHOUT run-time origins"
STARTED = "Application startup complete."


class Broken(Exception):
    """A server, the store or a command did not do what the measurement needs; the
    message says what was seen."""


# --- Requests ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Answer:
    """One response to ``GET /pid`` with an ``Origin``, on a fresh connection."""

    port: int
    origin: str
    pid: int | None
    status: int
    allow: str | None  # Access-Control-Allow-Origin
    seconds: float  # from connecting to the last byte of the body
    at: float  # time.monotonic() when it arrived

    @property
    def allowed(self) -> bool:
        return self.allow == self.origin


def ask(port: int, origin: str, timeout: float = 5.0) -> Answer:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/pid", headers={"Origin": origin, "Connection": "close"})
        response = connection.getresponse()
        body = response.read()
        status, allow = response.status, response.getheader("access-control-allow-origin")
    finally:
        connection.close()
    seconds = time.perf_counter() - started
    pid = None
    if status == 200:
        with suppress(ValueError, AttributeError):
            pid = int(json.loads(body)["pid"])
    return Answer(port, origin, pid, status, allow, seconds, time.monotonic())


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest rank: of 30 values the 99th percentile is the largest, of 300 the 3rd."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# --- Processes --------------------------------------------------------------------------


def clean_environment(**extra: str) -> dict[str, str]:
    """The caller's environment without what would steer the servers or the command."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VIRTUAL_ENV", "UV_PROJECT", "PYTEST_", "BENCH_", "CORSGUARD_"))
        and key not in ("ENVIRONMENT", "PYTHONPATH")
        and "CORS_" not in key.upper()
    }
    environment.update(extra)
    return environment


def service_environment(store: str, **extra: str) -> dict[str, str]:
    """What the sample app and ``corsguard`` read: production, and the store."""
    return clean_environment(
        CORSGUARD_SETTINGS=SETTINGS,
        ENVIRONMENT="production",
        CORS_ORIGIN_STORE=store,
        **extra,
    )


def corsguard_process(*args: str, store: str) -> subprocess.Popen[str]:
    """``corsguard ARGS`` as an owner types it, from the sample app's project directory;
    running when this returns."""
    script = Path(sys.executable).with_name("corsguard")
    return subprocess.Popen(
        [str(script) if script.exists() else "corsguard", *args],
        cwd=ENGINE,
        env=service_environment(store, PYTHONPATH=str(ENGINE)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def corsguard(
    *args: str, store: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``corsguard ARGS``, to its end; with ``check``, a non-zero exit is :class:`Broken`."""
    process = corsguard_process(*args, store=store)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise Broken(f"corsguard {' '.join(args)} did not end within {timeout:.0f} s") from None
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise Broken(
            f"corsguard {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout[-2000:]}{result.stderr[-2000:]}"
        )
    return result


@dataclass
class Server:
    """One uvicorn process (a supervisor and its workers) in a process group of its own."""

    port: int
    process: subprocess.Popen[bytes]
    stderr_path: Path
    pids: set[int] = field(default_factory=set)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")


class Fleet:
    """uvicorn processes (two by default) of the sample app with ``workers`` workers each,
    on 127.0.0.1, sharing the store ``store``; every worker is known by its pid."""

    def __init__(
        self,
        work: Path,
        store: str,
        *,
        processes: int = 2,
        workers: int = 2,
        variables: Mapping[str, str] | None = None,
        name: str = "server",
    ) -> None:
        self.work = work
        self.store = store
        self.processes = processes
        self.workers = workers
        self.variables = dict(variables or {})
        self.name = name
        self.servers: list[Server] = []

    def __enter__(self) -> Fleet:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    @property
    def pids(self) -> set[int]:
        return {pid for server in self.servers for pid in server.pids}

    def launch(self, index: int) -> Server:
        """Start one uvicorn process; it may still be starting when this returns."""
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / f"{APP_MODULE}.py").write_text(APP_SOURCE, encoding="utf-8")
        port = free_port()
        command = [sys.executable, "-m", "uvicorn", f"{APP_MODULE}:app"]
        command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        command += ["--workers", str(self.workers)]
        path = os.pathsep.join([str(ENGINE), str(self.work)])
        environment = service_environment(self.store, PYTHONPATH=path, **self.variables)
        stderr_path = self.work / f"{self.name}-{index}.stderr"
        with (
            stderr_path.open("wb") as stderr,
            (self.work / f"{self.name}-{index}.stdout").open("wb") as stdout,
        ):
            process = subprocess.Popen(
                command,
                cwd=ENGINE,
                env=environment,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,  # its own process group: stopped as one
            )
        server = Server(port, process, stderr_path)
        self.servers.append(server)
        return server

    def start(self, bound: float = 60.0) -> None:
        for index in range(self.processes):
            self.launch(index)
        deadline = time.monotonic() + bound
        for server in self.servers:
            while server.stderr().count(STARTED) < self.workers:
                if server.process.poll() is not None:
                    raise Broken(
                        f"uvicorn on port {server.port} exited {server.process.returncode} "
                        f"before its {self.workers} workers served:\n{server.stderr()[-3000:]}"
                    )
                if time.monotonic() > deadline:
                    raise Broken(
                        f"uvicorn on port {server.port}: {self.workers} workers not started "
                        f"within {bound:.0f} s:\n{server.stderr()[-3000:]}"
                    )
                time.sleep(0.05)
            while len(server.pids) < self.workers:
                answer = ask(server.port, CONFIGURED)
                if answer.pid is None:
                    raise Broken(f"port {server.port} answered {answer.status} to GET /pid")
                server.pids.add(answer.pid)
                if time.monotonic() > deadline:
                    raise Broken(
                        f"port {server.port}: only workers {sorted(server.pids)} answered "
                        f"within {bound:.0f} s; {self.workers} were started"
                    )

    def stop(self) -> None:
        for server in self.servers:
            if server.process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(server.process.pid, signal.SIGTERM)
        for server in self.servers:
            # The supervisor waits for its workers before it exits.
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait()

    def stderr(self) -> str:
        return "".join(server.stderr() for server in self.servers)

    def lines(self, text: str) -> Counter[int]:
        """How many corsguard lines containing ``text`` each worker (pid) wrote."""
        found: Counter[int] = Counter()
        for line in self.stderr().splitlines():
            if text in line and ": [" in line:
                with suppress(ValueError):
                    found[int(line.split(": [", 1)[1].split("]", 1)[0])] += 1
        return found

    def first_line(self, text: str) -> str:
        for line in self.stderr().splitlines():
            if text in line:
                return line
        return ""

    def wait_for_lines(self, text: str, bound: float) -> Counter[int]:
        """Until every worker wrote a line containing ``text``."""
        deadline = time.monotonic() + bound
        while True:
            found = self.lines(text)
            if set(found) >= self.pids:
                return found
            if time.monotonic() > deadline:
                missing = sorted(self.pids - set(found))
                raise Broken(
                    f"workers {missing} logged no line with {text!r} within {bound:.1f} s:\n"
                    f"{self.stderr()[-3000:]}"
                )
            time.sleep(0.02)

    def answer(self, index: int, origin: str) -> Answer:
        """A request to the ``index``-th process (in turn), checked to come from a known
        worker with status 200."""
        server = self.servers[index % len(self.servers)]
        try:
            answer = ask(server.port, origin)
        except OSError as error:
            raise Broken(f"port {server.port} did not answer GET /pid: {error}") from None
        if answer.status != 200 or answer.pid is None:
            raise Broken(f"port {server.port} answered {answer.status} from Origin {origin}")
        if answer.pid not in server.pids:
            raise Broken(
                f"port {server.port} answered from pid {answer.pid}, not one of its workers "
                f"{sorted(server.pids)}: a worker was restarted"
            )
        return answer

    def sweep(
        self,
        origin: str,
        accept: Callable[[Answer], bool],
        bound: float = 5.0,
        since: float | None = None,
        seen: Mapping[int, float] | None = None,
    ) -> dict[int, Answer]:
        """Fresh requests to the processes in turn until every worker has given an answer
        that ``accept``s; each worker's first such answer. ``seen``: the times at which
        workers were already seen to accept (they are not waited for again)."""
        started = time.monotonic() if since is None else since
        deadline = time.monotonic() + bound
        found: dict[int, Answer] = {}
        done = dict(seen or {})
        last: dict[int, Answer] = {}
        count = 0
        while set(found) | set(done) < self.pids:
            answer = self.answer(count, origin)
            count += 1
            last[answer.pid or 0] = answer
            if answer.pid not in found and answer.pid not in done and accept(answer):
                found[answer.pid or 0] = answer
            if time.monotonic() > deadline:
                missing = sorted(self.pids - set(found) - set(done))
                raise Broken(
                    f"workers {missing} did not answer as expected for Origin {origin} "
                    f"within {time.monotonic() - started:.1f} s of the change; their last "
                    "answers: "
                    + "; ".join(
                        f"pid {pid}: {last[pid].status}, access-control-allow-origin "
                        f"{last[pid].allow!r}"
                        for pid in missing
                        if pid in last
                    )
                )
        return found

    def until(
        self,
        origin: str,
        allowed: bool,
        since: float,
        bound: float = 5.0,
        seen: Mapping[int, float] | None = None,
    ) -> float:
        """Seconds from ``since`` until every worker of every process answered ``origin``
        as ``allowed`` says (the first answer of the last worker to do so)."""
        found = self.sweep(origin, lambda answer: answer.allowed is allowed, bound, since, seen)
        times = [answer.at for answer in found.values()] + list((seen or {}).values())
        return max(times) - since

    def everywhere(self, origin: str, bound: float = 5.0) -> dict[int, Answer]:
        """One answer from every worker for ``origin``, whatever it is."""
        return self.sweep(origin, lambda answer: True, bound)


# --- PostgreSQL -------------------------------------------------------------------------


def pgserver() -> ModuleType:
    """The engine's throw-away PostgreSQL server (``engine/tests/pgserver.py``), loaded
    by its path: the engine's tests and the template's both call their package ``tests``."""
    name = "corsguard_pgserver"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PGSERVER)
        if spec is None or spec.loader is None:
            raise Broken(f"cannot load {PGSERVER}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def missing() -> str | None:
    """What this section needs and does not find, with the command that installs it."""
    try:
        pgserver().binaries()
    except RuntimeError as error:
        return str(error)
    for module, dependency in (("uvicorn", "uvicorn"), ("psycopg", "psycopg[binary]")):
        try:
            __import__(module)
        except ImportError:
            return (
                f"{module} is not installed in {sys.prefix}; the run-time origin benchmark "
                f"needs it: uv sync (the dev group has {dependency})"
            )
    return None


def postgres_version() -> str:
    result = subprocess.run(
        [str(pgserver().binaries() / "postgres"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "postgres (version unknown)"


def machine(load: float) -> str:
    """The machine, as bench/run.py describes it, when this section runs alone."""
    import platform
    from importlib.metadata import version

    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8", errors="replace")
    memory = next(
        (line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")), "0"
    )
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpuinfo.splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    names = ("corsguard", "fastapi", "starlette", "uvicorn", "psycopg")
    packages = ", ".join(f"{name} {version(name)}" for name in names)
    return "\n".join(
        [
            "### Machine",
            "",
            f"- CPUs (nproc): {os.cpu_count()}; CPU: {cpu}",
            f"- Memory: {int(memory) / 1024 / 1024:.1f} GiB",
            f"- OS: {platform.platform()}; load average at start: {load:.2f}",
            f"- Python {platform.python_version()}; {postgres_version()}",
            f"- Packages: {packages}",
        ]
    )


@contextmanager
def postgres_cluster() -> Iterator[Any]:
    """A PostgreSQL cluster of its own on 127.0.0.1, started; ``stop()`` (immediate, as a
    crash would) and ``start()`` keep its data and port; removed at the end."""
    try:
        server = pgserver().PostgresServer()
    except RuntimeError as error:
        raise Broken(str(error)) from None
    try:
        server.start()
        yield server
    finally:
        server.close()


def execute(url: str, sql: str) -> None:
    """Run ``sql`` against the store as an owner would in psql (autocommit)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


# --- In process: the layer alone ---------------------------------------------------------


def tenants(count: int) -> list[str]:
    return [f"https://tenant{index}.example.com" for index in range(count)]


def fill_sqlite(path: Path, origins: Iterable[str]) -> str:
    """A SQLite store holding ``origins`` for the default policy, written in one
    transaction; returns its URL."""
    from corsguard.store import OriginStore

    url = f"sqlite:///{path}"
    OriginStore.open(url).migrate()
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO corsguard_origins (policy, origin, added_by) VALUES ('', ?, 'bench')",
            [(origin,) for origin in origins],
        )
    return url


def asgi(rounds: int, batch_seconds: float, sizes: Sequence[int], directory: Path) -> Any:
    """µs per request through the layer alone, run-time against static origins, simple
    requests and preflights; the requested origin is the last of the list.

    In every round, each static case and its run-time twin run back to back (in turns
    first), so that a ratio can be taken within the round: ``us`` holds the medians,
    ``ratios`` the medians of the per-round ratios (run-time over static, and run-time at
    the largest size over run-time at the smallest)."""
    import asyncio
    import gc

    import _inner
    from tests.sample import Settings, create_app

    def layer(**fields: Any) -> Any:
        app = create_app(Settings(_env_file=None, environment="production", **fields))
        return app, _inner.layer_of(app)

    configured = list(Settings(_env_file=None, environment="production").cors_allow_origins)
    pairs: list[tuple[Any, Any]] = []  # (static, run-time), for each size and column
    for size in sizes:
        origins = tenants(size)
        url = fill_sqlite(directory / f"origins-{size}.db", origins)
        app, runtime_layer = layer(cors_origin_store=url)
        held = app.state.cors_origins.snapshot.count
        if held != size:
            raise SystemExit(f"the run-time layer holds {held} origins, {size} were stored")
        _, static_layer = layer(cors_allow_origins=[*configured, *origins])
        origin = origins[-1]
        for column, method in (("simple", "GET"), ("preflight", "OPTIONS")):
            scope = _inner.request_scope(method, origin)
            pairs.append(
                (
                    _inner.Case(f"static/{size}", column, static_layer, scope, 200, origin),
                    _inner.Case(f"runtime/{size}", column, runtime_layer, scope, 200, origin),
                )
            )

    async def measure() -> dict[str, Any]:
        cases = [case for pair in pairs for case in pair]
        for case in cases:
            await case.check()
            for _ in range(50):
                await case.batch(1)
            probe = max(await case.batch(20), 1e-7)
            case.per_call = max(20, int(batch_seconds / probe))
        for number in range(rounds):
            for pair in pairs:
                for case in pair if number % 2 == 0 else reversed(pair):
                    gc.collect()
                    case.samples.append(await case.batch(case.per_call))
        us: dict[str, dict[str, float]] = {}
        for case in cases:
            us.setdefault(case.config, {})[case.column] = statistics.median(case.samples) * 1e6

        def paired(mine: Any, base: Any) -> float:
            return statistics.median(a / b for a, b in zip(mine.samples, base.samples, strict=True))

        ratios: dict[str, float] = {}
        for static, runtime in pairs:
            ratios[f"{runtime.config}/{runtime.column}"] = paired(runtime, static)
        by_name = {f"{case.config}/{case.column}": case for case in cases}
        for column in ("simple", "preflight"):
            largest = by_name[f"runtime/{sizes[-1]}/{column}"]
            ratios[f"flat/{column}"] = paired(largest, by_name[f"runtime/{sizes[0]}/{column}"])
        return {"us": us, "ratios": ratios}

    return asyncio.run(measure())


# --- Across processes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How much of each measurement: changes per verb and store, requests per phase."""

    changes: int
    requests: int
    pace: float  # seconds between the starts of two requests of the load
    sizes: tuple[int, ...]


FULL = Plan(changes=30, requests=300, pace=0.02, sizes=(1, 1_000, 100_000))
QUICK = Plan(changes=1, requests=40, pace=0.01, sizes=(1, 100, 1_000))


def propagation(fleet: Fleet, label: str, changes: int) -> dict[str, list[float]]:
    """Seconds from each ``corsguard origins add`` / ``remove`` returning until every
    worker answers accordingly."""
    times: dict[str, list[float]] = {"add": [], "remove": []}
    for number in range(changes):
        origin = f"https://bench{number}.{label}.example.net"
        corsguard("origins", "add", origin, "--by", "bench", store=fleet.store)
        times["add"].append(fleet.until(origin, True, time.monotonic()))
        corsguard("origins", "remove", origin, "--by", "bench", store=fleet.store)
        times["remove"].append(fleet.until(origin, False, time.monotonic()))
    return times


@dataclass
class Load:
    """A phase of sequential requests at a fixed pace, fresh connections, the processes in
    turn, the origins in turn."""

    name: str
    answers: list[Answer] = field(default_factory=list)

    @property
    def seconds(self) -> list[float]:
        return [answer.seconds for answer in self.answers]

    def statuses(self) -> Counter[int]:
        return Counter(answer.status for answer in self.answers)

    def allowed(self, origin: str) -> tuple[int, int]:
        """(allowed, sent) for ``origin``."""
        mine = [answer for answer in self.answers if answer.origin == origin]
        return sum(1 for answer in mine if answer.allowed), len(mine)


def load(fleet: Fleet, name: str, origins: Sequence[str], requests: int, pace: float) -> Load:
    phase = Load(name)
    began = time.monotonic()
    for number in range(requests):
        delay = began + number * pace - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        server = fleet.servers[number % len(fleet.servers)]
        try:
            answer = ask(server.port, origins[number % len(origins)])
        except OSError as error:
            raise Broken(f"{name}: port {server.port} did not answer: {error}") from None
        phase.answers.append(answer)
    return phase


@dataclass
class Observed:
    """What the PostgreSQL fleet did through the outage, and the faults seen."""

    phases: dict[str, Load] = field(default_factory=dict)
    reconnected: float = 0.0  # seconds from the store's start until every worker was back
    caught_up: float = 0.0  # seconds from a row written then until every worker applied it
    back_when_written: int = 0  # workers listening when that row was written
    faults: list[tuple[str, str, str, str]] = field(default_factory=list)


def answered(phase: Load, origins: Mapping[str, str]) -> str:
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(phase.statuses().items()))
    parts = [f"{len(phase.answers)} requests, status {statuses}"]
    for label, origin in origins.items():
        allowed, sent = phase.allowed(origin)
        parts.append(f"{label} `{origin}` allowed in {allowed} of {sent}")
    return "; ".join(parts)


def short(line: str) -> str:
    """A log line as the fault table quotes it: from the logger's name on."""
    line = line.strip()
    for marker in ("corsguard.",):
        if marker in line:
            line = line[line.index(marker) :]
    return line.replace("|", "\\|")


def outage(fleet: Fleet, cluster: Any, plan: Plan) -> Observed:
    """Normal, stopped and restarting phases of the same load on the PostgreSQL fleet; a
    change made while the workers reconnect; a bad row written by hand."""
    observed = Observed()
    known = "https://known.tenants.example.net"
    corsguard("origins", "add", known, "--by", "bench", store=fleet.store)
    fleet.until(known, True, time.monotonic())
    origins = {"configured": CONFIGURED, "last-known run-time": known}
    mix = list(origins.values())
    observed.phases["normal"] = load(fleet, "normal", mix, plan.requests, plan.pace)

    cluster.stop()
    observed.phases["stopped"] = load(fleet, "stopped", mix, plan.requests, plan.pace)
    lost = fleet.wait_for_lines(LOST, 10)
    stopped = observed.phases["stopped"]
    observed.faults.append(
        (
            "PostgreSQL store stopped while serving",
            f"kept the last set; {answered(stopped, origins)}; no 5xx",
            f"each worker once ({', '.join(str(n) for n in sorted(lost.values()))} lines "
            f"for {len(lost)} workers): `{short(fleet.first_line(LOST))}`",
            "configured and last-known run-time origins: 200 with "
            "Access-Control-Allow-Origin (the page reads the response)",
        )
    )

    missed = "https://missed.tenants.example.net"
    restarted: dict[str, float] = {}
    failure: list[BaseException] = []

    def restart() -> None:
        """Start the store, write a row at once (before the workers' backoff lets them
        reconnect, so its notification reaches none that is not back), and note when every
        worker has reconnected; the load runs meanwhile."""
        try:
            cluster.start()
            restarted["started"] = time.monotonic()
            execute(
                cluster.url,
                "INSERT INTO corsguard_origins (policy, origin, added_by) "
                f"VALUES ('', '{missed}', 'bench')",
            )
            restarted["written"] = time.monotonic()
            restarted["back when written"] = len(fleet.lines(BACK))
            while not set(fleet.lines(BACK)) >= fleet.pids:
                if time.monotonic() > restarted["started"] + 15:
                    raise Broken(
                        "not every worker reconnected within 15 s of the store starting "
                        f"again:\n{fleet.stderr()[-3000:]}"
                    )
                time.sleep(0.25)  # few reads of the logs: this process also times the load
            restarted["reconnected"] = time.monotonic()
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=restart)
    thread.start()
    phase = load(fleet, "restarting", [*mix, missed], plan.requests, plan.pace)
    thread.join()
    if failure:
        raise failure[0]
    observed.phases["restarting"] = phase
    observed.reconnected = restarted["reconnected"] - restarted["started"]
    seen: dict[int, float] = {}
    for answer in phase.answers:
        if answer.origin == missed and answer.allowed and answer.pid is not None:
            seen.setdefault(answer.pid, answer.at)
    observed.caught_up = fleet.until(missed, True, restarted["written"], bound=15, seen=seen)
    observed.back_when_written = int(restarted["back when written"])
    back = fleet.lines(BACK)
    observed.faults.append(
        (
            "PostgreSQL store restarted",
            f"every worker reconnected (backoff 0.25 s doubling to 4 s) within "
            f"{observed.reconnected:.2f} s of `pg_ctl start` returning (as the logs show, "
            "read every 0.25 s) and reloaded the whole set: a row written as the store "
            f"came back, when {observed.back_when_written} of {len(fleet.pids)} workers "
            f"listened, was in force in every worker {observed.caught_up:.2f} s later; "
            f"{answered(phase, {**origins, 'written meanwhile': missed})}",
            f"WARNING, once per worker ({len(back)} workers): `{short(fleet.first_line(BACK))}`",
            "configured and last-known run-time origins: 200 with "
            "Access-Control-Allow-Origin throughout; the row written meanwhile: without it "
            "until each worker reconnected, then with it",
        )
    )

    good = "https://good.tenants.example.net"
    execute(
        cluster.url,
        "INSERT INTO corsguard_origins (policy, origin, added_by) VALUES "
        f"('', '{BAD_ROW}', 'by hand'), ('', '{good}', 'by hand')",
    )
    fleet.until(good, True, time.monotonic())
    refused = fleet.everywhere(REFUSED)
    widened = sorted(pid for pid, answer in refused.items() if answer.allow is not None)
    if widened:
        raise Broken(f"workers {widened} allowed {REFUSED} after the row {BAD_ROW!r}")
    skipped = fleet.wait_for_lines(SKIPPED, 5)
    observed.faults.append(
        (
            f"a row `{BAD_ROW}` written by hand into the table",
            f"skipped it in every worker, applied the good row written with it; "
            f"`{REFUSED}` still refused by all {len(refused)} workers",
            f"ERROR, once per worker ({len(skipped)} workers): "
            f"`{short(fleet.first_line(SKIPPED))}`",
            f"`{REFUSED}`: 200 without Access-Control-Allow-Origin (the browser blocks the read)",
        )
    )
    return observed


def startup_faults(work: Path, cluster: Any) -> list[tuple[str, str, str, str]]:
    """The store unreachable when a process starts, with and without
    ``CORS_ORIGIN_STORE_REQUIRED``."""
    faults = []
    known = "https://known.tenants.example.net"  # in the store, which is down
    cluster.stop()
    try:
        with Fleet(
            work / "startup-optional", cluster.url, processes=1, workers=1, name="optional"
        ) as fleet:
            configured = fleet.answer(0, CONFIGURED)
            runtime = fleet.answer(0, known)
            line = fleet.first_line(NO_STORE_AT_START)
            startup = fleet.first_line("run-time origins NONE")
        if not line:
            raise Broken(f"no line with {NO_STORE_AT_START!r} at start-up")
        faults.append(
            (
                "store unreachable at start-up (`CORS_ORIGIN_STORE_REQUIRED=false`, the default)",
                "started and served the configured profile; the watcher keeps retrying",
                f"`{short(line)}`; the start-up line says `"
                + startup[startup.index("run-time origins NONE") :].split(";")[0]
                + "`",
                f"configured origin: {configured.status} "
                f"{'with' if configured.allowed else 'without'} Access-Control-Allow-Origin; "
                f"run-time origin: {runtime.status} "
                f"{'with' if runtime.allowed else 'without'} it until the store is back",
            )
        )
        required = Fleet(
            work / "startup-required",
            cluster.url,
            processes=1,
            workers=1,
            variables={"CORS_ORIGIN_STORE_REQUIRED": "true"},
            name="required",
        )
        server = required.launch(0)
        try:
            status = server.process.wait(timeout=60)
        finally:
            required.stop()
        message = next(
            (line for line in server.stderr().splitlines() if "cannot start" in line), ""
        )
        if status == 0 or not message:
            raise Broken(
                f"with CORS_ORIGIN_STORE_REQUIRED=true and the store down, uvicorn exited "
                f"{status}:\n{server.stderr()[-2000:]}"
            )
        faults.append(
            (
                "store unreachable at start-up, `CORS_ORIGIN_STORE_REQUIRED=true`",
                f"refused to start: uvicorn exited {status}",
                f"`{short(message)}`",
                "nothing listens: the request fails to connect (a network error in the page)",
            )
        )
    finally:
        cluster.start()
    return faults


# --- The section ----------------------------------------------------------------------------


def section(plan: Plan, rounds: int, batch_seconds: float, work: Path) -> Any:
    """Section e of bench/run.py's output; stops the run with what went wrong."""
    try:
        return measured_section(plan, rounds, batch_seconds, work)
    except (Broken, RuntimeError) as error:  # RuntimeError: from the PostgreSQL server
        message = str(error)
        cause = message.splitlines()[0] if message else type(error).__name__
        # The cause again after any logs it quotes, so that a tail of the output shows it.
        tail = f"\n(run-time origins: {cause})" if "\n" in message else ""
        raise SystemExit(f"run-time origins: {message}{tail}") from None


def measured_section(plan: Plan, rounds: int, batch_seconds: float, work: Path) -> Any:
    from importlib.metadata import version

    from run import Row, ratio_at_most, under_a_second

    work.mkdir(parents=True, exist_ok=True)
    sizes = plan.sizes
    output = subprocess.run(
        [
            sys.executable,
            str(Path(__file__)),
            "asgi",
            str(rounds),
            str(batch_seconds),
            ",".join(str(size) for size in sizes),
            str(work),
        ],
        cwd=ENGINE,
        env=clean_environment(PYTHONPATH=os.pathsep.join([str(ENGINE), str(BENCH)])),
        capture_output=True,
        text=True,
        check=False,
    )
    if output.returncode != 0:
        raise SystemExit(f"the run-time origins micro-benchmark failed:\n{output.stderr[-3000:]}")
    measured = json.loads(output.stdout)
    us, ratios = measured["us"], measured["ratios"]

    def plural(size: int) -> str:
        return f"{size:,} origin{'s' if size > 1 else ''}"

    matrix = [
        "| Origins | static, simple | run-time, simple | static, preflight | run-time, preflight |",
        "|---|---:|---:|---:|---:|",
    ]
    for size in sizes:
        static, runtime = us[f"static/{size}"], us[f"runtime/{size}"]
        matrix.append(
            f"| {plural(size)} | {static['simple']:.2f} | {runtime['simple']:.2f} "
            f"| {static['preflight']:.2f} | {runtime['preflight']:.2f} |"
        )
    per_request = []
    for column, words in (("simple", "simple (layer alone)"), ("preflight", "preflight")):
        for size in sizes:
            per_request.append(
                Row(
                    f"run-time vs static, {plural(size)}, {words}",
                    us[f"runtime/{size}"][column],
                    "µs",
                    baseline=f"the same {plural(size)} configured",
                    baseline_value=us[f"static/{size}"][column],
                    target="≤ 1.05 (no more cost)",
                    meets=ratio_at_most(1.05),
                    paired_ratio=ratios[f"runtime/{size}/{column}"],
                )
            )
        largest = sizes[-1]
        per_request.append(
            Row(
                f"run-time, {plural(largest)} vs 1, {words}",
                us[f"runtime/{largest}"][column],
                "µs",
                baseline="1 run-time origin",
                baseline_value=us[f"runtime/{sizes[0]}"][column],
                target="≤ 1.10 (flat)",
                meets=ratio_at_most(1.10),
                paired_ratio=ratios[f"flat/{column}"],
            )
        )

    changes: dict[str, dict[str, list[float]]] = {}
    faults: list[tuple[str, str, str, str]] = []
    with Fleet(
        work / "sqlite", f"sqlite:///{work / 'sqlite' / 'origins.db'}", name="sqlite"
    ) as fleet:
        changes["SQLite"] = propagation(fleet, "sqlite", plan.changes)
    with postgres_cluster() as cluster:
        with Fleet(work / "postgresql", cluster.url, name="postgresql") as fleet:
            changes["PostgreSQL"] = propagation(fleet, "postgresql", plan.changes)
            observed = outage(fleet, cluster, plan)
        faults = [*startup_faults(work, cluster), *observed.faults]

    spread = []
    for store, verbs in changes.items():
        for verb, times in verbs.items():
            spread.append(
                (
                    Row(
                        f"`corsguard origins {verb}` returned → every worker "
                        f"{'allows' if verb == 'add' else 'refuses'} it, {store}",
                        percentile(times, 0.99),
                        "s",
                        target="p99 < 1 s",
                        meets=under_a_second,
                    ),
                    times,
                )
            )
    normal = observed.phases["normal"]
    latency = []
    for name in ("stopped", "restarting"):
        phase = observed.phases[name]
        latency.append(
            (
                Row(
                    f"store {name}",
                    percentile(phase.seconds, 0.99),
                    "s",
                    baseline="store up",
                    baseline_value=percentile(normal.seconds, 0.99),
                    target="≤ 1.5 (unchanged)",
                    meets=ratio_at_most(1.5),
                ),
                phase,
            )
        )
    return RuntimeSection(
        "e) Run-time origins (the engine's sample app)",
        f"Per request: µs, median of {rounds} rounds, through the layer alone (the "
        "middleware `add_cors` installs, around a no-op ASGI app, as in b). Static: the "
        "origins in `cors_allow_origins` beside the production profile's own; run-time: the "
        "production profile, the origins read from a SQLite store filled in one "
        "transaction. The requested origin is the last one. In each round a static case "
        "and its run-time twin run back to back, each first in turn; a ratio is the median "
        "of the per-round ratios. Across processes: two uvicorn processes with "
        "`--workers 2` each on 127.0.0.1 sharing the store (a SQLite file; a PostgreSQL "
        "cluster of its own, from the Debian package: "
        f"{postgres_version()}, psycopg {version('psycopg')}), `CORS_ORIGIN_POLL` at its "
        "default (30 s), so a change reaches the workers by its push. A change is timed "
        "from `corsguard origins add` (or `remove`) returning until every worker has "
        "answered a fresh request accordingly; the requests go to the two processes in "
        "turn, so the figure is an upper bound by the few milliseconds a round of them "
        "takes.",
        per_request,
        matrix,
        spread,
        latency,
        normal,
        observed,
        faults,
        plan,
    )


class RuntimeSection:
    """Section e: the per-request table as the other sections print theirs, then the
    changes, the latency through the outage and the faults."""

    def __init__(
        self,
        title: str,
        note: str,
        per_request: list[Any],
        matrix: list[str],
        spread: list[tuple[Any, list[float]]],
        latency: list[tuple[Any, Load]],
        normal: Load,
        observed: Observed,
        faults: list[tuple[str, str, str, str]],
        plan: Plan,
    ) -> None:
        self.title, self.note = title, note
        self.per_request, self.matrix = per_request, matrix
        self.spread, self.latency, self.normal = spread, latency, normal
        self.observed, self.faults, self.plan = observed, faults, plan
        self.rows = [*per_request, *(row for row, _ in spread), *(row for row, _ in latency)]

    def markdown(self) -> str:
        from run import Section

        def verdict(row: Any) -> str:
            return {True: "met", False: "not met", None: "—"}[row.verdict]

        table = Section(self.title, self.note, self.per_request, "\n".join(self.matrix))
        lines = [table.markdown(), ""]
        lines += [
            "| Change | Changes | Median | p99 | Max | Target | Target met? |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for row, times in self.spread:
            lines.append(
                f"| {row.measurement} | {len(times)} | {statistics.median(times):.3f} s "
                f"| {row.value:.3f} s | {max(times):.3f} s | {row.target} | {verdict(row)} |"
            )
        plan = self.plan
        lines += [
            "",
            f"PostgreSQL store: {plan.requests} sequential `GET /pid` per phase, one every "
            f"{plan.pace * 1e3:.0f} ms, fresh connections, the two processes in turn, from "
            "the configured origin and a run-time origin added before the outage in turn. "
            "Stopped: `pg_ctl stop -m immediate` (as a crash), then the load; restarting: "
            "`pg_ctl start` and the load at once, with a third origin in the turn, written "
            "into the table as the store came back (when "
            f"{self.observed.back_when_written} of the 4 workers listened): every worker "
            f"had reconnected {self.observed.reconnected:.2f} s after `pg_ctl start` "
            f"returned, and applied that row {self.observed.caught_up:.2f} s after it was "
            "written (as the load's answers show).",
            "",
            "| Phase | Requests | Median | p99 | Max | p99 vs store up | Target | "
            "Target met? | Statuses |",
            "|---|---:|---:|---:|---:|---:|---|---|---|",
        ]

        def phase_line(name: str, phase: Load, row: Any | None) -> str:
            seconds = phase.seconds
            statuses = ", ".join(
                f"{status}: {count}" for status, count in sorted(phase.statuses().items())
            )
            ratio = f"{row.ratio:.3f}" if row is not None else "—"
            target = row.target if row is not None else "—"
            met = verdict(row) if row is not None else "—"
            return (
                f"| {name} | {len(seconds)} | {statistics.median(seconds) * 1e3:.2f} ms "
                f"| {percentile(seconds, 0.99) * 1e3:.2f} ms | {max(seconds) * 1e3:.2f} ms "
                f"| {ratio} | {target} | {met} | {statuses} |"
            )

        lines.append(phase_line("store up", self.normal, None))
        for row, phase in self.latency:
            lines.append(phase_line(row.measurement, phase, row))
        lines += [
            "",
            "| Fault | What the service did | What it logged | What a browser saw |",
            "|---|---|---|---|",
        ]
        lines += [f"| {' | '.join(fault)} |" for fault in self.faults]
        return "\n".join(lines)


def main(argv: list[str]) -> None:
    if argv[:1] == ["asgi"] and len(argv) == 5:
        sizes = [int(size) for size in argv[3].split(",")]
        json.dump(asgi(int(argv[1]), float(argv[2]), sizes, Path(argv[4])), sys.stdout)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
