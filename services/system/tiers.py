"""The tier ladder: which processes make up each version of the system.

``seckill tier up flask`` starts the gateway processes of a tier plus the order
service, on top of the running stack, and prints the base URL to load-test.
Only one tier runs at a time (they share the gateway port), so bringing one up
stops the other first. Later tiers (Flask × 4 behind nginx, FastAPI, local
stock) are added to TIERS.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, TextIO

from seckill.system import broker, impl, nginx
from seckill.stack import processes
from seckill import stack
from seckill.errors import SeckillError
from seckill.config import HOST, NGINX_SOURCE, Limits, Settings, settings


class TierError(SeckillError):
    """A tier cannot be started or found; the message says what to do."""


class LabCodeError(TierError):
    """The tier ran a piece of the learner's labs/ that is not written yet; one line says which and where."""


# What a tier process logs when it ran a skeleton (the message tools/make_labs.py writes).
_SKELETON_IN_LOG = re.compile(r"NotImplementedError: ([\w.]+ in labs/\w+\.py is not written yet — see \S+)")


def lab_problems(state: dict) -> list[str]:
    """One line per distinct unwritten lab the tier's processes ran since ``state`` was started (from their logs)."""
    from seckill.system import lab_errors

    s = settings()
    found: list[str] = []
    for name, offset in (state.get("log_offsets") or {}).items():
        try:
            with open(s.run_dir / "logs" / f"{name}.log", "rb") as f:
                f.seek(offset)
                text = f.read(4_000_000).decode("utf-8", "replace")
        except OSError:
            continue
        for message in dict.fromkeys(_SKELETON_IN_LOG.findall(text)):
            line = f"{name} ran {lab_errors.one_line(NotImplementedError(message))}"
            if line not in found:
                found.append(line)
    return found


@dataclass(frozen=True)
class Proc:
    name: str
    command: Callable[[Settings, Limits], list[str]]
    port: Callable[[Settings], int | None] = lambda s: None
    ready: Callable[[Settings], bool] | None = None


@dataclass(frozen=True)
class Tier:
    name: str
    title: str
    procs: tuple[Proc, ...]
    entry_port: Callable[[Settings], int]  # where clients (and load tests) connect
    redis_copy: bool = True                # False: no stock in Redis (db-direct), nothing to compare


