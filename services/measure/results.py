"""The learner's own measurements, read back from results/.

Every measuring command saves one JSON file under ``results/`` (git-ignored;
``$SECKILL_RESULTS_DIR`` moves it):

  * load tests (``seckill load``):   ``<ts>-<tier>.json``    {"summary", "invariants", "history", "machine"}
  * the bench (``make bench``):       ``bench-<ts>.json``     {"kind": "bench", "tiers", "ceilings", "drain", "confirms", ...}
  * failure labs (``seckill chaos``): ``chaos-<scenario>-<ts>.json``  {"kind": "chaos", "scenario", "ok", "metrics", ...}
  * interview rehearsals (notebook 90): ``rehearsal-<ts>.json``  {"kind": "rehearsal", "notes", "cards"}

Later notebooks (the capacity calculator, the interview rehearsal, the
checklist) quote these numbers instead of the seed's, so they read them here,
in one place: :func:`measured` gives the newest figure of each kind with the
file it came from, and :func:`figure` one named figure (``"t1_rps"``,
``"redis_ops"``, ``"failover_s"`` ...) with its file, or what to run when it
is missing. Any subset of files may be present, none included; a broken file
is skipped.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from seckill import room
from seckill.config import REPO_ROOT


def results_dir() -> Path:
    """Where runs are saved: $SECKILL_RESULTS_DIR, or results/ in the repository."""
    return Path(os.environ.get("SECKILL_RESULTS_DIR") or REPO_ROOT / "results").resolve()


def kind_of(record: dict) -> str:
    if "kind" in record:
        return str(record["kind"])
    return "load" if "summary" in record else "unknown"


def stamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def save(kind: str, name: str, record: dict[str, Any], directory: Path | None = None) -> Path:
    """Write ``record`` as results/<kind>-<name>-<ts>.json atomically; returns the path."""
    root = Path(directory) if directory else results_dir()
    root.mkdir(parents=True, exist_ok=True)
    record = {"kind": kind, "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpu_count": os.cpu_count()}, **record}
    base = f"{kind}-{name}-{stamp()}" if name else f"{kind}-{stamp()}"
    path = root / f"{base}.json"
    n = 1
    while path.exists():
        path, n = root / f"{base}-{n}.json", n + 1
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str, allow_nan=False))
    tmp.replace(path)
    if kind == "chaos":
        room.record("chaos", scenario=record.get("scenario") or name, ok=bool(record.get("ok")))
    elif kind in ("rehearsal", "bench"):
        room.record(kind)
    return path


def _when(record: dict) -> str:
    summary = record.get("summary") or {}
    return str(record.get("saved_at") or record.get("started_at") or summary.get("started_at") or "")


def all_records(directory: Path | str | None = None) -> list[dict]:
    """Every readable result file, newest first, each with "kind" and "path" filled in."""
    root = Path(directory) if directory else results_dir()
    records = []
    for path in root.glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue  # a half-written or hand-edited file must not break a notebook
        if isinstance(record, dict):
            record["kind"] = kind_of(record)
            record["path"] = str(path)
            records.append(record)
    records.sort(key=lambda r: (_when(r), r["path"]), reverse=True)
    return records


def newest(kind: str, directory: Path | str | None = None, **match) -> dict | None:
    """The newest record of ``kind`` whose top-level fields equal ``match``."""
    for record in all_records(directory):
        if record["kind"] == kind and all(record.get(k) == v for k, v in match.items()):
            return record
    return None


def measured(directory: Path | str | None = None) -> dict[str, Any]:
    """The newest figure of each kind, with its source file; empty sections when not measured yet.

    {"cpu_count": int | None,
     "tiers": {tier: {"requests_per_s", "p50_ms", "p99_ms", "source", "generator"}},
     "ceilings": {...}, "drain": {...}, "confirms": {...},   # from the newest bench
     "chaos": {scenario: {"ok", "metrics", "source"}}}

    Tier figures come from the newest bench when it has the tier (wrk, not
    limited by the load generator), else from the newest load test of that tier.
    """
    records = all_records(directory)
    out: dict[str, Any] = {"cpu_count": None, "tiers": {}, "ceilings": {}, "drain": {}, "confirms": {},
                           "chaos": {}, "bench_source": None}
    bench = next((r for r in records if r["kind"] == "bench"), None)
    if bench:
        out["bench_source"] = bench["path"]
        out["cpu_count"] = _dict(bench.get("machine")).get("cpu_count")
        for key in ("ceilings", "drain", "confirms"):
            out[key] = dict(_dict(bench.get(key)), source=bench["path"]) if _dict(bench.get(key)) else {}
        for row in bench.get("tiers") if isinstance(bench.get("tiers"), list) else []:
            if isinstance(row, dict) and row.get("tier"):
                out["tiers"][row["tier"]] = {k: row.get(k) for k in ("requests_per_s", "p50_ms", "p99_ms")} | {
                    "source": bench["path"], "generator": bench.get("generator")}
    for record in records:
        if record["kind"] == "load":
            summary = _dict(record.get("summary"))
            tier = summary.get("tier")
            if tier and tier not in out["tiers"]:
                out["tiers"][tier] = {k: summary.get(k) for k in ("requests_per_s", "p50_ms", "p99_ms")} | {
                    "source": record["path"], "generator": summary.get("generator")}
            out["cpu_count"] = out["cpu_count"] or summary.get("cpu_count")
        elif record["kind"] == "chaos":
            scenario = record.get("scenario")
            if scenario and scenario not in out["chaos"]:
                checks = [c for c in record.get("checks") or [] if isinstance(c, dict)]
                out["chaos"][scenario] = {"ok": record.get("ok"), "metrics": _dict(record.get("metrics")),
                                          "checks": checks, "title": record.get("title") or "",
                                          "source": record["path"]}
    return out


def _dict(value: Any) -> dict:
    """A section of a record, or {} when it is missing or not a mapping (a hand-edited file)."""
    return value if isinstance(value, dict) else {}


# -- single figures, by name -------------------------------------------------------------------
#
# The rehearsal script and the checklist quote figures by name. Each name says
# where in measured() the number lives (alternatives in order) and what to run
# to produce it when it is missing: a missing figure is never guessed.

BENCH = "make bench"
FIGURES: dict[str, tuple[tuple[tuple[str, ...], ...], str]] = {
    "cpu_count": ((("cpu_count",),), BENCH),
    "t0_rps": ((("tiers", "db-direct", "requests_per_s"),), BENCH),
    "t0_p99": ((("tiers", "db-direct", "p99_ms"),), BENCH),
    "t1_rps": ((("tiers", "flask", "requests_per_s"),), BENCH),
    "t1_p50": ((("tiers", "flask", "p50_ms"),), BENCH),
    "t1_p99": ((("tiers", "flask", "p99_ms"),), BENCH),
    "t2_rps": ((("tiers", "flask-x4", "requests_per_s"),), BENCH),
    "t3_rps": ((("tiers", "fastapi", "requests_per_s"),), BENCH),
    "t3_p99": ((("tiers", "fastapi", "p99_ms"),), BENCH),
    "t4_rps": ((("tiers", "local-stock", "requests_per_s"),), BENCH),
    "redis_ops": ((("ceilings", "redis_lua_ops_per_s"),), BENCH),
    "pg_tx": ((("ceilings", "postgres_tx_per_s"),), BENCH),
    "nginx_rps": ((("ceilings", "nginx_return_200_rps"),), BENCH),
    "drain_batched": ((("drain", "batched_orders_per_s"),), BENCH),
    "drain_one": ((("drain", "one_per_tx_orders_per_s"),), BENCH),
    "drain_ratio": ((("drain", "ratio"),), BENCH),
    "confirms_pipelined": ((("confirms", "pipelined_per_s"),), BENCH),
    "confirms_per_request": ((("confirms", "per_request_per_s"),), BENCH),
    "confirms_ratio": ((("confirms", "ratio"),), BENCH),
    "failover_s": ((("chaos", "redis-failover", "metrics", "failover_s"),
                    ("chaos", "redis-failover", "metrics", "failover_seconds")), "seckill chaos redis-failover"),
    "backlog_depth": ((("chaos", "backlog", "metrics", "peak_depth"),
                       ("chaos", "backlog", "metrics", "max_queue_depth")), "seckill chaos backlog"),
    "backlog_drain": ((("chaos", "backlog", "metrics", "drain_per_s"),), "seckill chaos backlog"),
}


@dataclass(frozen=True)
class Figure:
    """One quoted number: its value (None when not measured yet), the file it came from, what produces it."""
    name: str
    value: float | int | None
    source: str | None
    how: str

    @property
    def known(self) -> bool:
        return self.value is not None


def _source_of(measured: dict, path: tuple[str, ...]) -> str | None:
    """The file behind the figure at ``path``: the innermost section on the way that names one."""
    node: Any = measured
    source = None
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and node.get("source"):
            source = node["source"]
    if source is None and path == ("cpu_count",):
        source = measured.get("bench_source")
    return source


def figure(measured: dict, name: str) -> Figure:
    """The figure ``name`` of FIGURES from a measured() result; value None when missing or not a number."""
    if name not in FIGURES:
        raise KeyError(f"no figure called {name!r}; known: {', '.join(FIGURES)}")
    paths, how = FIGURES[name]
    for path in paths:
        node: Any = measured
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, bool) or not isinstance(node, (int, float)) or node != node or node < 0:
            continue  # missing, NaN, negative or not a number: not a measurement we can quote
        return Figure(name, node, _source_of(measured, path), how)
    return Figure(name, None, None, how)


def number(value: float | int) -> str:
    """How every quoted figure is written: 12,345 · 87.5 · 2.25 (so a reader and a test see the same text)."""
    if abs(value) >= 100:
        return f"{round(value):,}"
    text = f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
