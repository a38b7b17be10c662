"""The store's run lock (connectors.run_lock): one holder at a time, a clear refusal, a bounded wait, and a
holder that died (SIGKILL) never blocks the next run.

The tests on `store_url` stores run on SQLite, and on PostgreSQL in the PostgreSQL pass of `make test`; the
lease's own rules (expiry, pids, heartbeat) are SQLite's and use SQLite files; the advisory lock's are
PostgreSQL's and run whenever the test server is there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.engine import Engine

from connectors import run_lock
from connectors.errors import ConnectorConfigError
from connectors.run_lock import StoreLocked
from connectors.store import RunLockHolder, make_engine
from tests.stores import new_postgres_database, postgres_server_url, store_url

ROOT = Path(__file__).resolve().parents[2]
TABLE = RunLockHolder.__table__  # type: ignore[attr-defined]
HOLDER = """
import sys, time
from connectors import run_lock
from connectors.store import make_engine
lock = run_lock.acquire(make_engine(sys.argv[1]), label="flow run held-by-a-test")
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(store_url(tmp_path))


def _sqlite(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'lease.db'}")


def _lease(engine: Engine, **values: object) -> None:
    now = datetime.now(UTC)
    row = {"name": run_lock.LOCK_NAME, "token": "theirs", "pid": 1, "host": "elsewhere", "started_at": now,
           "expires_at": now + timedelta(minutes=5), "label": None, **values}
    with engine.begin() as connection:
        connection.execute(insert(TABLE).values(row))


def test_a_run_takes_the_lock_names_itself_and_releases_it(engine: Engine) -> None:
    with run_lock.acquire(engine, label="flow run tidy-otter") as lock:
        holder = run_lock.current_holder(engine)
        assert holder is not None and holder.token == lock.holder.token
        assert (holder.pid, holder.host, holder.label) == (os.getpid(), socket.gethostname(), "flow run tidy-otter")
        assert abs(holder.started_at - datetime.now(UTC)) < timedelta(seconds=30)
    assert run_lock.current_holder(engine) is None
    run_lock.acquire(engine).release()  # free again


def test_a_second_run_is_refused_with_a_message_naming_the_first(engine: Engine) -> None:
    with run_lock.acquire(engine, label="flow run first-run"), pytest.raises(StoreLocked) as refused:
        run_lock.acquire(engine, wait=0)
    message = str(refused.value)
    assert message.startswith(f"another okr-sync run (flow run first-run, pid {os.getpid()} on host "
                              f"{socket.gethostname()}, started {datetime.now(UTC):%Y-%m-%d}")
    assert "holds the store's lock; this run stopped before syncing anything" in message
    assert run_lock.LOCK_WAIT_ENV in message
    assert refused.value.holder is not None and refused.value.holder.pid == os.getpid()


def test_a_waiting_run_starts_when_the_first_releases_the_lock(engine: Engine) -> None:
    first = run_lock.acquire(engine)
    threading.Timer(0.8, first.release).start()
    started = time.monotonic()
    second = run_lock.acquire(engine, wait=20)
    assert 0.7 <= time.monotonic() - started < 10
    assert run_lock.current_holder(engine).token == second.holder.token  # type: ignore[union-attr]
    second.release()


def test_the_wait_is_bounded(engine: Engine) -> None:
    with run_lock.acquire(engine):
        started = time.monotonic()
        with pytest.raises(StoreLocked, match="waited 1 s, then stopped"):
            run_lock.acquire(engine, wait=1.2)
        assert 1.2 <= time.monotonic() - started < 6


def test_the_lock_of_a_killed_run_is_free_for_the_next(tmp_path: Path) -> None:
    url = store_url(tmp_path)
    engine = make_engine(url)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreLocked, match=f"pid {holder.pid} on host"):
            run_lock.acquire(engine)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert run_lock.current_holder(engine).pid == holder.pid  # type: ignore[union-attr]  # its row is left
    started = time.monotonic()
    lock = run_lock.acquire(engine, wait=10)  # PostgreSQL: the server sees the connection close at once
    assert time.monotonic() - started < 5
    lock.release()


