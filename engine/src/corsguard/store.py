"""Origins added and removed while the service runs, kept in a store every process shares.

The store is named by ``CORS_ORIGIN_STORE``, a URL:

- ``sqlite:///origins.db`` (relative to the working directory) or
  ``sqlite:////abs/path/origins.db``: a file, for the processes of one machine; nothing
  to run. A change is pushed to every process by a datagram on a Linux abstract socket
  that each process registers in the file; elsewhere, only the poll applies.
- ``postgresql://user@host:5432/db``: for replicas on many machines; a change is pushed by
  PostgreSQL's ``NOTIFY`` (a trigger on the table sends it, so a row written by hand is
  pushed too).

Each process holds the current set in memory, merged into its policies: a request never
waits for the store and costs what a request to a configured origin costs. A watcher task
(started with the app's lifespan) reloads the set on every push, and at least every
``CORS_ORIGIN_POLL`` seconds; when the store is lost it keeps the last good set, reports
once a minute, reconnects with backoff and reloads everything on reconnecting.

Every entry passes the rules configured origins pass (:func:`check_entry`): a bad entry is
refused when it is added, and a bad row found in the store is skipped and reported once,
never applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from .origins import WILDCARD, OriginError, parse_origin

if TYPE_CHECKING:
    from .settings import CORSSettings

logger = logging.getLogger("corsguard.store")
changes_logger = logging.getLogger("corsguard.origins")
# Every change is logged once, by the process that makes it, at the default level too.
changes_logger.setLevel(logging.INFO)

TABLE = "corsguard_origins"
CHANNEL = "corsguard_origins"  # PostgreSQL's notification channel
SCHEMA_VERSION = 1
DEFAULT_POLICY = ""  # the policy column's value for the default policy
# While the store is lost: the first report at once, then one a minute.
REPORT_INTERVAL = 60.0
# Reconnecting: 0.25 s, then doubled up to this, so a store back after an outage is
# caught up within a few seconds.
MAX_BACKOFF = 4.0
# How long stop() waits for the watcher to end before it cancels it again.
STOP_RESEND = 0.1
CONNECT_TIMEOUT = 5  # seconds, for a connection to PostgreSQL
SCHEMES = ("sqlite", "postgresql", "postgres")
# pg_advisory_xact_lock key for the schema: two processes migrating at once take turns.
SCHEMA_LOCK = 0x636F7273  # 'cors'


class StoreError(Exception):
    """The store cannot be reached or used; the message names it (password hidden)."""


@dataclass(frozen=True)
class StoredOrigin:
    """One row of the store: an entry of one policy (``policy`` None: the default)."""

    origin: str
    policy: str | None
    added_by: str | None = None
    added_at: str | None = None

    @property
    def policy_name(self) -> str:
        return "default" if self.policy is None else self.policy


def store_url_problem(value: str) -> str | None:
    """What is wrong with a ``CORS_ORIGIN_STORE`` value, or None ("" means no store)."""
    if value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in SCHEMES:
        return (
            f"{redacted(value)!r} is not a store URL: use sqlite:///path/to/origins.db (one "
            "machine) or postgresql://user@host:5432/dbname (many replicas), or leave it "
            "empty for no run-time origins"
        )
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.lstrip("/"):
            return (
                f"{value!r} does not name a file: write sqlite:///relative/origins.db or "
                "sqlite:////absolute/origins.db (three slashes, then the path)"
            )
    elif not parts.hostname and "host=" not in parts.query:
        return (
            f"{redacted(value)!r} names no host: write postgresql://user@host:5432/dbname "
            "(the password from a secret, as in the deploy/ overlays)"
        )
    return None


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


def check_entry(settings: CORSSettings, origin: str, policy: str | None = None) -> str:
    """The normalized entry, or :class:`OriginError` in the words start-up uses.

    ``policy`` is a path policy's name, None (or "default") for the default policy.
    Refused: ``*`` (every site), anything but ``scheme://host[:port]``, a pattern broader
    than a registrable domain, ``null`` in production, and a policy that does not exist.
    """
    if policy is not None and policy not in settings.cors_path_policies:
        known = ", ".join(["default", *settings.cors_path_policies])
        raise OriginError(f"there is no path policy named {policy!r}: use one of {known}")
    text = origin.strip()
    if not text:
        raise OriginError(
            "an empty origin: give one, as in https://tenant.example.com or a pattern such "
            "as https://*.tenants.example.com"
        )
    if text == WILDCARD:
        raise OriginError(
            "'*' cannot be a run-time origin: it would allow every site; add the origins "
            "one at a time, or a pattern such as https://*.tenants.example.com"
        )
    environment = settings.environment
    if type(settings).is_production(environment):
        environment = "production"
    return parse_origin(text, environment=environment)


def policy_key(policy: str | None) -> str | None:
    """``default`` (or None, or "") is the default policy."""
    return None if policy in (None, "", "default") else policy


class Feed(Protocol):
    """A live connection to the store that pushes changes."""

    async def rows(self) -> list[StoredOrigin]: ...

    async def wait(self, timeout: float) -> None:
        """Return at the next change pushed, or after ``timeout`` seconds."""


class OriginStore:
    """The shared store: the table of run-time origins and how changes are pushed."""

    url: str

    @staticmethod
    def open(url: str) -> OriginStore:
        problem = store_url_problem(url)
        if problem:
            raise StoreError(problem)
        if urlsplit(url).scheme == "sqlite":
            return SQLiteStore(url)
        return PostgresStore(url)

    @property
    def name(self) -> str:
        return redacted(self.url)

    def migrate(self) -> None:
        """Create the schema, or bring it up to date; safe to run at any time."""
        raise NotImplementedError

    def rows(self) -> list[StoredOrigin]:
        raise NotImplementedError

    def add(self, origin: str, policy: str | None, by: str | None) -> bool:
        """Store the entry; False when it was already there."""
        raise NotImplementedError

    def remove(self, origin: str, policy: str | None) -> bool:
        """Delete the entry; False when it was not there."""
        raise NotImplementedError

    def listen(self) -> contextlib.AbstractAsyncContextManager[Feed]:
        raise NotImplementedError


def _row(origin: str, policy: str, added_by: str | None, added_at: Any) -> StoredOrigin:
    at = None if added_at is None else str(added_at)
    return StoredOrigin(origin, policy or None, added_by, at)


# -- SQLite -----------------------------------------------------------------------------

SQLITE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    policy TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL,
    added_by TEXT,
    added_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (policy, origin)
);
CREATE TABLE IF NOT EXISTS corsguard_listeners (
    address TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    since TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS corsguard_schema (version INTEGER NOT NULL);
"""
PUSH_SUPPORTED = sys.platform.startswith("linux")  # abstract sockets


