"""Run the benchmarks against the sandbox and rewrite BENCHMARKS.md from bench/results.json.

    .venv/bin/python -m bench                                   # everything, 10,000 / 100,000 / 1,000,000 deals
    .venv/bin/python -m bench --only calls,writeback --sizes 10000
    .venv/bin/python -m bench --quick                           # a smoke run on a tiny org, into a temp dir

Each benchmark (calls, memory, ratelimit, compute, writeback, naive) is a module of this package with
a `run(ctx, sizes)` returning its figures. Figures are merged into the results file (a benchmark or
size not run this time keeps its previous figures) and BENCHMARKS.md is rendered from that file
after each benchmark, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import argparse
import fcntl
import importlib
import json
import os
import shutil
import sys
import tempfile
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from bench.common import CRMS, ROOT, Context, log, machine
from bench.render import render

BENCHMARKS = ("calls", "memory", "ratelimit", "compute", "writeback", "naive")
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (300,)
RESULTS = ROOT / "bench" / "results.json"
MARKDOWN = ROOT / "BENCHMARKS.md"


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def _only(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    return names


def _crms(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = sorted(set(names) - set(CRMS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown CRM(s) {', '.join(unknown) or text!r}; known: {', '.join(CRMS)}")
    return names


def _deadline(text: str) -> datetime:
    """HH:MM (UTC, today) or an ISO datetime."""
    if len(text) <= 5:
        return datetime.combine(datetime.now(UTC).date(), time.fromisoformat(text), tzinfo=UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=None,
                        help="deals per org, comma-separated (default 10000,100000,1000000; --quick: 300)")
    parser.add_argument("--only", type=_only, default=list(BENCHMARKS),
                        help=f"benchmarks to run, comma-separated (default all: {','.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: tiny org, one repetition, results and markdown in a temp dir")
    parser.add_argument("--results", type=Path, default=None, help=f"results file (default {RESULTS})")
    parser.add_argument("--markdown", type=Path, default=None, help=f"markdown rendered (default {MARKDOWN})")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "okr-sync-bench-cache",
                        help="where generated orgs and compute stores are kept between runs")
    parser.add_argument("--crms", type=_crms, default=CRMS,
                        help=f"CRMs whose syncs run, comma-separated (default all: {','.join(CRMS)})")
    parser.add_argument("--deadline", type=_deadline, default=None,
                        help="HH:MM UTC: start no measurement after it (recorded as not measured)")
    parser.add_argument("--max-minutes", type=float, default=30.0,
                        help="do not start a measurement estimated to take longer (default 30)")
    parser.add_argument("--pg-url", default=os.environ.get("OKR_SYNC_BENCH_PG_URL"),
                        help="PostgreSQL server for the compute benchmark (default $OKR_SYNC_BENCH_PG_URL); "
                             "a database bench_krs_<pid> is created there and dropped")
    args = parser.parse_args(argv)
    if args.quick:
        scratch = Path(tempfile.gettempdir()) / "okr-sync-bench-quick"
        args.results = args.results or scratch / "results.json"
        args.markdown = args.markdown or scratch / "BENCHMARKS.md"
        args.sizes = args.sizes or list(QUICK_SIZES)
    args.results = args.results or RESULTS
    args.markdown = args.markdown or MARKDOWN
    args.sizes = args.sizes or list(DEFAULT_SIZES)
    return args


def merge(path: Path, name: str, figures: dict[str, Any]) -> dict[str, Any]:
    """Add one benchmark's figures to the results file (under a lock: runs may go in parallel). A figure
    not measured this time (deadline, budget) leaves an earlier measurement of the same key in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)  # the lock: the file's folder, so no lock file is left
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        results = json.loads(path.read_text()) if path.exists() else {}
        results["machine"] = machine()
        section = results.setdefault("figures", {}).setdefault(name, {})
        for key, figure in figures.items():
            if "not_measured" in figure and key in section and "not_measured" not in section[key]:
                continue  # not measured this time: the earlier measurement stands
            section[key] = figure
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
        temporary.replace(path)
    finally:
        os.close(folder)  # releases the lock
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="okr-sync-bench-"))
    ctx = Context(workdir=workdir, cache=args.cache, quick=args.quick, deadline=args.deadline,
                  max_minutes=args.max_minutes, pg_url=args.pg_url, crms=args.crms)
    try:
        for name in BENCHMARKS:
            if name not in args.only:
                continue
            log(f"{name}: sizes {', '.join(f'{size:,}' for size in args.sizes)}")
            figures = importlib.import_module(f"bench.{name}").run(ctx, args.sizes)
            results = merge(args.results, name, figures)
            args.markdown.write_text(render(results))
            log(f"{name}: done, {args.markdown} rewritten")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
