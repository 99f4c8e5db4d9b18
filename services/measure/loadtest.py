"""Load-test a tier with locust, then check the sale's promises; every run is saved.

    from seckill.measure import loadtest, charts
    result = loadtest.run("flask", product_id=1, users=2000, spawn_rate=500, duration_s=30, stock=1000)
    charts.throughput_latency(result)

Locust runs in CHILD processes (``python -m locust --headless ...``): its gevent
monkey-patching must never touch the notebook kernel or the CLI. With
``processes=N > 1`` locust forks N worker processes under one master (``--processes``),
so the load generator itself is not limited to one core; the default is the
machine's core count, capped at 2 (the gateway needs cores too).

Bounded: users, spawn rate and duration are required, every simulated user
sends ``requests_per_user`` requests and stops, and the locust processes are
killed at duration + 30 s whatever happens.

After locust ends we wait for the queue to drain and ask the same questions as
every other test (seckill.measure.invariants): nothing oversold, no confirmed order
lost, nobody bought twice, PostgreSQL holds exactly the orders users were told
about. The run is saved as ``results/<timestamp>-<tier>.json`` (set
SECKILL_RESULTS_DIR to save elsewhere), with the raw locust files in the folder
of the same name, so later notebooks quote your own numbers.
"""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from seckill.measure.results import results_dir
from seckill.stack import db
from seckill.measure import invariants
from seckill import room, stack
from seckill.measure.store_sampler import StoreSampler
from seckill.config import settings
from seckill.errors import SeckillError

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
GENERATOR = "locust FastHttpUser"
OUTCOMES = ("success", "sold_out", "already_bought", "limited", "client_error", "server_error", "failed")
HISTORY_COLUMNS = ("time_s", "requests_per_s", "failures_per_s", "p50_ms", "p95_ms", "p99_ms", "users")
KILL_AFTER_S = 30.0  # beyond the requested duration
MAX_DURATION_S = 3600.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class LoadTestError(SeckillError):
    """A load test cannot start or produced nothing; the message says what to do."""


@dataclass
class LoadResult:
    history: pd.DataFrame
    summary: dict
    invariants: dict
    path: Path
    stores: pd.DataFrame = field(default_factory=pd.DataFrame)  # see store_sampler.py

    @property
    def ok(self) -> bool:
        return bool(self.invariants.get("ok"))

    def __repr__(self) -> str:
        s, inv = self.summary, self.invariants
        return (f"LoadResult({s['tier']}: {s['requests']} requests, {s['requests_per_s']} req/s, "
                f"p99 {s['p99_ms']} ms, success {s['success']}, oversold {inv.get('oversold')}, "
                f"lost {inv.get('lost')}, saved {self.path})")


def default_processes() -> int:
    """Locust worker processes: one per core, at most 2; one on a single-core machine."""
    return max(1, min(2, os.cpu_count() or 1))


def _target(tier_or_base_url: str) -> tuple[str, str]:
    """(tier name, base URL) from a tier name or a loopback URL."""
    from seckill.system import tiers

    if "://" in tier_or_base_url:
        parsed = urlparse(tier_or_base_url)
        if parsed.scheme != "http" or parsed.hostname not in LOOPBACK:
            raise LoadTestError(f"{tier_or_base_url!r}: load tests only target this machine "
                                "(http://127.0.0.1:PORT), or name a tier like flask")
        state = tiers.current()
        same = state and state["base_url"].rstrip("/") == tier_or_base_url.rstrip("/")
        return (state["tier"] if same else "url"), tier_or_base_url.rstrip("/")
    name = tier_or_base_url
    if name not in tiers.TIERS:
        raise LoadTestError(f"no tier called {name!r}; choose one of: {', '.join(tiers.TIERS)} "
                            "(or give a base URL like http://127.0.0.1:18000)")
    state = tiers.current()
    if not state or state.get("tier") != name:
        running = f" ({state['tier']} is running)" if state else ""
        raise LoadTestError(f"tier {name!r} is not running{running}; start it with `seckill tier up {name}`")
    return name, state["base_url"].rstrip("/")


