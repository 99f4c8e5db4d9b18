"""Hand-made result files of every kind (the schemas the measuring commands write), for tests.

The rehearsal, the checklist and seckill.measure.results must work with any subset of
results/ — none, some, all, and a broken file among them — so the tests write
these into a temporary SECKILL_RESULTS_DIR instead of running the whole system.
The figures are deliberately odd (1,234.5 req/s) so a test can tell a quoted
record from an invented number.
"""

from __future__ import annotations

import json
from pathlib import Path

LOAD_FLASK_OLD = {
    "summary": {"tier": "flask", "requests_per_s": 999.9, "p50_ms": 40.1, "p99_ms": 310.7, "cpu_count": 2,
                "started_at": "2025-12-01T08:00:00+00:00", "generator": "locust"},
    "invariants": {"oversold": 0, "lost": 0, "duplicate_users": 0, "ok": True},
}
LOAD_FLASK = {
    "summary": {"tier": "flask", "requests_per_s": 1234.5, "p50_ms": 12.5, "p99_ms": 87.25, "cpu_count": 2,
                "started_at": "2025-12-03T10:10:10+00:00", "generator": "locust"},
    "invariants": {"oversold": 0, "lost": 0, "duplicate_users": 0, "ok": True},
}
LOAD_FASTAPI = {  # also in the bench: the bench's figure must win
    "summary": {"tier": "fastapi", "requests_per_s": 111.1, "p50_ms": 1.5, "p99_ms": 9.5, "cpu_count": 2,
                "started_at": "2025-12-03T12:00:00+00:00", "generator": "locust"},
    "invariants": {"oversold": 0, "lost": 0, "duplicate_users": 0, "ok": True},
}
BENCH = {
    "kind": "bench", "saved_at": "2025-12-03T11:11:11+00:00", "generator": "wrk",
    "tiers": [
        {"tier": "db-direct", "requests_per_s": 456.7, "p50_ms": 210.5, "p99_ms": 1234.5, "successes": 400,
         "oversold": 0, "lost": 0, "vs_t1": 0.37, "vs_t0": 1.0},
        {"tier": "flask-x4", "requests_per_s": 4321.5, "p50_ms": 9.5, "p99_ms": 45.5, "successes": 500,
         "oversold": 0, "lost": 0, "vs_t1": 3.5, "vs_t0": 9.46},
        {"tier": "fastapi", "requests_per_s": 9876.4, "p50_ms": 3.5, "p99_ms": 23.5, "successes": 500,
         "oversold": 0, "lost": 0, "vs_t1": 8.0, "vs_t0": 21.63},
    ],
    "ceilings": {"nginx_return_200_rps": 23456.7, "redis_lua_ops_per_s": 85432.1, "postgres_tx_per_s": 1876.5},
    "drain": {"batched_orders_per_s": 6543.2, "one_per_tx_orders_per_s": 765.4, "ratio": 8.55},
    "confirms": {"per_request_per_s": 543.2, "pipelined_per_s": 7654.3, "ratio": 14.09},
    "machine": {"cpu_count": 2},
}
CHAOS = {
    "race": {"kind": "chaos", "scenario": "race", "title": "naive check-then-set vs Lua", "ok": True,
             "saved_at": "2025-12-03T13:00:00+00:00",
             "checks": [{"name": "Lua path never oversells", "held": True, "detail": "oversold 0 of 20"}],
             "metrics": {"stock": 20, "buyers": 200, "naive_oversold": 37, "atomic_oversold": 0}},
    "redis-failover": {"kind": "chaos", "scenario": "redis-failover", "title": "primary killed", "ok": True,
                       "saved_at": "2025-12-03T13:10:00+00:00",
                       "checks": [{"name": "nothing oversold", "held": True, "detail": ""}],
                       "metrics": {"failover_s": 11.7, "leaked": 0}},
    "mq-down": {"kind": "chaos", "scenario": "mq-down", "title": "RabbitMQ stopped mid-sale", "ok": False,
                "saved_at": "2025-12-03T13:20:00+00:00",
                "checks": [{"name": "no order lost", "held": False, "detail": "lost 3"},
                           {"name": "nothing oversold", "held": True, "detail": ""}],
                "metrics": {"tier": "flask", "down_s": 6.5, "answers_503": 412}},
    "backlog": {"kind": "chaos", "scenario": "backlog", "title": "order service stopped", "ok": True,
                "saved_at": "2025-12-03T13:30:00+00:00",
                "checks": [{"name": "alert fired", "held": True, "detail": "depth 5123 > 1000"}],
                "metrics": {"tier": "flask", "threshold": 1000, "peak_depth": 5123, "drain_per_s": 2345.6}},
}
PROGRESS = {
    "stock": {"passed": True, "score": "6/6", "date": "2025-12-04T09:00:00+00:00", "impl": "labs"},
    "token_bucket": {"passed": True, "score": "5/5", "date": "2025-12-04T09:10:00+00:00", "impl": "solutions"},
    "producer": {"passed": False, "score": "2/4", "date": "2025-12-04T09:20:00+00:00", "impl": "labs"},
}


def write(directory: Path, name: str, record: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(record))
    return path


def write_all(directory: Path) -> Path:
    """Every kind of record, plus two broken files that must be skipped; returns the directory."""
    write(directory, "20251201-080000-flask.json", LOAD_FLASK_OLD)
    write(directory, "20251203-101010-flask.json", LOAD_FLASK)
    write(directory, "20251203-120000-fastapi.json", LOAD_FASTAPI)
    write(directory, "bench-20251203-111111.json", BENCH)
    for scenario, record in CHAOS.items():
        write(directory, f"chaos-{scenario}-20251203-1300.json", record)
    (directory / "bench-half-written.json").write_text('{"kind": "bench", "tiers": [')
    (directory / "notes.json").write_text('["a list, not a record"]')
    return directory


def numbers_in_records(directory: Path, extra: dict | None = None) -> set[str]:
    """Every number a record holds (as quoted by seckill.measure.results.number, and as written in its strings)."""
    from seckill.course import rehearsal
    from seckill.measure import results

    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, bool):
            return
        elif isinstance(node, (int, float)):
            found.add(results.number(node).replace(",", ""))
        elif isinstance(node, str):
            found.update(rehearsal.numbers_in(node))

    for path in directory.glob("*.json"):
        try:
            walk(json.loads(path.read_text()))
        except ValueError:
            pass
    walk(extra or {})
    return found