@pytest.mark.parametrize(("value", "seconds"), [(None, 0.0), ("", 0.0), ("30", 30.0), (" 2.5 ", 2.5)])
def test_the_wait_comes_from_the_environment(value: str | None, seconds: float) -> None:
    env = {} if value is None else {run_lock.LOCK_WAIT_ENV: value}
    assert run_lock.wait_from_env(env) == seconds


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_wait_names_the_variable(value: str) -> None:
    with pytest.raises(ConnectorConfigError, match=run_lock.LOCK_WAIT_ENV):
        run_lock.wait_from_env({run_lock.LOCK_WAIT_ENV: value})


# -- SQLite: the lease ------------------------------------------------------------------------------------

def test_a_live_lease_of_another_host_holds_until_it_expires(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    _lease(engine, expires_at=datetime.now(UTC) + timedelta(seconds=1))
    with pytest.raises(StoreLocked, match="pid 1 on host elsewhere.*lease expires at"):
        run_lock.acquire(engine)
    time.sleep(1.1)
    with run_lock.acquire(engine) as lock:  # expired: taken over
        assert run_lock.current_holder(engine).token == lock.holder.token  # type: ignore[union-attr]


def test_a_lease_whose_pid_is_gone_from_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _lease(engine, pid=gone.pid, host=socket.gethostname())
    with run_lock.acquire(engine) as lock:
        assert run_lock.current_holder(engine).pid == os.getpid() == lock.holder.pid  # type: ignore[union-attr]


def test_a_lease_of_a_live_process_on_this_host_holds(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lease(engine, pid=alive.pid, host=socket.gethostname())
        with pytest.raises(StoreLocked, match=f"pid {alive.pid}"):
            run_lock.acquire(engine)
        alive.kill()
        alive.wait()  # reaped: a zombie would still answer kill(pid, 0), and is treated as gone too
        run_lock.acquire(engine).release()
    finally:
        alive.kill()


def test_a_lease_naming_this_process_but_not_held_by_it_is_taken_over(tmp_path: Path) -> None:
    """A container restarted with the same pid finds its previous life's lease."""
    engine = _sqlite(tmp_path)
    _lease(engine, pid=os.getpid(), host=socket.gethostname(), token="before-the-restart")
    run_lock.acquire(engine).release()


def test_the_holder_renews_its_lease_and_notices_a_take_over(tmp_path: Path) -> None:
    engine = _sqlite(tmp_path)
    lock = run_lock.acquire(engine, ttl=timedelta(seconds=0.6))
    first = run_lock.current_holder(engine).expires_at  # type: ignore[union-attr]
    time.sleep(0.5)
    renewed = run_lock.current_holder(engine).expires_at  # type: ignore[union-attr]
    assert first is not None and renewed is not None and renewed > first
    with engine.begin() as connection:  # another run took it over (it found the lease expired)
        connection.execute(update(TABLE).values(token="thief"))
    time.sleep(0.4)
    assert lock.lost
    lock.release()  # leaves the other run's lease alone
    assert run_lock.current_holder(engine).token == "thief"  # type: ignore[union-attr]


# -- PostgreSQL: the advisory lock --------------------------------------------------------------------------

# Generated only beside a PostgreSQL server (`make test` always runs one), never skipped.
if postgres_server_url() is not None:
    def test_postgres_frees_the_lock_with_its_holders_session_whatever_the_row_says() -> None:
        engine = make_engine(new_postgres_database("okr_lock"))
        lock = run_lock.acquire(engine, label="flow run doomed")
        with engine.begin() as connection:  # the holder's session ends (a killed process, a dropped connection)
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))
        assert run_lock.current_holder(engine).label == "flow run doomed"  # type: ignore[union-attr]
        with run_lock.acquire(engine, wait=5, label="flow run next") as second:
            assert run_lock.current_holder(engine).token == second.holder.token  # type: ignore[union-attr]
        engine.dispose()
        del lock
