"""What every benchmark shares: the org of each size, the sandbox in its own process, child processes
whose peak RSS is read by the parent, the machine and its load.

The sandbox runs in a child process (`python -m bench.serve`), driven by one JSON command per line,
so that a sync measured in another child process (`python -m bench.sync_child`) shares neither its
memory nor its interpreter lock with the emulator.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ANCHOR = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)  # the generated org's "now"
SEED = 11
CRMS = ("salesforce", "hubspot")


def org_spec(deals: int) -> Any:
    """The org of `deals` deals: owners, accounts, activities, leads and cases in proportion
    (3 calls, 2 emails, 1 meeting and about 1.6 line items per deal; a lead per two deals; an account
    per five deals, 1.5 cases per account; an owner per hundred deals)."""
    from connectors.sandbox.generator import OrgSpec

    return OrgSpec(seed=SEED, deals=deals, owners=max(10, deals // 100), accounts=max(50, deals // 5), anchor=ANCHOR)


def seeded_org(deals: int, cache: Path) -> tuple[Path, float | None]:
    """The sandbox directory of the org of `deals` deals, generated once into `cache`; returns the
    directory and the seconds generating took (None when it was already there)."""
    from connectors.sandbox.state import open_sandbox

    path = cache / f"org-{deals}"
    with open(cache / f"org-{deals}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel runs of the runner share the cache
        if (path / ".seeded").exists():
            return path, None
        shutil.rmtree(path, ignore_errors=True)
        started = time.perf_counter()
        open_sandbox(path, org_spec(deals)).close()
        seconds = time.perf_counter() - started
        (path / ".seeded").write_text(f"{seconds:.1f}\n")
    return path, seconds


def fresh_copy(org: Path, dest: Path) -> Path:
    """A private copy of a seeded org (a sync's writes and a 1% change must not leak into other runs)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(org, dest)
    return dest


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def stamp() -> dict[str, Any]:
    """When a figure was taken and how busy the machine was (1, 5, 15 min load averages)."""
    return {"at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "load": load_average()}


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return {"cpus": os.cpu_count(), "cpu_model": model, "ram_gb": round(mem_gb, 1),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "os": f"{platform.system()} {platform.release()}"}


@dataclass
class ChildResult:
    output: dict[str, Any]
    peak_rss_mb: float
    seconds: float


def run_child(module: str, args: list[str], env: dict[str, str] | None = None) -> ChildResult:
    """Run `python -m module args` and return its last stdout line (JSON) and its own peak RSS
    (os.wait4 reports the rusage of that one child, so the runner's memory is not mixed in)."""
    started = time.perf_counter()
    proc = subprocess.Popen([PYTHON, "-m", module, *args], cwd=ROOT, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed (exit {os.waitstatus_to_exitcode(status)})")
    lines = [line for line in out.splitlines() if line.strip()]
    return ChildResult(json.loads(lines[-1]), usage.ru_maxrss / 1024, seconds)


class SandboxProcess:
    """The sandbox of one org directory served by a child process; `command` sends it one request."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = subprocess.Popen([PYTHON, "-m", "bench.serve", str(data_dir)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.env: dict[str, str] = self._read()

    def _read(self) -> Any:
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        if not line:
            raise RuntimeError("the sandbox process ended")
        return json.loads(line)

    def command(self, name: str, **args: Any) -> Any:
        self.proc.stdin.write(json.dumps({"command": name, **args}) + "\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"sandbox command {name} failed: {answer['error']}")
        return answer["result"]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(RuntimeError, BrokenPipeError, OSError):
                self.command("stop")
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sync_in_child(sandbox: SandboxProcess, crm: str, store: Path, *, throttled: bool,
                  extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """One sync of every stream of `crm` into the SQLite store at `store`, in a child process;
    `throttled` False lifts the HubSpot client's own rate limiter (calls are the same, only waits go)."""
    args = ["--crm", crm, "--store", f"sqlite:///{store}"] + ([] if throttled else ["--unthrottled"])
    result = run_child("bench.sync_child", args, env={**sandbox.env, **(extra_env or {})})
    return {**result.output, "peak_rss_mb": round(result.peak_rss_mb, 1), "process_seconds": result.seconds}


@dataclass
class Context:
    """One run of the runner: where orgs and stores go, what is quick, when to stop starting work."""

    workdir: Path  # scratch (stores, org copies); removed by the runner
    cache: Path  # seeded orgs, kept across runs (--cache)
    quick: bool = False
    deadline: datetime | None = None  # no measurement starts after this (UTC)
    max_minutes: float = 30.0  # a measurement estimated to take longer is not started
    pg_url: str | None = None  # PostgreSQL server for the compute benchmark (a database is created and dropped)
    crms: tuple[str, ...] = CRMS  # the CRMs whose syncs are measured (the others' figures are kept)
    memo: dict[Any, Any] | None = None

    def cached(self, key: Any, compute: Any) -> Any:
        if self.memo is None:
            self.memo = {}
        if key not in self.memo:
            self.memo[key] = compute()
        return self.memo[key]

    def too_late(self) -> str | None:
        """Why a measurement must not start now, or None."""
        if self.deadline is not None and datetime.now(UTC) >= self.deadline:
            return f"not started: past the run's deadline {self.deadline:%H:%M} UTC"
        return None


def not_measured(reason: str) -> dict[str, Any]:
    return {"not_measured": reason, **stamp()}


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)