def _http_serving(url: str) -> bool:
    """The process answers its /healthz: 200, or 503 naming a dependency that is down
    (a gateway is up and answers 503 itself while Redis or PostgreSQL is away)."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except urllib.error.HTTPError as err:
        return err.code == 503 and "dependencies" in err.read(4096).decode("utf-8", "replace")
    except OSError:
        return False


def _consumer_attached(s: Settings) -> bool:
    try:
        return broker.queue_stats(s.amqp_url, s.queue)["consumers"] > 0
    except Exception:
        return False


PY = sys.executable

ORDER_SERVICE = Proc("order-service", lambda s, limits: [PY, "-m", "seckill.system.order_service"],
                     ready=_consumer_attached)


FLASK_APP = "seckill.system.gateway_flask:create_app()"


def _gunicorn(port: Callable[[Settings], int], app: str, workers: int = 1, threads: int = 32) -> Callable:
    def command(s: Settings, limits: Limits) -> list[str]:
        return [PY, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "gthread",
                "--threads", str(threads), "--bind", f"{HOST}:{port(s)}",
                "--backlog", "2048", "--graceful-timeout", "5", "--keep-alive", "5", app]
    return command


def _gateway(name: str, port: Callable[[Settings], int], app: str = FLASK_APP) -> Proc:
    """A gunicorn process serving ``app``, ready when its /healthz answers."""
    return Proc(name, _gunicorn(port, app), port=port,
                ready=lambda s: _http_serving(f"http://{HOST}:{port(s)}/healthz"))


def _x4_port(i: int) -> Callable[[Settings], int]:
    """Behind nginx the four gateways listen on the four ports after the gateway port."""
    return lambda s: s.ports.gateway + 1 + i


def _nginx_command(s: Settings, limits: Limits) -> list[str]:
    conf = nginx.render(s, [_x4_port(i)(s) for i in range(4)], rate=limits.nginx_rate,
                        burst=limits.nginx_burst)
    return nginx.command(conf)


def _uvicorn(workers: int, factory: str = "seckill.system.gateway_fastapi:create_app") -> Callable:
    def command(s: Settings, limits: Limits) -> list[str]:
        return [PY, "-m", "uvicorn", "--factory", factory,
                "--host", HOST, "--port", str(s.ports.gateway), "--workers", str(workers),
                "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--backlog", "4096",
                "--timeout-keep-alive", "5", "--log-level", "warning",
                # uvicorn would otherwise rewrite the peer from X-Forwarded-For for every
                # 127.0.0.1 client; the gateway decides whom to believe (gateway.TrustedProxies)
                "--no-proxy-headers"]
    return command


ASYNC_WORKERS = max(1, min(2, os.cpu_count() or 1))  # one event loop per core

TIERS: dict[str, Tier] = {
    "db-direct": Tier(
        "db-direct", "T0 · every buy a PostgreSQL transaction with a row lock (the design the seed rejects)",
        (_gateway("gateway", lambda s: s.ports.gateway, app="seckill.system.gateway_dbdirect:create_app()"),),
        entry_port=lambda s: s.ports.gateway,
        redis_copy=False,
    ),
    "flask": Tier(
        "flask", "T1 · one Flask process (gunicorn, 1 worker, 32 threads)",
        (_gateway("gateway", lambda s: s.ports.gateway), ORDER_SERVICE),
        entry_port=lambda s: s.ports.gateway,
    ),
    "flask-x4": Tier(
        "flask-x4", "T2 · four Flask processes behind nginx (limit_req, keep-alive upstreams)",
        (*(_gateway(f"gateway-{i + 1}", _x4_port(i)) for i in range(4)),
         Proc("nginx", _nginx_command, port=lambda s: s.ports.nginx,
              ready=lambda s: _http_serving(f"http://{HOST}:{s.ports.nginx}/healthz")),
         ORDER_SERVICE),
        entry_port=lambda s: s.ports.nginx,
    ),
    "fastapi": Tier(
        "fastapi", f"T3 · FastAPI on uvicorn + uvloop, {ASYNC_WORKERS} event-loop processes, pipelined confirms",
        (Proc("gateway", _uvicorn(ASYNC_WORKERS), port=lambda s: s.ports.gateway,
              ready=lambda s: _http_serving(f"http://{HOST}:{s.ports.gateway}/healthz")),
         ORDER_SERVICE),
        entry_port=lambda s: s.ports.gateway,
    ),
    "local-stock": Tier(
        "local-stock", f"T4 · T3 plus local stock: {ASYNC_WORKERS} instances lease slices from Redis and sell from memory",
        (Proc("gateway", _uvicorn(ASYNC_WORKERS, "seckill.system.gateway_fastapi:create_local_stock_app"),
              port=lambda s: s.ports.gateway,
              ready=lambda s: _http_serving(f"http://{HOST}:{s.ports.gateway}/healthz")),
         ORDER_SERVICE),
        entry_port=lambda s: s.ports.gateway,
    ),
}


def base_url(s: Settings, tier: str = "flask") -> str:
    return f"http://{HOST}:{TIERS[tier].entry_port(s)}"


def _state_path(s: Settings) -> Path:
    return s.run_dir / "tier.json"


def current(s: Settings | None = None) -> dict | None:
    """The running tier's record, or None."""
    s = s or settings()
    try:
        state = json.loads(_state_path(s).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    alive = all(processes.alive(s.run_dir, processes.load(s.run_dir, p)) for p in state.get("procs", []))
    return state if alive else None


def _child_env(chosen: dict[str, str]) -> dict[str, str]:
    """A tier process's environment: what we chose, plus our other SECKILL_* settings.

    Every process of the tier must find the same run dir and ports as we do.
    """
    env = {"PYTHONUNBUFFERED": "1", **chosen}
    env.update({k: v for k, v in os.environ.items() if k.startswith("SECKILL_") and k not in env})
    return env


def proxy_env(tier: Tier) -> dict[str, str]:
    """Behind nginx the gateways trust X-Forwarded-For from nginx's own source address
    (config.NGINX_SOURCE, its proxy_bind); a tier reached directly trusts nobody.
    An explicit SECKILL_TRUSTED_PROXIES in our environment wins."""
    if "SECKILL_TRUSTED_PROXIES" in os.environ:
        return {}
    behind_nginx = any(p.name == "nginx" for p in tier.procs)
    return {"SECKILL_TRUSTED_PROXIES": NGINX_SOURCE if behind_nginx else ""}


def limits_env(limits: Limits) -> dict[str, str]:
    return {
        "SECKILL_BUCKET_CAPACITY": str(limits.bucket_capacity),
        "SECKILL_BUCKET_RATE": str(limits.bucket_rate),
        "SECKILL_USER_LIMIT": str(limits.user_limit),
        "SECKILL_IP_LIMIT": str(limits.ip_limit),
        "SECKILL_LIMIT_WINDOW_S": str(limits.window_s),
        "SECKILL_NGINX_RATE": str(limits.nginx_rate),
        "SECKILL_NGINX_BURST": str(limits.nginx_burst),
        "SECKILL_LOCAL_SLICE": str(limits.local_slice),
    }


def up(name: str, *, limits: dict | None = None, impl_name: str | None = None,
       out: TextIO | None = stack.STDOUT, extra_env: dict[str, str] | None = None,
       load_test: bool = False) -> dict:
    """Start tier ``name`` (and the stack if needed); return its record with base_url.

    ``load_test=True`` is the load-test switch (SECKILL_LOADTEST_FORWARDED=1): the gateways
    believe X-Forwarded-For from every loopback peer, so locust and wrk, which all send from
    127.0.0.1, count as many clients against the per-IP limit; said in the start line.
    ``extra_env`` reaches every process of the tier: failure labs use it to switch
    an injection point on (SECKILL_INJECT=...) or to point the gateways at Sentinel.
    With ``impl_name="labs"`` each piece is the learner's once they started it and
    the reference before (see impl.running); the record's "pieces" says which, and
    that line is printed first. Progress goes to ``out`` (stdout: it is not an error).
    """
    if name not in TIERS:
        raise TierError(f"no tier called {name!r}; choose one of: {', '.join(TIERS)}")
    if load_test:
        extra_env = {**(extra_env or {}), "SECKILL_LOADTEST_FORWARDED": "1"}
    tier = TIERS[name]
    impl_name = impl_name or impl.current()
    impl.load("stock", impl_name)  # fail early, with a clear message, on a bad SECKILL_IMPL
    s = settings()
    stack.up(out=None if stack.healthy() else out)  # progress only when something starts
    down(out=None)
    unknown = set(limits or {}) - set(asdict(s.limits))
    if unknown:
        raise TierError(f"no limit called {', '.join(sorted(unknown))}; the limits are: {', '.join(asdict(s.limits))}")
    chosen = replace(s.limits, **(limits or {}))
    if chosen.local_slice < 1:
        raise TierError(f"local_slice must be at least 1 (SECKILL_LOCAL_SLICE / --local-slice), not {chosen.local_slice}")
    pieces = impl.describe(impl_name)
    if out and impl_name == "labs":
        print(f"• code: {pieces}", file=out, flush=True)
    env = _child_env({"SECKILL_IMPL": impl_name, "SECKILL_TIER": name, **limits_env(chosen),
                      **proxy_env(tier), **(extra_env or {})})
    started = []
    # Where each process's log ends now: lab_problems() reads only what this run of the tier wrote.
    offsets = {}
    for proc in tier.procs:
        try:
            offsets[proc.name] = (s.run_dir / "logs" / f"{proc.name}.log").stat().st_size
        except OSError:
            offsets[proc.name] = 0
    try:
        for proc in tier.procs:
            t0 = time.monotonic()
            port = proc.port(s)
            if port and not processes.port_free(port):  # by binding, as the gateway will
                base = s.ports.nginx if port == s.ports.nginx else s.ports.gateway  # flask-x4: gateway + 1..4
                variable = "SECKILL_NGINX_PORT" if port == s.ports.nginx else "SECKILL_GATEWAY_PORT"
                raise TierError(f"port {port} for {proc.name} is taken by {processes.who_listens(port)}; "
                                f"stop it or move the tier: `export {variable}="
                                f"{processes.free_port_near(base, taken=(port,))}`")
            if out:
                print(f"• {proc.name:<14}starting …", file=out, flush=True)
            ready = (lambda p=proc: p.ready(s)) if proc.ready else None
            processes.start(s.run_dir, proc.name, proc.command(s, chosen), port=port, ready=ready, env=env,
                            cwd=s.run_dir, timeout=30)
            started.append(proc.name)
            if out:
                print(f"• {proc.name:<14}ready in {time.monotonic() - t0:.1f} s", file=out, flush=True)
    except Exception:
        for pname in started:
            processes.stop(s.run_dir, pname, timeout=10)
        raise
    if out and env.get("SECKILL_LOADTEST_FORWARDED", "").strip().lower() in ("1", "true", "yes", "on"):
        print("• LOAD-TEST MODE: the gateways believe X-Forwarded-For from every loopback peer "
              "(SECKILL_LOADTEST_FORWARDED=1)", file=out, flush=True)
    state = {"tier": name, "title": tier.title, "base_url": base_url(s, name), "impl": impl_name, "pieces": pieces,
             "limits": asdict(chosen), "procs": started, "extra_env": dict(extra_env or {}),
             "log_offsets": offsets}
    _state_path(s).write_text(json.dumps(state, indent=2))
    return state


@contextlib.contextmanager
def running(name: str, *, limits: dict | None = None, impl_name: str | None = None,
            out: TextIO | None = stack.STDOUT, extra_env: dict[str, str] | None = None,
            load_test: bool = False) -> Iterator[dict]:
    """``with tiers.running("flask", impl_name="labs") as tier:`` — :func:`up`, and :func:`down` however the block ends.

    A notebook section that starts a tier does its work inside the block, so a
    failing cell (a crash in the learner's code, an interrupt) never leaves the
    gateways running; assertions come after the block, on what it recorded.
    When the block ends and the tier's logs show it ran an unwritten lab (a file
    the learner started but not finished), LabCodeError says which, in one line,
    instead of leaving them to wonder about a burst of 500s.
    """
    state = up(name, limits=limits, impl_name=impl_name, out=out, extra_env=extra_env, load_test=load_test)
    try:
        yield state
    finally:
        problems = lab_problems(state)
        down(out=out)
    if problems:
        raise LabCodeError(" · ".join(problems))


def down(out: TextIO | None = stack.STDOUT) -> list[str]:
    """Stop the running tier's processes (gateways and order service), not the stack."""
    s = settings()
    names = set()
    try:
        names.update(json.loads(_state_path(s).read_text()).get("procs", []))
    except (FileNotFoundError, json.JSONDecodeError):
        pass
    for tier in TIERS.values():
        names.update(p.name for p in tier.procs)
    stopped = [n for n in sorted(names) if processes.stop(s.run_dir, n, timeout=15)]
    _state_path(s).unlink(missing_ok=True)
    if out:
        print("• stopped " + (", ".join(stopped) if stopped else "nothing (no tier was running)"),
              file=out, flush=True)
    return stopped


def start_order_service(s: Settings | None = None, extra_env: dict[str, str] | None = None) -> processes.Record:
    """(Re)start only the order service, e.g. after a failure lab killed it."""
    s = s or settings()
    state = current(s) or {}
    env = _child_env({"SECKILL_IMPL": state.get("impl") or impl.current(), **(extra_env or {})})
    return processes.start(s.run_dir, ORDER_SERVICE.name, ORDER_SERVICE.command(s, s.limits), port=None,
                           ready=lambda: ORDER_SERVICE.ready(s), env=env, cwd=s.run_dir, timeout=30)