def _load_test_mode(tier: str) -> bool:
    """True when the running tier believes X-Forwarded-For from loopback (its load-test switch)."""
    from seckill.system import tiers

    state = tiers.current() or {}
    switch = {**os.environ, **state.get("extra_env", {})}.get("SECKILL_LOADTEST_FORWARDED", "")
    return state.get("tier") == tier and switch.strip().lower() in ("1", "true", "yes", "on")


def _free_port() -> int:
    """A port for locust's master above the kernel's ephemeral range (32768–60999).

    A port the kernel hands out (bind to 0) is free only until another process's
    outgoing connection takes it as its local port, which under load happens before
    locust binds it ("Socket bind failure: Address already in use"). Ports from
    61000 up are never chosen for outgoing connections, so one that binds now
    stays free unless a listener takes it. Locust binds every interface: so do we.
    """
    import random

    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(61000, 65536)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise LoadTestError("no free port from 61000 to 65535 for locust's master; stop some programs and try again")


def _check_args(users, spawn_rate, duration_s, requests_per_user, processes) -> None:
    if not isinstance(users, int) or isinstance(users, bool) or not 1 <= users <= 1_000_000:
        raise LoadTestError(f"users must be a whole number from 1 to 1000000, not {users!r}")
    if not isinstance(spawn_rate, (int, float)) or not 0 < spawn_rate <= 1_000_000:
        raise LoadTestError(f"spawn rate must be a number of users per second above 0, not {spawn_rate!r}")
    if not isinstance(duration_s, (int, float)) or not 1 <= duration_s <= MAX_DURATION_S:
        raise LoadTestError(f"duration must be from 1 to {MAX_DURATION_S:.0f} seconds, not {duration_s!r}")
    if not isinstance(requests_per_user, int) or not 1 <= requests_per_user <= 10_000:
        raise LoadTestError(f"requests per user must be from 1 to 10000, not {requests_per_user!r}")
    if processes is not None and (not isinstance(processes, int) or not 1 <= processes <= 64):
        raise LoadTestError(f"processes must be from 1 to 64, not {processes!r}")


def _kill_group(proc: subprocess.Popen) -> None:
    """Stop the locust process group we started: SIGTERM, then SIGKILL after 5 s."""
    for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _run_locust(args: list[str], env: dict, run_dir: Path, duration_s: float, label: str,
                progress: bool) -> tuple[int | None, bool, float]:
    """Run locust, show a progress bar, kill it at duration + 30 s. (returncode, killed, elapsed)."""
    from tqdm.auto import tqdm

    total = int(math.ceil(duration_s))
    t0 = time.monotonic()
    killed = False
    with open(run_dir / "locust.log", "wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=run_dir, start_new_session=True)
        bar = tqdm(total=total, unit="s", desc=label, disable=not progress, leave=True,
                   bar_format="{desc}: {bar} {n_fmt}/{total_fmt} s")
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - t0
                if elapsed > duration_s + KILL_AFTER_S:
                    killed = True
                    break
                bar.update(min(total, int(elapsed)) - bar.n)
                time.sleep(0.2)
        finally:
            if proc.poll() is None:  # hard limit, Ctrl-C or an error here: never leave locust behind
                _kill_group(proc)
            bar.close()
    return proc.returncode, killed, time.monotonic() - t0


def _log_tail(run_dir: Path, lines: int = 5) -> str:
    try:
        text = (run_dir / "locust.log").read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:]) or "(empty log)"


