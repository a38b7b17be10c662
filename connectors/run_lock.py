"""The store's run lock: one okr-sync run at a time per store, and a dead run never blocks the next.

Two runs syncing one store at once would extract the same pages twice and, worse, write the same OKR
records twice, racing each other's ledger. So a run takes the lock before it touches the store or a CRM
and releases it at its end; a second run finds it held and either waits (up to `wait` seconds, then
goes on if the first has finished) or fails with `StoreLocked`, whose message names the holder.

How a lock whose holder died (SIGKILL, power loss) is freed differs per database, on purpose:

- PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) taken on a connection kept open for
  the whole run. The server drops it the moment that session ends, and a killed process's socket is
  closed by the kernel, so a dead holder frees the lock at once, whatever host it ran on, with no clock,
  pid or timeout involved, and a live one never loses it for being slow (no heartbeat to miss during a
  long extraction). The `run_lock` row only names the holder, for the message; the next holder
  overwrites it. (If the server restarts mid-run, the lock is gone while the run goes on: a second run
  could then start; its writes are still upserts by external key, never duplicates.)
- SQLite has no lock that outlives a transaction, and holding a write transaction for the whole run
  would block the run's own writers. So the row is a lease: holder pid, host and an expiry, renewed
  by a heartbeat thread (every TTL/6). It is taken over when its pid no longer runs on this host (the
  usual case: the same machine runs okr-sync again), when it names this very process but not a lock
  this process holds (a container restarted with the same pid), or when the lease has expired (a
  holder on another host sharing the file, or one hung for longer than the TTL). A take-over is a
  compare-and-set on the old holder's token, so two runs that find the same stale lease cannot both win.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.store import RunLockHolder

log = logging.getLogger(__name__)

LOCK_NAME = "sync"
LOCK_WAIT_ENV = "OKR_SYNC_LOCK_WAIT_SECONDS"  # how long a second run waits for the lock (default 0: not at all)
LEASE_TTL = timedelta(seconds=90)  # SQLite: a lease not renewed for this long is free
POLL_SECONDS = 0.5  # how often a waiting run looks again

_TABLE = RunLockHolder.__table__  # type: ignore[attr-defined]
_HELD_HERE: set[str] = set()  # tokens of the locks this process holds (see _is_stale)
_HELD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a store's lock, as its row says."""

    pid: int
    host: str
    started_at: datetime
    expires_at: datetime | None = None
    label: str | None = None
    token: str = ""

    @classmethod
    def from_row(cls, row: Any) -> Holder:
        return cls(row.pid, row.host, _aware(row.started_at), _aware(row.expires_at) if row.expires_at else None,
                   row.label, row.token)

    def describe(self) -> str:
        """Its label (when it has one), then e.g. "pid 123 on host X, started 2026-11-27 02:00:03 UTC"."""
        label = f"{self.label}, " if self.label else ""
        return f"{label}pid {self.pid} on host {self.host}, started {self.started_at:%Y-%m-%d %H:%M:%S} UTC"


class StoreLocked(ConnectorError):
    """Another run holds the store's lock; `holder` says which (None when its row is not there yet)."""

    def __init__(self, holder: Holder | None, waited: float, postgres: bool) -> None:
        who = f"({holder.describe()}) " if holder else ""
        waited_text = f"waited {waited:.0f} s, then " if waited >= 1 else ""
        if postgres:
            dead = "a run that died releases it with its database connection"
        else:
            dead = ("a run that died leaves it to the next run on the same host at once, elsewhere when its lease "
                    f"expires{f' at {holder.expires_at:%H:%M:%S} UTC' if holder and holder.expires_at else ''}")
        super().__init__(f"another okr-sync run {who}holds the store's lock; this run {waited_text}stopped before "
                         f"syncing anything. Let that run finish (or wait for it with "
                         f"${LOCK_WAIT_ENV}); {dead}.")
        self.holder = holder


