"""A bad configuration, as real servers meet it: ``uvicorn --workers N``, ``fastapi run``,
``fastapi dev`` and a harness that serves the app in a ``multiprocessing`` child.

Each command ends promptly with the message once, kills nothing (no exit by SIGKILL, the
harness survives) and leaves no process behind: every process a test starts is in a
process group of its own, which must be empty when the command has ended (an orphaned
worker would still be in it) and is killed in ``finally`` whatever happened.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest

from .service import Settings

ENGINE = Path(__file__).resolve().parent.parent
MAIN = ENGINE / "tests" / "sample" / "main.py"
APP = "tests.sample.main:app"
MESSAGE = "Invalid configuration; the service cannot start:"
STARTED = "CORS policy in force:"  # the start-up line, once per process that serves
ORIGINS = Settings.env_name("cors_allow_origins")
CREDENTIALS = Settings.env_name("cors_allow_credentials")
ORIGIN_WITH_A_PATH = {ORIGINS: "http://localhost:3000/app"}
WILDCARD_WITH_CREDENTIALS = {ORIGINS: "*", CREDENTIALS: "true"}
STARTUP_FAILURE = 3
KILLED = (-signal.SIGKILL, 128 + signal.SIGKILL)
# Every command must end within this, with the bad configuration found at start-up.
BOUND = 20.0


def test_the_process_tests_can_run() -> None:
    """They read process groups from /proc, and drive fastapi-cli (the dev group has it)."""
    assert sys.platform.startswith("linux"), "these tests read process groups from /proc"
    assert find_spec("fastapi_cli") is not None, "fastapi-cli is missing: uv sync --group dev"


@dataclass
class Started:
    process: subprocess.Popen[bytes]
    output: Path  # stdout and stderr, both

    @property
    def pid(self) -> int:
        return self.process.pid

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def messages(self) -> int:
        return self.text().count(MESSAGE)

    def wait(self, timeout: float = BOUND) -> tuple[int, float]:
        """The exit status and how long the command took to end from now."""
        began = time.monotonic()
        try:
            status = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {timeout} s:\n{self.text()}")
        return status, time.monotonic() - began


@contextmanager
def started(
    args: list[str], workdir: Path, variables: dict[str, str] | None = None
) -> Iterator[Started]:
    """``args`` running in ``workdir`` (where the settings look for .env) in a process
    group of its own, killed with the group in the end."""
    environment = {
        **{
            name: value
            for name, value in os.environ.items()
            if name.upper() != Settings.environment_variable().upper()
            and not name.upper().startswith(Settings.env_name("cors_"))
        },
        "PYTHONPATH": str(ENGINE),
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
        **(variables or {}),
    }
    output = workdir.parent / f"output-{len(list(workdir.parent.glob('output-*')))}.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(  # noqa: S603 - this interpreter and fixed arguments
            args,
            cwd=workdir,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield Started(process, output)
    finally:
        if members(process.pid):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


@dataclass(frozen=True)
class Member:
    pid: int
    ppid: int
    command: str


def members(group: int) -> list[Member]:
    """The live (not zombie) processes of a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # ended meanwhile
            continue
        # pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
        state, ppid, pgrp = stat[stat.rindex(")") + 2 :].split()[:3]
        if int(pgrp) == group and state != "Z":
            found.append(Member(int(entry.name), int(ppid), command))
    return found


def workers(supervisor: int) -> list[int]:
    """The worker processes of a uvicorn supervisor (not multiprocessing's tracker)."""
    return [
        member.pid
        for member in members(supervisor)
        if member.ppid == supervisor and "spawn_main" in member.command
    ]