def _number(value) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def read_history(csv_path: Path) -> pd.DataFrame:
    """locust's *_stats_history.csv, Aggregated rows, as one row per second.

    requests_per_s and failures_per_s are the growth of the running totals from
    one row to the next (locust's own Requests/s column is a lagged 10-second
    average); the percentiles are locust's "current" ones (the last ~2 s, see
    the locustfile).
    """
    raw = pd.read_csv(csv_path, na_values=["N/A"])
    agg = raw[raw["Name"] == "Aggregated"].copy()
    for col in ("Timestamp", "50%", "95%", "99%", "User Count", "Total Request Count", "Total Failure Count"):
        agg[col] = pd.to_numeric(agg[col], errors="coerce")
    agg = agg.dropna(subset=["Timestamp"]).drop_duplicates("Timestamp", keep="last").sort_values("Timestamp")
    seconds = agg["Timestamp"].diff().fillna(1.0).clip(lower=1.0)
    rps = agg["Total Request Count"].fillna(0).diff().fillna(agg["Total Request Count"].fillna(0)).clip(lower=0)
    fps = agg["Total Failure Count"].fillna(0).diff().fillna(agg["Total Failure Count"].fillna(0)).clip(lower=0)
    history = pd.DataFrame({
        "time_s": agg["Timestamp"],
        "requests_per_s": (rps / seconds).astype(float),
        "failures_per_s": (fps / seconds).astype(float),
        "p50_ms": agg["50%"].astype(float),
        "p95_ms": agg["95%"].astype(float),
        "p99_ms": agg["99%"].astype(float),
        "users": agg["User Count"].fillna(0).astype(int),
    })
    # drop the seconds before the first user started (locust starting, workers connecting)
    started = (history["users"] > 0) | (agg["Total Request Count"].fillna(0) > 0)
    if started.any():
        history = history.loc[started.idxmax():]
    if len(history):
        history["time_s"] = (history["time_s"] - history["time_s"].iloc[0]).astype(int)
    return history.reset_index(drop=True)


def read_stats(csv_path: Path) -> dict:
    """Counts per outcome and the whole run's numbers from locust's *_stats.csv."""
    stats = pd.read_csv(csv_path, na_values=["N/A"])
    by_name = {row["Name"]: row for _, row in stats.iterrows()}
    agg = by_name.get("Aggregated")
    counts = {name: int(by_name[name]["Request Count"]) if name in by_name else 0 for name in OUTCOMES}
    if agg is None:
        return {"requests": 0, "failures": 0, "requests_per_s": 0.0, "p50_ms": None, "p95_ms": None,
                "p99_ms": None, "avg_ms": None, "max_ms": None, **counts}
    return {
        "requests": int(agg["Request Count"]),
        "failures": int(agg["Failure Count"]),
        "requests_per_s": round(_number(agg["Requests/s"]) or 0.0, 1),
        "p50_ms": _number(agg["50%"]),
        "p95_ms": _number(agg["95%"]),
        "p99_ms": _number(agg["99%"]),
        "avg_ms": round(_number(agg["Average Response Time"]) or 0.0, 1),
        "max_ms": _number(agg["Max Response Time"]),
        **counts,
    }