class SQLiteStore(OriginStore):
    def __init__(self, url: str) -> None:
        self.url = url
        path = urlsplit(url).path
        self.path = Path(path[1:] if path.startswith("/") else path)

    def connect(self) -> sqlite3.Connection:
        if not self.path.parent.is_dir():
            raise StoreError(
                f"the origin store {self.url!r} is in a directory that does not exist "
                f"({self.path.parent}): create it, or fix CORS_ORIGIN_STORE"
            )
        try:
            # Used from one thread at a time, but not always the same one (the watcher's
            # reads run in the event loop's executor).
            connection = sqlite3.connect(
                self.path, timeout=10, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA busy_timeout = 10000")
        except sqlite3.Error as error:
            raise StoreError(f"cannot open the origin store {self.url!r}: {error}") from None
        return connection

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = self.connect()
        try:
            yield connection
        except sqlite3.Error as error:
            raise StoreError(f"the origin store {self.url!r} failed: {error}") from None
        finally:
            connection.close()

    def migrate(self) -> None:
        with self._connection() as db:
            deadline = time.monotonic() + 10  # as long as busy_timeout waits for a lock
            while db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                try:
                    # Readers never wait for a writer; set once, it stays with the file.
                    db.execute("PRAGMA journal_mode = WAL")
                except sqlite3.OperationalError:
                    # Another process opening the new file at the same moment: this
                    # switch fails at once ("database is locked"), without the busy
                    # timeout; look again shortly.
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            db.execute("BEGIN IMMEDIATE")
            for statement in SQLITE_SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            found = db.execute("SELECT max(version) FROM corsguard_schema").fetchone()[0]
            if found is None:
                db.execute("INSERT INTO corsguard_schema (version) VALUES (?)", (SCHEMA_VERSION,))
            elif found > SCHEMA_VERSION:
                db.execute("ROLLBACK")
                raise StoreError(
                    f"the origin store {self.url!r} has schema version {found}, newer than "
                    f"this corsguard's {SCHEMA_VERSION}: upgrade corsguard"
                )
            if db.in_transaction:
                db.execute("COMMIT")

    def rows(self) -> list[StoredOrigin]:
        with self._connection() as db:
            return _sqlite_rows(db)

    def add(self, origin: str, policy: str | None, by: str | None) -> bool:
        with self._connection() as db:
            cursor = db.execute(
                f"INSERT OR IGNORE INTO {TABLE} (policy, origin, added_by) VALUES (?, ?, ?)",  # noqa: S608
                (policy or DEFAULT_POLICY, origin, by),
            )
            added = cursor.rowcount == 1
            if added:
                self._push(db)
            return added

    def remove(self, origin: str, policy: str | None) -> bool:
        with self._connection() as db:
            cursor = db.execute(
                f"DELETE FROM {TABLE} WHERE policy = ? AND origin = ?",  # noqa: S608
                (policy or DEFAULT_POLICY, origin),
            )
            removed = cursor.rowcount == 1
            if removed:
                self._push(db)
            return removed

    def _push(self, db: sqlite3.Connection) -> None:
        """A datagram to every registered process; the addresses of gone ones deleted."""
        if not PUSH_SUPPORTED:
            return
        addresses = [row[0] for row in db.execute("SELECT address FROM corsguard_listeners")]
        gone = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            for address in addresses:
                try:
                    sender.sendto(b"1", "\0" + address)
                except (ConnectionRefusedError, FileNotFoundError):
                    gone.append((address,))
                except OSError:  # its queue is full: it has a change to read already
                    continue
        if gone:
            db.executemany("DELETE FROM corsguard_listeners WHERE address = ?", gone)

    def listen(self) -> contextlib.AbstractAsyncContextManager[Feed]:
        return self._listen()

    @contextlib.asynccontextmanager
    async def _listen(self) -> AsyncIterator[Feed]:
        feed = SQLiteFeed(self)
        try:
            await asyncio.to_thread(feed.open)
        except asyncio.CancelledError:
            feed.abandon()  # the thread opening it goes on; what it opens is closed
            raise
        try:
            feed.attach()
            yield feed
        finally:
            feed.detach()
            await asyncio.to_thread(feed.close)


def _sqlite_rows(db: sqlite3.Connection) -> list[StoredOrigin]:
    query = f"SELECT origin, policy, added_by, added_at FROM {TABLE} ORDER BY policy, origin"  # noqa: S608
    return [_row(origin, policy, by, at) for origin, policy, by, at in db.execute(query)]


class SQLiteFeed:
    """The file, read when it changes: on a datagram, or when a poll finds its
    ``data_version`` moved (a change written without corsguard, such as by hand)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.address = f"corsguard-{uuid.uuid4().hex}"
        self.pushed = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        self.socket: socket.socket | None = None
        self.db: sqlite3.Connection | None = None
        self.version: int | None = None
        # open() runs in a thread that a cancellation does not stop: whichever of open()
        # and abandon() ends last closes what open() opened.
        self._state = threading.Lock()
        self._opened = self._abandoned = False
        # A read cancelled in the event loop goes on in its thread: the connection is
        # closed only once no thread uses it (sqlite3 does not guard a close against a
        # query in progress).
        self._using = threading.RLock()

    def open(self) -> None:
        self._open()
        with self._state:
            self._opened = True
            abandoned = self._abandoned
        if abandoned:
            self.discard()

    def abandon(self) -> None:
        """Give up a feed whose open() was cancelled (in the event loop)."""
        with self._state:
            self._abandoned = True
            opened = self._opened
        if opened:
            with contextlib.suppress(RuntimeError):  # the loop's executor is shut down
                self.loop.run_in_executor(None, self.discard)
                return
            self.discard()

    def _open(self) -> None:
        self.db = self.store.connect()
        try:
            if PUSH_SUPPORTED:
                self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self.socket.bind("\0" + self.address)
                self.socket.setblocking(False)
                self.db.execute(
                    "INSERT OR REPLACE INTO corsguard_listeners (address, pid) VALUES (?, ?)",
                    (self.address, os.getpid()),
                )
        except (sqlite3.Error, OSError) as error:
            self.discard()
            raise StoreError(f"the origin store {self.store.url!r} failed: {error}") from None

    def attach(self) -> None:
        """Wake the watcher on each datagram (in the event loop)."""
        if self.socket is not None:
            self.loop.add_reader(self.socket.fileno(), self._readable)

    def detach(self) -> None:
        """Stop listening and close the socket (in the event loop)."""
        if self.socket is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.socket.fileno())
            self.socket.close()

    def _readable(self) -> None:
        if self.socket is None:
            return
        with contextlib.suppress(OSError):
            while self.socket.recv(16):
                pass
        self.pushed.set()

    def discard(self) -> None:
        """Close the socket and the connection of a feed never attached (in a thread)."""
        if self.socket is not None:
            self.socket.close()
        self.close()

    def close(self) -> None:
        with self._using:
            if self.socket is not None and self.db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute(
                        "DELETE FROM corsguard_listeners WHERE address = ?", (self.address,)
                    )
            if self.db is not None:
                self.db.close()
            self.db = None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """The feed's connection, this thread's until the block ends; its errors as
        StoreError, as the store's own."""
        with self._using:
            if self.db is None:
                raise StoreError(f"the origin store {self.store.url!r} is closed")
            try:
                yield self.db
            except sqlite3.Error as error:
                raise StoreError(f"the origin store {self.store.url!r} failed: {error}") from None

    def _read(self) -> tuple[int, list[StoredOrigin]]:
        with self._connection() as db:
            return db.execute("PRAGMA data_version").fetchone()[0], _sqlite_rows(db)

    async def rows(self) -> list[StoredOrigin]:
        self.pushed.clear()
        self.version, found = await asyncio.to_thread(self._read)
        return found

    def _changed(self) -> bool:
        with self._connection() as db:
            return bool(db.execute("PRAGMA data_version").fetchone()[0] != self.version)

    async def wait(self, timeout: float) -> None:
        # Without push (not Linux), a cheap check of data_version every second stands in.
        step = timeout if PUSH_SUPPORTED else min(timeout, 1.0)
        deadline = time.monotonic() + timeout
        while True:
            if await self._pushed_within(step):
                return
            if time.monotonic() >= deadline or await asyncio.to_thread(self._changed):
                return

    async def _pushed_within(self, timeout: float) -> bool:
        # asyncio.wait, not wait_for: on Python 3.10 and 3.11 wait_for can swallow the
        # watcher's cancellation (see RuntimeOrigins.stop); wait never does.
        pushed = asyncio.ensure_future(self.pushed.wait())
        try:
            done, _ = await asyncio.wait({pushed}, timeout=timeout)
        finally:
            pushed.cancel()
        return bool(done)


# -- PostgreSQL -------------------------------------------------------------------------

POSTGRES_SCHEMA = [
    f"""CREATE TABLE IF NOT EXISTS {TABLE} (
        policy text NOT NULL DEFAULT '',
        origin text NOT NULL,
        added_by text,
        added_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (policy, origin)
    )""",
    "CREATE TABLE IF NOT EXISTS corsguard_schema (version integer NOT NULL)",
    f"""CREATE OR REPLACE FUNCTION corsguard_origins_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', '');
            RETURN NULL;
        END $$""",
]
POSTGRES_TRIGGER = f"""CREATE TRIGGER corsguard_origins_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION corsguard_origins_changed()"""
POSTGRES_ROWS = f"SELECT origin, policy, added_by, added_at FROM {TABLE} ORDER BY policy, origin"  # noqa: S608


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "CORS_ORIGIN_STORE is a postgresql URL but the driver is not installed: depend "
            "on corsguard[postgresql] (uv add 'corsguard[postgresql]')"
        ) from None
    return psycopg