class RunLock:
    """A held lock: `release()` it (or use it as a context manager) when the run ends."""

    def __init__(self, engine: Engine, holder: Holder, connection: Connection | None = None,
                 ttl: timedelta = LEASE_TTL) -> None:
        self.engine = engine
        self.holder = holder
        self._connection = connection  # PostgreSQL: the session that holds the advisory lock
        self._ttl = ttl
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.lost = False  # SQLite: the lease was taken over while this run still held it
        if connection is None:
            self._heartbeat = threading.Thread(target=self._beat, name="okr-sync-run-lock", daemon=True)
            self._heartbeat.start()

    def _beat(self) -> None:
        """Renew the lease until released; a lease found taken over is logged once, then left alone."""
        interval = max(self._ttl.total_seconds() / 6, 0.05)
        while not self._stop.wait(interval):
            try:
                with self.engine.begin() as connection:
                    renewed = connection.execute(update(_TABLE).where(
                        _TABLE.c.name == LOCK_NAME, _TABLE.c.token == self.holder.token).values(
                        expires_at=_now() + self._ttl)).rowcount
            except SQLAlchemyError as error:  # the store is busy or away: try again next beat
                log.warning("could not renew the store's run lock: %s", error)
                continue
            if not renewed:
                self.lost = True
                log.error("the store's run lock was taken over by another run (this one was presumed dead)")
                return

    def release(self) -> None:
        """Let the next run in; safe to call twice."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=10)
        with _HELD_LOCK:
            if self.holder.token not in _HELD_HERE:
                return
            _HELD_HERE.discard(self.holder.token)
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(_TABLE).where(_TABLE.c.name == LOCK_NAME,
                                                        _TABLE.c.token == self.holder.token))
        finally:
            if self._connection is not None:
                _unlock(self._connection)

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def acquire(engine: Engine, wait: float | None = None, label: str | None = None,
            ttl: timedelta = LEASE_TTL, env: Mapping[str, str] = os.environ) -> RunLock:
    """Take the store's run lock, waiting up to `wait` seconds (None: $OKR_SYNC_LOCK_WAIT_SECONDS, else 0)
    for a live holder to finish; `StoreLocked` when it is still held then."""
    wait = wait_from_env(env) if wait is None else wait
    postgres = engine.dialect.name == "postgresql"
    started = time.monotonic()
    while True:
        me = Holder(os.getpid(), socket.gethostname(), _now(), None if postgres else _now() + ttl, label,
                    uuid.uuid4().hex)
        lock, holder = _try_postgres(engine, me) if postgres else _try_lease(engine, me, ttl)
        if lock is not None:
            return lock
        waited = time.monotonic() - started
        if waited >= wait:
            raise StoreLocked(holder, waited, postgres)
        time.sleep(min(POLL_SECONDS, wait - waited))


def wait_from_env(env: Mapping[str, str]) -> float:
    """$OKR_SYNC_LOCK_WAIT_SECONDS as seconds (unset or empty: 0, do not wait)."""
    text = (env.get(LOCK_WAIT_ENV) or "").strip()
    try:
        seconds = float(text) if text else 0.0
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ConnectorConfigError(f"{LOCK_WAIT_ENV} must be a number of seconds (0 or more), got {text!r}")
    return seconds


def current_holder(engine: Engine) -> Holder | None:
    """The holder the store's row names (on SQLite perhaps a dead one whose lease the next run takes over)."""
    with engine.connect() as connection:
        row = connection.execute(select(_TABLE).where(_TABLE.c.name == LOCK_NAME)).first()
    return Holder.from_row(row) if row else None


def _try_lease(engine: Engine, me: Holder, ttl: timedelta) -> tuple[RunLock | None, Holder | None]:
    """SQLite (and any database without session locks): insert the lease, or take over a stale one."""
    row = current_holder(engine)
    values = {"name": LOCK_NAME, "token": me.token, "pid": me.pid, "host": me.host, "started_at": me.started_at,
              "expires_at": me.expires_at, "label": me.label}
    with _HELD_LOCK:  # a token goes into _HELD_HERE before another thread of this process can judge its row
        try:
            with engine.begin() as connection:
                if row is None:
                    connection.execute(insert(_TABLE).values(values))
                elif not _is_stale(row):
                    return None, row
                elif not connection.execute(update(_TABLE).where(
                        _TABLE.c.name == LOCK_NAME, _TABLE.c.token == row.token).values(values)).rowcount:
                    return None, current_holder(engine)  # another run took it over first
        except IntegrityError:  # another run inserted its lease first
            return None, current_holder(engine)
        _HELD_HERE.add(me.token)
    if row is not None:
        log.warning("took over the store's run lock from a run that is gone (%s)", row.describe())
    return RunLock(engine, me, ttl=ttl), None


def _try_postgres(engine: Engine, me: Holder) -> tuple[RunLock | None, Holder | None]:
    """PostgreSQL: the advisory lock on a connection of its own; then this run's row, for others' messages."""
    connection = engine.connect()
    try:
        taken = connection.execute(select(func.pg_try_advisory_lock(_lock_key()))).scalar()
        connection.commit()
        if not taken:
            connection.close()
            return None, _named_holder(engine)
        connection.execute(delete(_TABLE).where(_TABLE.c.name == LOCK_NAME))  # a dead holder's row, if any
        connection.execute(insert(_TABLE).values(name=LOCK_NAME, token=me.token, pid=me.pid, host=me.host,
                                                 started_at=me.started_at, label=me.label))
        connection.commit()
    except BaseException:
        connection.invalidate()  # ends the session, and any lock it took with it
        connection.close()
        raise
    with _HELD_LOCK:
        _HELD_HERE.add(me.token)
    return RunLock(engine, me, connection), None


def _named_holder(engine: Engine) -> Holder | None:
    """The holder's row; a holder that has just taken the lock writes it a moment later, so wait a little."""
    for _ in range(20):
        holder = current_holder(engine)
        if holder is not None:
            return holder
        time.sleep(0.05)
    return None


def _unlock(connection: Connection) -> None:
    try:
        connection.execute(select(func.pg_advisory_unlock(_lock_key())))
        connection.commit()
    except SQLAlchemyError:
        connection.invalidate()  # the session ends: the server drops its locks
    finally:
        connection.close()


def _is_stale(holder: Holder) -> bool:
    """Whether a lease's holder is gone (see the module docstring)."""
    if holder.expires_at is not None and holder.expires_at <= _now():
        return True
    if holder.host != socket.gethostname():
        return False
    if holder.pid == os.getpid():
        return holder.token not in _HELD_HERE
    return not _pid_alive(holder.pid)


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs here (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # no /proc (not Linux): the pid answered, take it as alive
        return True


def _lock_key() -> int:
    """The advisory lock's key: fixed, apart from the migrations' keys (connectors.migrations.runner)."""
    return zlib.crc32(f"okr_sync_run_lock:{LOCK_NAME}".encode())


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite gives datetimes back without their zone; the store keeps UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