def eventually(condition: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def answers(port: int) -> bool:
    """Whether a server answers /health with 200 on the port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def refuses(port: int) -> bool:
    """Whether nothing listens on the port."""
    with socket.socket() as client:
        client.settimeout(2)
        try:
            client.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


def assert_nothing_left(run: Started, port: int) -> None:
    left = []
    if not eventually(lambda: not members(run.pid), timeout=5):
        left = members(run.pid)
    assert not left, f"left running: {left}"  # orphans (parent PID 1) among them
    assert refuses(port)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The commands' working directory, where the settings look for .env (the commands'
    output goes next to it)."""
    path = tmp_path / "service"
    path.mkdir()
    return path


def uvicorn(port: int, *options: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        APP,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *options,
    ]


def fastapi(command: str, port: int, *options: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fastapi",
        command,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *options,
    ]


# A test harness: serves the app with uvicorn in a spawned child, twice in a row, and
# prints the children's exit codes. Old code SIGKILLed the harness from the child.
HARNESS = """
import multiprocessing, sys, uvicorn
port = int(sys.argv[1])
codes = []
for _ in range(2):
    child = multiprocessing.get_context("spawn").Process(
        target=uvicorn.run,
        args=("tests.sample.main:app",),
        kwargs={"host": "127.0.0.1", "port": port},
    )
    child.start()
    child.join(15)
    if child.exitcode is None:
        child.kill()
        child.join()
    codes.append(child.exitcode)
print("exit codes", codes, flush=True)
"""


def test_a_harness_serving_in_a_child_survives(workdir: Path) -> None:
    port = free_port()
    with started(
        [sys.executable, "-c", HARNESS, str(port)], workdir, ORIGIN_WITH_A_PATH
    ) as harness:
        status, _ = harness.wait()
        assert status == 0, harness.text()  # the harness ran to its end: not killed
        assert f"exit codes {[STARTUP_FAILURE, STARTUP_FAILURE]}" in harness.text()
        assert harness.messages() == 2, harness.text()  # once per child, each time
        assert "Traceback" not in harness.text()
        assert_nothing_left(harness, port)


@pytest.mark.parametrize(
    "command",
    [
        pytest.param("uvicorn", id="uvicorn"),
        pytest.param("fastapi run --entrypoint", id="fastapi-run-entrypoint"),
    ],
)
def test_workers_stop_at_start_up_with_one_message(workdir: Path, command: str) -> None:
    port = free_port()
    if command == "uvicorn":
        args = uvicorn(port, "--workers", "2")
    else:
        args = fastapi("run", port, "--workers", "2", "--entrypoint", APP)
    with started(args, workdir, WILDCARD_WITH_CREDENTIALS) as server:
        status, took = server.wait()
        assert status not in KILLED, server.text()
        # The supervisor stops every worker after the first exits with 3, then exits
        # with 0: its own status, which a worker cannot change without signalling it.
        assert status == 0, server.text()
        assert "failed to start, stopping the parent process" in server.text()
        assert server.messages() == 1, server.text()
        assert STARTED not in server.text()
        assert took < BOUND, f"{took:.1f} s"
        assert_nothing_left(server, port)


def test_a_worker_restarted_on_a_bad_configuration_stops_them_all(workdir: Path) -> None:
    port = free_port()
    dotenv = workdir / ".env"
    with started(uvicorn(port, "--workers", "2"), workdir) as server:
        assert eventually(
            lambda: server.text().count(STARTED) == 2 and answers(port), timeout=BOUND
        ), server.text()
        serving = workers(server.pid)
        assert len(serving) == 2, members(server.pid)
        # The configuration turns bad while the service runs; the next worker to start
        # (here, the one that replaces a worker that ended) reads it.
        dotenv.write_text(f"{ORIGINS}=http://localhost:3000/app\n")
        os.kill(serving[0], signal.SIGTERM)
        status, took = server.wait()
        assert status not in KILLED, server.text()  # the supervisor was not killed
        assert status == 0, server.text()
        assert "failed to start, stopping the parent process" in server.text()
        assert server.messages() == 1, server.text()
        assert took < BOUND, f"{took:.1f} s"
        assert_nothing_left(server, port)  # the other worker was not orphaned

    dotenv.unlink()  # fixed: the same port serves again
    with started(uvicorn(port, "--workers", "2"), workdir) as server:
        assert eventually(lambda: answers(port), timeout=BOUND), server.text()
        server.process.send_signal(signal.SIGTERM)
        status, _ = server.wait(timeout=10)
        assert status == 0, server.text()
        assert server.messages() == 0
        assert_nothing_left(server, port)


@pytest.mark.parametrize(
    "options",
    [pytest.param(["run", "--workers", "2"], id="run-workers"), pytest.param(["dev"], id="dev")],
)
def test_fastapi_cli_ends_at_once_with_status_3(workdir: Path, options: list[str]) -> None:
    # Given the file, fastapi-cli imports the app to find it, before any server starts.
    port = free_port()
    with started(
        fastapi(options[0], port, *options[1:], str(MAIN)), workdir, ORIGIN_WITH_A_PATH
    ) as command:
        status, took = command.wait()
        assert status == STARTUP_FAILURE, command.text()
        assert command.messages() == 1, command.text()
        assert "Traceback" not in command.text()
        assert took < 10, f"{took:.1f} s"
        assert_nothing_left(command, port)


def test_fastapi_dev_with_an_entrypoint_waits_for_a_change(workdir: Path) -> None:
    """What uvicorn's reloader does with any app that fails to import: the message once,
    nothing serving, and a wait for a file change until Ctrl+C; nothing is killed."""
    port = free_port()
    with started(fastapi("dev", port, "--entrypoint", APP), workdir, ORIGIN_WITH_A_PATH) as dev:
        assert eventually(lambda: dev.messages() == 1, timeout=BOUND), dev.text()
        time.sleep(1)
        assert dev.process.poll() is None, dev.text()  # the reloader waits: not killed
        assert dev.messages() == 1
        assert refuses(port)  # bound by the reloader, served by nobody
        dev.process.send_signal(signal.SIGINT)
        status, _ = dev.wait(timeout=10)
        assert status not in KILLED, dev.text()
        assert dev.messages() == 1
        assert_nothing_left(dev, port)