class PostgresStore(OriginStore):
    def __init__(self, url: str) -> None:
        self.url = url
        self.psycopg = _psycopg()

    def _failed(self, error: Exception) -> StoreError:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return StoreError(f"the origin store {self.name} failed: {detail}")

    @contextlib.contextmanager
    def _connection(self) -> Any:
        try:
            with self.psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT) as db:
                yield db
        except self.psycopg.Error as error:
            raise self._failed(error) from None

    def migrate(self) -> None:
        with self._connection() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for statement in POSTGRES_SCHEMA:
                db.execute(statement)
            found = db.execute("SELECT max(version) FROM corsguard_schema").fetchone()[0]
            if found is None:
                db.execute("INSERT INTO corsguard_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
            elif found > SCHEMA_VERSION:
                raise StoreError(
                    f"the origin store {self.name} has schema version {found}, newer than "
                    f"this corsguard's {SCHEMA_VERSION}: upgrade corsguard"
                )
            exists = db.execute(
                "SELECT 1 FROM pg_trigger WHERE tgname = 'corsguard_origins_changed' "
                "AND tgrelid = %s::regclass",
                (TABLE,),
            ).fetchone()
            if exists is None:
                db.execute(POSTGRES_TRIGGER)

    def rows(self) -> list[StoredOrigin]:
        with self._connection() as db:
            return [_row(*row) for row in db.execute(POSTGRES_ROWS)]

    def add(self, origin: str, policy: str | None, by: str | None) -> bool:
        with self._connection() as db:
            cursor = db.execute(
                f"INSERT INTO {TABLE} (policy, origin, added_by) VALUES (%s, %s, %s) "  # noqa: S608
                "ON CONFLICT DO NOTHING",
                (policy or DEFAULT_POLICY, origin, by),
            )
            return bool(cursor.rowcount == 1)

    def remove(self, origin: str, policy: str | None) -> bool:
        with self._connection() as db:
            cursor = db.execute(
                f"DELETE FROM {TABLE} WHERE policy = %s AND origin = %s",  # noqa: S608
                (policy or DEFAULT_POLICY, origin),
            )
            return bool(cursor.rowcount == 1)

    def listen(self) -> contextlib.AbstractAsyncContextManager[Feed]:
        return self._listen()

    @contextlib.asynccontextmanager
    async def _listen(self) -> AsyncIterator[Feed]:
        psycopg = self.psycopg
        try:
            connection = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT
            )
        except psycopg.Error as error:
            raise self._failed(error) from None
        try:
            await connection.execute(f"LISTEN {CHANNEL}")
            yield PostgresFeed(self, connection)
        except psycopg.Error as error:
            raise self._failed(error) from None
        finally:
            with contextlib.suppress(Exception):
                await connection.close()


