"""A throw-away PostgreSQL server for the origin store's tests.

Debian's PostgreSQL (package ``postgresql``: ``/usr/lib/postgresql/<major>/bin``, or the
binaries on PATH) runs a cluster in a fresh temporary directory, on a free port of
127.0.0.1, with durability off (the data is thrown away). As root, the server runs as the
``postgres`` user, which PostgreSQL requires. A missing installation fails the test that
needs it, naming the package; it never skips.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

START_TIMEOUT = 30  # seconds, for pg_ctl -w


def binaries() -> Path:
    """The directory of initdb and pg_ctl, newest major version first."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major, reverse=True)
    if found:
        return Path(found[0]).parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(
        "PostgreSQL's server is not installed (no initdb in /usr/lib/postgresql/*/bin or on "
        "PATH): apt-get install postgresql"
    )


def _major(path: str) -> int:
    part = Path(path).parent.parent.name
    return int(part) if part.isdigit() else 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresServer:
    """``start()``, ``stop()`` and ``restart()`` one cluster on one port; ``url``."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.port = free_port()
        # Every directory above the data must be reachable by the postgres user: pytest's
        # own temporary directories are not.
        self.root = Path(tempfile.mkdtemp(prefix="corsguard-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.sockets.mkdir()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sockets, "postgres")
        self.log = self.root / "server.log"
        try:
            self._run(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def psql(self, sql: str) -> str:
        """Run ``sql`` with psql (one transaction; the first error fails) and return what
        it printed: unaligned, tuples only, one row a line."""
        done = subprocess.run(  # noqa: S603 (PostgreSQL's own client)
            [
                str(self.bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-d", self.url, "-c", sql,
            ],
            capture_output=True, text=True, timeout=START_TIMEOUT, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}) on {sql!r}: {done.stderr}")
        return done.stdout

    def _run(self, tool: str, *arguments: str) -> None:
        command = [str(self.bin / tool), *arguments]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(  # noqa: S603 (PostgreSQL's own tools)
            command,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT + 30,
            check=False,
            cwd=self.root,  # the postgres user may not enter the current directory
        )
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}\n{log[-2000:]}"
            )

    def start(self) -> None:
        options = (
            # fsync off: the data is thrown away, but a commit still reaches the WAL
            # before it returns, so an immediate stop keeps what was committed.
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
            "-t", str(START_TIMEOUT), "start",
        )  # fmt: skip

    def stop(self) -> None:
        """Stop at once, as a crash or a lost network would for the clients."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        if self.running():
            self.stop()
        self.start()

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def close(self) -> None:
        try:
            if self.running():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.close()  # a server half started, and the directory
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
