"""The learner's own measurements, read back from results/.

Every measuring command saves one JSON file under ``results/`` (git-ignored;
``$SECKILL_RESULTS_DIR`` moves it):

  * load tests (``seckill load``):   ``<ts>-<tier>.json``    {"summary", "invariants", "history", "machine"}
  * the bench (``make bench``):       ``bench-<ts>.json``     {"kind": "bench", "tiers", "ceilings", "drain", "confirms", ...}
  * failure labs (``seckill chaos``): ``chaos-<scenario>-<ts>.json``  {"kind": "chaos", "scenario", "ok", "metrics", ...}

Later notebooks (the capacity calculator, the interview rehearsal, the
checklist) quote these numbers instead of the seed's, so they read them here,
in one place: :func:`measured` gives the newest figure of each kind with the
file it came from.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config import REPO_ROOT


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
        out["cpu_count"] = (bench.get("machine") or {}).get("cpu_count")
        for key in ("ceilings", "drain", "confirms"):
            out[key] = dict(bench.get(key) or {}, source=bench["path"]) if bench.get(key) else {}
        for row in bench.get("tiers") or []:
            out["tiers"][row["tier"]] = {k: row.get(k) for k in ("requests_per_s", "p50_ms", "p99_ms")} | {
                "source": bench["path"], "generator": bench.get("generator")}
    for record in records:
        if record["kind"] == "load":
            summary = record.get("summary") or {}
            tier = summary.get("tier")
            if tier and tier not in out["tiers"]:
                out["tiers"][tier] = {k: summary.get(k) for k in ("requests_per_s", "p50_ms", "p99_ms")} | {
                    "source": record["path"], "generator": summary.get("generator")}
            out["cpu_count"] = out["cpu_count"] or summary.get("cpu_count")
        elif record["kind"] == "chaos":
            scenario = record.get("scenario")
            if scenario and scenario not in out["chaos"]:
                out["chaos"][scenario] = {"ok": record.get("ok"), "metrics": record.get("metrics") or {},
                                          "source": record["path"]}
    return out