class PostgresFeed:
    def __init__(self, store: PostgresStore, connection: Any) -> None:
        self.store = store
        self.connection = connection

    async def rows(self) -> list[StoredOrigin]:
        try:
            cursor = await self.connection.execute(POSTGRES_ROWS)
            return [_row(*row) for row in await cursor.fetchall()]
        except self.store.psycopg.Error as error:
            raise self.store._failed(error) from None

    async def wait(self, timeout: float) -> None:
        try:
            async for _ in self.connection.notifies(timeout=timeout, stop_after=1):
                break
        except self.store.psycopg.Error as error:
            raise self.store._failed(error) from None
        if self.connection.closed or self.connection.broken:
            raise StoreError(f"the origin store {self.store.name} closed the connection")


# -- The set in memory ------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The run-time entries in force, by policy (None: the default policy)."""

    entries: dict[str | None, tuple[str, ...]]
    skipped: tuple[tuple[StoredOrigin, str], ...] = ()

    @property
    def count(self) -> int:
        return sum(len(entries) for entries in self.entries.values())


EMPTY = Snapshot({})


class RuntimeOrigins:
    """The run-time origins of one app: the store, the set in force, and the watcher.

    The owner's admin code reaches it as ``request.app.state.cors_origins`` (or builds
    one with ``RuntimeOrigins(settings)``) and calls :meth:`add`, :meth:`remove` and
    :meth:`list`; these block on the store, so call them from a ``def`` route (FastAPI
    runs it in a thread) or through ``run_in_threadpool``.
    """

    def __init__(self, settings: CORSSettings, store: OriginStore | None = None) -> None:
        self.settings = settings
        self.store = store or OriginStore.open(settings.cors_origin_store)
        self.snapshot = EMPTY
        self.loaded = False  # whether the set in force came from the store
        self.problem: str | None = None  # why the store could not be read at start-up
        # Each layer's preparation for a new set: it builds, and returns the step that
        # puts the set in force.
        self.subscribers: list[Callable[[Snapshot], Callable[[], None]]] = []
        self._accepted: dict[tuple[str | None, str], str | None] = {}  # row -> entry
        self._reasons: dict[tuple[str | None, str], str] = {}  # row -> why it is skipped
        self._reported: set[tuple[str | None, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._cancel_seen = False  # whether the watcher has seen stop()'s cancellation
        self._lost_since: float | None = None
        self._last_report = -REPORT_INTERVAL  # the first loss is reported at once
        self._loss_reported = False

    # Management: what `corsguard origins` and an admin route call.

    def add(self, origin: str, policy: str | None = None, by: str | None = None) -> str:
        """Add an entry (validated as configured ones are); returns it normalized.

        :class:`OriginError` names a refused entry and why; :class:`StoreError` a store
        that cannot be written. Logged once, on ``corsguard.origins``."""
        key = policy_key(policy)
        entry = check_entry(self.settings, origin, key)
        self.store.migrate()
        if self.store.add(entry, key, by):
            changes_logger.info("%s", change_line("added", entry, key, by, self.store))
        return entry

    def remove(self, origin: str, policy: str | None = None, by: str | None = None) -> bool:
        """Remove an entry; False when the store did not have it."""
        key = policy_key(policy)
        try:
            entry = parse_origin(origin.strip())
        except OriginError:
            entry = origin.strip()  # a bad row written by hand is removed as written
        self.store.migrate()
        removed = self.store.remove(entry, key)
        if not removed and entry != origin:
            removed = self.store.remove(origin, key)
        if not removed and key is not None and key not in self.settings.cors_path_policies:
            # Not a row of a policy removed since (those are skipped, and removable).
            check_entry(self.settings, "https://example.com", key)  # names the policies
        if removed:
            changes_logger.info("%s", change_line("removed", entry, key, by, self.store))
        return removed

    def list(self) -> list[tuple[StoredOrigin, str | None]]:
        """Every row of the store with the reason it is skipped (None: in force)."""
        self.store.migrate()
        return [(row, self._problem(row)) for row in self.store.rows()]

    # The set in force.

    def load(self) -> None:
        """Read the store once, blocking: at start-up, before the app serves."""
        try:
            self.store.migrate()
            self.apply(self.store.rows())
        except StoreError as error:
            self.problem = str(error)
            raise
        self.loaded = True
        self.problem = None

    def _problem(self, row: StoredOrigin) -> str | None:
        key = (row.policy, row.origin)
        if key not in self._accepted:
            try:
                # A row written by hand in another spelling applies as it normalizes.
                entry: str | None = check_entry(self.settings, row.origin, row.policy)
            except OriginError as error:
                self._accepted[key] = None
                self._reasons[key] = str(error)
                return str(error)
            self._accepted[key] = entry
        return None if self._accepted[key] is not None else self._reasons[key]

    def apply(self, rows: Iterable[StoredOrigin]) -> bool:
        """Make ``rows`` the set in force; True when it changed. Bad rows are skipped and
        reported once each."""
        commit = self.prepare(rows)
        if commit is None:
            return False
        commit()
        return True

    def prepare(self, rows: Iterable[StoredOrigin]) -> Callable[[], None] | None:
        """Validate ``rows`` and build every layer's answers for them; None when the set
        in force is the same, else the step that puts it in force. Safe to run in a
        thread while requests are served: nothing in force changes until the step."""
        entries: dict[str | None, list[str]] = {}
        skipped = []
        rows = list(rows)
        if len(self._accepted) > 2 * len(rows) + 1000:  # forget rows long removed
            seen = {(row.policy, row.origin) for row in rows}
            self._accepted = {key: value for key, value in self._accepted.items() if key in seen}
            self._reasons = {key: value for key, value in self._reasons.items() if key in seen}
        for row in rows:
            problem = self._problem(row)
            if problem is not None:
                skipped.append((row, problem))
                if (row.policy, row.origin) not in self._reported:
                    self._reported.add((row.policy, row.origin))
                    environment = self.settings.environment
                    logger.error("%s", skipped_line(row, problem, self.store, environment))
                continue
            entry = self._accepted.get((row.policy, row.origin))
            if entry is None:  # not reached: a row without a problem is accepted
                continue
            entries.setdefault(row.policy, []).append(entry)
        snapshot = Snapshot(
            {policy: tuple(dict.fromkeys(found)) for policy, found in entries.items()},
            tuple(skipped),
        )
        if snapshot.entries == self.snapshot.entries:
            self.snapshot = snapshot  # the same entries; skipped rows may differ
            return None
        steps = [subscriber(snapshot) for subscriber in self.subscribers]

        def commit() -> None:
            for step in steps:
                step()
            self.snapshot = snapshot

        return commit

    async def _reload(self, feed: Feed) -> None:
        """Read the store and put its set in force, building it off the event loop."""
        commit = await asyncio.to_thread(self.prepare, await feed.rows())
        if commit is not None:
            commit()  # in the event loop: between two requests

    # The watcher, in the server's event loop.

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._cancel_seen = False
            self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        # On Python 3.10 and 3.11, asyncio.wait_for returns instead of raising when the
        # future it waits for completes in the same turn of the loop as the cancellation
        # (python/cpython#86296), and psycopg before 3.3 waits on its socket with it: the
        # watcher would go on as if never cancelled, and a shutdown would wait for it
        # for ever. So the cancellation is sent again until the watcher has seen it.
        while not task.done() and not self._cancel_seen:
            task.cancel()
            await asyncio.wait({task}, timeout=STOP_RESEND)
        await asyncio.wait({task})  # what is left: closing the feed, uninterrupted
        if not task.cancelled() and task.exception() is not None:
            logger.error("the origin store's watcher ended: %s", task.exception())

    async def _watch(self) -> None:
        poll = float(self.settings.cors_origin_poll)
        backoff = 0.25
        while True:
            try:
                async with self.store.listen() as feed:
                    try:
                        await asyncio.to_thread(self.store.migrate)
                        await self._reload(feed)  # catches up on whatever was missed
                        self._recovered()
                        backoff = 0.25
                        while True:
                            await feed.wait(poll)
                            await self._reload(feed)
                    except asyncio.CancelledError:
                        self._cancel_seen = True  # stop() need not send it again
                        raise
            except asyncio.CancelledError:
                raise
            except Exception as error:  # never let the watcher die: keep the last set
                self._lost(error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    def _lost(self, error: Exception) -> None:
        now = time.monotonic()
        if self._lost_since is None:
            self._lost_since = now
        if now - self._last_report < REPORT_INTERVAL:
            return  # at most one report a minute, however often the store comes and goes
        self._last_report = now
        self._loss_reported = True
        down = now - self._lost_since
        detail = str(error) or type(error).__name__
        logger.error(
            "origin store %s unreachable%s (%s); keeping the last %s, reconnecting",
            self.store.name,
            f" for {down:.0f} s" if down >= 1 else "",
            detail,
            counted(self.snapshot.count),
        )

    def _recovered(self) -> None:
        if self._loss_reported or not self.loaded:
            logger.warning(
                "origin store %s reachable%s; %s in force",
                self.store.name,
                " again" if self._loss_reported else "",
                counted(self.snapshot.count),
            )
        self._loss_reported = False
        self._lost_since = None
        self.loaded = True
        self.problem = None


def change_line(
    verb: str, entry: str, policy: str | None, by: str | None, store: OriginStore
) -> str:
    name = "the default policy" if policy is None else f"the {policy!r} path policy"
    who = f" by {by}" if by else ""
    way = "to" if verb == "added" else "from"
    return f"{verb} run-time origin {entry!r} {way} {name}{who} ({store.name})"


def skipped_line(row: StoredOrigin, problem: str, store: OriginStore, environment: str) -> str:
    """The report of a row the rules refuse, with the command that removes it (for the
    profile whose store holds it: ``environment``)."""
    env = f" --env {shlex.quote(environment)}" if environment else ""
    policy = "" if row.policy is None else f" --policy {shlex.quote(row.policy)}"
    return (
        f"skipped run-time origin {row.origin!r} of the {row.policy_name} policy in "
        f"{store.name}: {problem}; it is not applied. Remove it with: corsguard origins "
        f"remove{env}{policy} {shlex.quote(row.origin)}"
    )


def counted(number: int) -> str:
    return f"{number} run-time origin{'' if number == 1 else 's'}"
