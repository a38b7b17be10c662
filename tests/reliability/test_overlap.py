"""Issue 7, overlap: two `okr-sync run`s of one store started at once; one syncs, the other waits or stops.

The store's run lock (connectors.run_lock) is taken before any CRM request. To make the overlap certain,
not a matter of timing, the sandbox holds the first OKR write of the run that got the lock
(connectors.sandbox.holds) until the other one has tried. Each test has an identical copy of one small org
(sync_runs.SPEC) and compares the CRMs' requests with a single run's on another copy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors import run_lock
from connectors.sandbox.holds import okr_write
from connectors.sandbox.server import CRMS
from connectors.store import make_engine
from tests.flows.conftest import DEMO, okr_sync
from tests.reliability.sync_runs import (
    copied_org,
    finished_run,
    kill,
    okr_records,
    okr_write_requests,
    pristine_org,
    start_run,
    wait_held,
)
from tests.stores import store_url

pytestmark = pytest.mark.integration
Single = tuple[dict[str, int], dict[str, int], dict[tuple[str, str], dict[str, dict]]]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pristine_org(tmp_path_factory.mktemp("overlap-org") / "org")


@pytest.fixture(scope="module")
def single(pristine: Path, tmp_path_factory: pytest.TempPathFactory, cli_env: dict[str, str]) -> Single:
    """One run alone on an identical org: its requests and OKR write requests per CRM, and the OKR records."""
    directory = tmp_path_factory.mktemp("overlap-single")
    with copied_org(pristine, directory / "org") as org:
        code, _report, stderr = finished_run({**cli_env, **org.connection_env()}, store_url(directory))
        assert code == 0, stderr[-4000:]
        return {crm: org.calls(crm) for crm in CRMS}, okr_write_requests(org), okr_records(org)


def _until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.02)


def _report(log: Path) -> dict:
    text = log.read_text(errors="replace")
    return json.loads(text[text.index("{\n"):text.rindex("\n}") + 2])


def test_of_two_runs_at_once_one_syncs_and_the_other_stops_naming_it(
        pristine: Path, single: Single, tmp_path: Path, cli_env: dict[str, str]) -> None:
    with copied_org(pristine, tmp_path / "org") as org:
        env, url = {**cli_env, **org.connection_env()}, store_url(tmp_path)
        hold = org.hold("salesforce", 0, okr_write)  # the run with the lock waits there until the other has tried
        runs = [start_run(env, url, tmp_path / f"run-{n}.log") for n in (1, 2)]
        _until(lambda: any(run.poll() is not None for run in runs), 120, "one run stopped")
        (stopped,) = [n for n, run in enumerate(runs) if run.poll() is not None]
        going = runs[1 - stopped]
        message = (tmp_path / f"run-{stopped + 1}.log").read_text(errors="replace")
        assert runs[stopped].returncode == 1, message
        assert "another okr-sync run (flow run " in message and "holds the store's lock" in message
        assert f"pid {going.pid} on host " in message and "Traceback" not in message
        wait_held(hold, going, tmp_path / f"run-{2 - stopped}.log")
        hold.release()
        assert going.wait(timeout=120) == 0, (tmp_path / f"run-{2 - stopped}.log").read_text(errors="replace")
        # The stopped run sent nothing to either CRM: every request, and every OKR write, is the other's
        assert {crm: org.calls(crm) for crm in CRMS} == single[0]
        assert okr_write_requests(org) == single[1]
        assert okr_records(org) == single[2]
        assert run_lock.current_holder(make_engine(url)) is None


def test_a_run_that_may_wait_runs_after_the_first_and_finds_nothing_to_write(
        pristine: Path, single: Single, tmp_path: Path, cli_env: dict[str, str]) -> None:
    with copied_org(pristine, tmp_path / "org") as org:
        env = {**cli_env, **org.connection_env(), run_lock.LOCK_WAIT_ENV: "120"}
        url = store_url(tmp_path)
        engine = make_engine(url)
        hold = org.hold("salesforce", 0, okr_write)
        runs = [start_run(env, url, tmp_path / f"run-{n}.log") for n in (1, 2)]
        hold.wait(120)
        holder = run_lock.current_holder(engine)
        assert holder is not None and holder.pid in {run.pid for run in runs}
        first = next(n for n, run in enumerate(runs) if run.pid == holder.pid)
        time.sleep(1.5)  # the other keeps waiting (it polls the lock twice a second)
        assert runs[1 - first].poll() is None
        hold.release()
        assert [run.wait(timeout=180) for run in runs] == [0, 0]
        second = _report(tmp_path / f"run-{2 - first}.log")
        for crm_run in second["runs"]:
            assert crm_run["records_extracted"] == 0 and crm_run["error"] is None
            assert {name: crm_run["writeback"][name] for name in ("created", "updated", "failed")} == {
                "created": 0, "updated": 0, "failed": 0}
        assert okr_write_requests(org) == single[1]  # the OKR records were written once
        assert okr_records(org) == single[2]
        assert run_lock.current_holder(engine) is None
        engine.dispose()


def test_a_lock_left_by_a_killed_run_does_not_block_the_next_run(
        pristine: Path, single: Single, tmp_path: Path, cli_env: dict[str, str]) -> None:
    with copied_org(pristine, tmp_path / "org") as org:
        env, url = {**cli_env, **org.connection_env()}, store_url(tmp_path)
        engine = make_engine(url)
        hold = org.hold("hubspot", 3)
        run = start_run(env, url, tmp_path / "killed.log")
        wait_held(hold, run, tmp_path / "killed.log")
        kill(run)
        hold.release(deliver=False)
        left = run_lock.current_holder(engine)
        assert left is not None and left.pid == run.pid  # the dead run's row is still there
        started = time.monotonic()
        code, report, stderr = finished_run(env, url)  # no wait for the lock: it must be free at once
        assert code == 0, stderr[-4000:]
        assert report is not None and time.monotonic() - started < 120
        assert okr_records(org) == single[2]
        assert run_lock.current_holder(engine) is None
        engine.dispose()


def test_a_bad_lock_wait_is_bad_input(tmp_path: Path, cli_env: dict[str, str]) -> None:
    env = {**cli_env, "HUBSPOT_ACCESS_TOKEN": "not-used", run_lock.LOCK_WAIT_ENV: "soon"}
    done = okr_sync(env, "run", "--config", str(DEMO), "--source", "hubspot", "--database-url", store_url(tmp_path))
    assert done.returncode == 2 and run_lock.LOCK_WAIT_ENV in done.stderr and "Traceback" not in done.stderr
