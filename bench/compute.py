"""Compute time of the 50 KRs of bench/compute_krs.yaml over N deals and 2N activities, on SQLite and PostgreSQL.

The store is written directly (bench.compute_store: no sandbox, no connectors). SQLite: "cold" is a
new engine with the store's pages dropped from the OS cache first (posix_fadvise DONTNEED), "warm"
the same engine again. PostgreSQL (a database of its own, created and dropped on the server given
by --pg-url): "first" is a new engine (the server's buffers may still hold the pages: it is no cold
figure), "warm" the same engine again. The KRs mix sums, counts, averages, count_distinct, ratios,
medians and percentiles, period-over-period targets, per-owner and per-team breakdowns, and the
pipeline forecasts with confidence, as of 2026-11-27.
"""

from __future__ import annotations

import os
import statistics
import time
import tracemalloc
from datetime import date
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url

from bench.common import Context, log, not_measured, stamp
from bench.compute_store import AS_OF, CONFIG_PATH, SOURCE, QueryLog, _drop_os_cache, build_store, fill_store
from connectors.store import make_engine
from okr_mapping import compute_key_results
from okr_mapping.loader import load_config

COMMAND = ".venv/bin/python -m bench --only compute --sizes {size}"
OWNERS, SEED = 200, 7


def run(ctx: Context, sizes: list[int]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    repeat = 1 if ctx.quick else 3
    for deals in sizes:
        for backend in ("sqlite", "postgresql"):
            key = f"{backend}/{deals}"
            late = ctx.too_late()
            if late:
                figures[key] = not_measured(late)
            elif backend == "postgresql" and not ctx.pg_url:
                figures[key] = not_measured("no PostgreSQL server given (--pg-url)")
            else:
                log(f"compute {deals}: {backend}")
                measure = sqlite if backend == "sqlite" else postgresql
                figures[key] = measure(ctx, deals, repeat)
    return figures


def _compute(engine: Engine, config: Any) -> list[Any]:
    return compute_key_results(engine, config, source=SOURCE, as_of=AS_OF)


def _timings(new_engine: Any, config: Any, repeat: int, before_first: Any) -> dict[str, Any]:
    first: list[float] = []
    first_cpu: list[float] = []
    queries = 0
    results: list[Any] = []
    for _ in range(repeat):
        before_first()
        engine = new_engine()
        queries_log = QueryLog(engine)
        started, cpu = time.perf_counter(), time.process_time()
        results = _compute(engine, config)
        first.append(time.perf_counter() - started)
        first_cpu.append(time.process_time() - cpu)
        queries = queries_log.count
        engine.dispose()
    engine = new_engine()
    _compute(engine, config)
    warm, warm_cpu = [], []
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        _compute(engine, config)
        warm.append(time.perf_counter() - started)
        warm_cpu.append(time.process_time() - cpu)
    tracemalloc.start()
    _compute(engine, config)
    traced = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    engine.dispose()
    krs = sum(len(objective.key_results) for objective in config.objectives)
    return {"krs": krs, "kr_results": len(results), "queries": queries, "repeat": repeat,
            "first_min": round(min(first), 2), "first_median": round(statistics.median(first), 2),
            "warm_min": round(min(warm), 2), "warm_median": round(statistics.median(warm), 2),
            "first_cpu_median": round(statistics.median(first_cpu), 2),
            "warm_cpu_median": round(statistics.median(warm_cpu), 2),
            "peak_python_alloc_mb": round(traced, 1)}


def sqlite(ctx: Context, deals: int, repeat: int) -> dict[str, Any]:
    config = load_config(CONFIG_PATH)
    path = ctx.cache / f"krs-{deals}.db"
    generated, note = build_store(path, deals, 2 * deals, OWNERS, SEED)
    size_mb = sum(f.stat().st_size for f in path.parent.glob(f"{path.name}*")) / 1e6
    when = stamp()
    figure = _timings(lambda: make_engine(f"sqlite:///{path}"), config, repeat, lambda: _drop_os_cache(path))
    return {"backend": "sqlite", "deals": deals, "activities": 2 * deals, "store_mb": round(size_mb),
            "generated_seconds": None if generated is None else round(generated), "store": note, "as_of": str(AS_OF),
            **figure, "command": COMMAND.format(size=deals), **when}


def postgresql(ctx: Context, deals: int, repeat: int) -> dict[str, Any]:
    config = load_config(CONFIG_PATH)
    server = make_url(ctx.pg_url)  # type: ignore[arg-type]
    name = f"bench_krs_{os.getpid()}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        started = time.perf_counter()
        engine = make_engine(url)
        fill_store(engine, deals, 2 * deals, OWNERS, SEED)
        engine.dispose()
        loaded = time.perf_counter() - started
        when = stamp()
        figure = _timings(lambda: make_engine(url), config, repeat, lambda: None)
        with admin.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar_one()
            size = conn.exec_driver_sql(f"SELECT pg_database_size('{name}')").scalar_one()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
    return {"backend": "postgresql", "server_version": version, "deals": deals, "activities": 2 * deals,
            "store_mb": round(size / 1e6), "generated_seconds": round(loaded), "as_of": str(date.isoformat(AS_OF)),
            **figure, "command": COMMAND.format(size=deals) + " --pg-url URL", **when}