def read_order_ids(run_dir: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted(run_dir.glob("orders-*.txt")):
        ids.extend(line.strip() for line in path.read_text().splitlines() if line.strip())
    return ids


def _machine() -> dict:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def _new_run_dir(tier: str) -> tuple[str, Path]:
    root = results_dir()
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        name = f"{stamp}-{tier}" if n == 0 else f"{stamp}-{n}-{tier}"
        run_dir = root / name
        if not run_dir.exists() and not (root / f"{name}.json").exists():
            run_dir.mkdir()
            return name, run_dir
    raise LoadTestError(f"cannot pick a free result name in {root}")


def run(tier_or_base_url: str, *, product_id: int, users: int, spawn_rate: float, duration_s: float,
        requests_per_user: int = 4, processes: int | None = None, stock: int | None = None,
        label: str | None = None, progress: bool = True, drain_timeout_s: float = 60.0) -> LoadResult:
    """Load ``tier_or_base_url`` ("flask" or http://127.0.0.1:PORT) with locust; check and save the run."""
    _check_args(users, spawn_rate, duration_s, requests_per_user, processes)
    tier, base_url = _target(tier_or_base_url)
    processes = processes or default_processes()
    s = settings()
    if progress and not _load_test_mode(tier):
        print(f"note: the {tier} tier is not in load-test mode, so every locust user counts as one client "
              f"(127.0.0.1) against the per-IP limit; for many clients start it with "
              f"`seckill tier up {tier} --load-test` (tiers.up(..., load_test=True))", file=stack.STDOUT, flush=True)

    if stock is not None:
        from seckill.system.sale import create_sale

        create_sale(s, product_id, stock, force=True, name=label or f"load test {tier}")
    else:
        with db.connect(s.postgres_url) as conn:
            if db.sale_numbers(conn, product_id) is None:
                raise LoadTestError(f"there is no sale for product {product_id}; create one with --stock N "
                                    "(stock=N from Python)")

    name, run_dir = _new_run_dir(tier)
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    # LOCUST_* variables of the caller's shell would silently change the run: drop them
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("LOCUST_")}, "PYTHONUNBUFFERED": "1",
           "SECKILL_LT_PRODUCT": str(product_id), "SECKILL_LT_REQUESTS_PER_USER": str(requests_per_user),
           "SECKILL_LT_USERS": str(users), "SECKILL_LT_OUT": str(run_dir),
           "SECKILL_LT_TAG": secrets.token_hex(3)}
    args = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", base_url,
            "--users", str(users), "--spawn-rate", f"{spawn_rate:g}", "--run-time", f"{int(math.ceil(duration_s))}s",
            "--csv", str(run_dir / "locust"), "--csv-full-history", "--only-summary",
            "--loglevel", "WARNING", "--exit-code-on-error", "0"]
    if processes > 1:
        port = _free_port()  # not locust's fixed 5557: two runs (or test slots) must not collide
        args += ["--processes", str(processes), "--master-bind-port", str(port), "--master-port", str(port)]

    sampler = StoreSampler(s, product_id, max_s=duration_s + KILL_AFTER_S + drain_timeout_s + 10)
    with sampler:  # stock, queue depth and PostgreSQL, sampled through the run and the drain
        returncode, killed, elapsed = _run_locust(args, env, run_dir, duration_s,
                                                  f"locust → {tier} ({users} users)", progress)
        drained, order_ids = _drain(s, run_dir, product_id, drain_timeout_s)
    sampler.sample_now()
    stores = sampler.frame()
    stats_csv, history_csv = run_dir / "locust_stats.csv", run_dir / "locust_stats_history.csv"
    if not stats_csv.exists() or not history_csv.exists():
        raise LoadTestError(f"locust wrote no statistics (exit {returncode}); its log {run_dir / 'locust.log'} "
                            f"ends: {_log_tail(run_dir)}")
    history = read_history(history_csv)
    numbers = read_stats(stats_csv)

    try:
        from seckill.system import tiers

        check = invariants.check_sale(s, product_id, order_ids,
                                      redis_copy=tiers.TIERS[tier].redis_copy if tier in tiers.TIERS else True)
    except LookupError as exc:
        raise LoadTestError(str(exc)) from None
    inv = {**check.as_dict(), "drained": drained, "successes": len(order_ids)}

    summary = {
        **numbers,
        "peak_requests_per_s": round(float(history["requests_per_s"].max()), 1) if len(history) else 0.0,
        "duration_s": duration_s, "elapsed_s": round(elapsed, 1), "users": users, "spawn_rate": spawn_rate,
        "requests_per_user": requests_per_user, "processes": processes, "cpu_count": os.cpu_count(),
        "tier": tier, "label": label or tier, "base_url": base_url, "product_id": product_id, "stock": stock,
        "generator": GENERATOR, "started_at": started_at, "locust_exit_code": returncode, "killed": killed,
        "name": name,
    }
    path = results_dir() / f"{name}.json"
    record = {"summary": summary, "invariants": inv, "history": _records(history), "stores": _records(stores),
              "machine": _machine(), "raw_dir": str(run_dir)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=_json_default, allow_nan=False))
    tmp.replace(path)
    room.record("load", **room.load_event(summary, inv))
    return LoadResult(history=history, summary=summary, invariants=inv, path=path, stores=stores)


def _drain(s, run_dir: Path, product_id: int, timeout_s: float) -> tuple[bool, list[str]]:
    """Wait (bounded) until every order the users were told about has left the queue."""
    if not (run_dir / "locust_stats.csv").exists():
        return False, []
    order_ids = read_order_ids(run_dir)
    return invariants.wait_for_drain(s, product_id, expected_orders=len(order_ids), timeout_s=timeout_s), order_ids


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def load_results(directory: Path | str | None = None) -> list[dict]:
    """Every saved load-test run (summary, invariants, history, stores, machine), newest first."""
    from seckill.measure.results import all_records

    return [record for record in all_records(directory) if record["kind"] == "load"]
