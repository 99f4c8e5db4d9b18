"""seckill.stack — the servers under the system: real Redis, RabbitMQ and PostgreSQL, one call away.

This package's own functions start and stop them (below); its modules say how:
servers.py (each server's command line), processes.py (pid files, readiness,
stopping), installer.py (apt), docker_backend.py (the same servers as
containers), sentinel.py (a Redis replica and Sentinel for the failover lab),
envcheck.py (`seckill doctor`), and db.py with schema.sql: the database and the
tables the stack creates when PostgreSQL starts. (db lives here, not in
seckill.system, because starting PostgreSQL includes creating its schema, and
this room may only import downward: config, errors, i18n, room, credentials.)


    from seckill import stack
    urls = stack.up()        # starts what is not running, waits, creates the schema
    stack.status()           # per service: url, pid, port, health
    stack.down()             # stops what this checkout started, and nothing else

Two backends give the same services on the same ports:
  * native: the installed binaries run as processes of this checkout, data and
    logs under ``.run/`` (see servers.py, processes.py);
  * docker: containers of docker-compose.yml (see docker_backend.py), every
    lab included.
``SECKILL_BACKEND`` (native, docker, auto) chooses; ``auto`` prefers native when
its servers are installed (or can be: root with apt), else Docker when an engine
and Compose answer (see :func:`choose`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

import psycopg

from seckill.stack import db, docker_backend, installer, processes, servers
from seckill import room
from seckill.errors import SeckillError
from seckill.i18n import N_
from seckill.config import Settings, settings

SERVICES = ("redis", "postgres", "rabbitmq")
DOCKER_ONLY = ("redis-replica", "redis-sentinel", "nginx")  # services with logs only on the docker backend


class StackError(SeckillError):
    """The stack could not be brought to the asked state; the message says what to do."""


_SAY = threading.Lock()  # the three servers start in parallel threads: one whole line at a time


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the time (a notebook cell's, pytest's capture), not at import."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


# Where progress lines go by default: stdout, because "• redis already running" is not an error
# (in a notebook, stderr shows as a pink error box). The CLI passes sys.stderr: its stdout is data.
STDOUT = _CurrentStdout()


def _say(out: TextIO | None, text: str) -> None:
    if out is not None:
        with _SAY:
            out.write(text + "\n")
            out.flush()


# -- backend choice ------------------------------------------------------------

def choose() -> tuple[str, str]:
    """(backend, one line why): what `seckill up`, doctor and status report (doctor in the reader's language).

    ``auto`` prefers what can run the whole course without surprises: native
    when the server binaries are installed (or root can apt-get them), else
    Docker when an engine and Compose answer, else native (whose `up` then says
    what to install).
    """
    chosen = os.environ.get("SECKILL_BACKEND", "auto") or "auto"
    if chosen == "native":
        return "native", "SECKILL_BACKEND=native"
    if chosen == "docker":
        return "docker", "SECKILL_BACKEND=docker"
    if chosen != "auto":
        raise StackError(f"SECKILL_BACKEND={chosen!r}: use native, docker or auto")
    absent = installer.missing()
    if not absent:
        return "native", N_("auto: the server binaries are installed")
    if installer.can_apt():
        return "native", N_(f"auto: {', '.join(absent)} will be installed with apt-get")
    answers, why = docker_backend.engine_answers()
    if answers and docker_backend.compose_command():
        return "docker", N_(f"auto: {', '.join(absent)} not installed; {why}")
    return "native", N_(f"auto: {', '.join(absent)} not installed and no Docker ({why})")


def backend() -> str:
    return choose()[0]


def _docker(call, *args, **kwargs):
    """A docker_backend call whose failure is a StackError (one line, what to do)."""
    try:
        return call(*args, **kwargs)
    except docker_backend.DockerError as exc:
        raise StackError(str(exc)) from None


# -- up ------------------------------------------------------------------------

def up(out: TextIO | None = STDOUT) -> dict[str, str]:
    """Start Redis, PostgreSQL and RabbitMQ unless they run; return their URLs.

    Idempotent: a second call finds them running and only checks them.
    """
    s = settings()
    if backend() == "docker":
        with _exclusive(s):
            if s.workshop:
                s.run_dir.chmod(0o700)  # credentials.json and the logs: this user's alone, as on native
            _docker(docker_backend.up, s, out)
    else:
        _up_native(s, out)
    try:
        db.apply_schema(s.postgres_url)
    except psycopg.OperationalError as exc:
        if "password authentication failed" not in str(exc):
            raise
        # e.g. credentials.json regenerated, or workshop mode switched, while the data (a volume) stayed
        raise StackError(f"PostgreSQL on port {s.ports.postgres} refuses this stack's password: its data was "
                         "made with another one; `seckill reset` starts it afresh (and wipes its data)") from None
    room.record("stack", up=True, ports={"redis": s.ports.redis, "postgres": s.ports.postgres,
                                          "amqp": s.ports.amqp})
    return s.urls()


@contextlib.contextmanager
def _exclusive(s: Settings):
    """One `up`/`down` at a time per checkout (a notebook and a terminal may race)."""
    try:
        s.run_dir.mkdir(parents=True, exist_ok=True)
    except PermissionError:  # e.g. a course installed once for everyone (/opt/seckill), run outside workshop mode
        raise StackError(f"cannot create the run dir {s.run_dir} (permission denied); export "
                         "SECKILL_WORKSHOP=1 (a run dir in your home) or SECKILL_RUN_DIR=<a folder of yours>") from None
    with open(s.run_dir / "stack.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _up_native(s: Settings, out: TextIO | None) -> None:
    with _exclusive(s):
        _start_missing(s, out)


def _start_missing(s: Settings, out: TextIO | None, only: tuple[str, ...] = SERVICES) -> None:
    try:
        installer.ensure_servers(list(SERVICES))
    except installer.MissingServers as exc:
        raise StackError(str(exc)) from None
    s.run_dir.mkdir(parents=True, exist_ok=True)
    if s.workshop:
        s.run_dir.chmod(0o700)  # a shared host: data, sockets and credentials are this user's alone
    to_start = []
    for server in servers.all_servers(s):
        if server.name not in only:
            continue
        record = processes.load(s.run_dir, server.name)
        if processes.alive(s.run_dir, record) and server.ready():
            _say(out, f"• {server.name:<9}already running (pid {record.pid}, port {server.port})")
            continue
        # Something of ours may be half-alive after a crash: clear it first.
        processes.stop(s.run_dir, server.name, timeout=10)
        if not processes.port_free(server.port):  # by binding, as the server will
            env_var = f"SECKILL_{'AMQP' if server.name == 'rabbitmq' else server.name.upper()}_PORT"
            raise StackError(f"port {server.port} for {server.name} is taken by "
                             f"{processes.who_listens(server.port)}; stop it or "
                             f"`export {env_var}={processes.free_port_near(server.port)}`")
        to_start.append(server)

    def launch(server: servers.NativeServer) -> processes.Record:
        t0 = time.monotonic()
        _say(out, f"• {server.name:<9}starting on 127.0.0.1:{server.port} …")
        record = servers.start(s, server)
        _say(out, f"• {server.name:<9}ready in {time.monotonic() - t0:.1f} s (pid {record.pid})")
        return record

    errors = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {pool.submit(launch, srv): srv for srv in to_start}
        for future, srv in futures.items():
            try:
                future.result()
            except (processes.StartError, installer.MissingServers) as exc:
                errors.append(str(exc))
    if errors:
        raise StackError("; ".join(errors))


# -- one service at a time (the failure labs) ----------------------------------------

def _known(service: str) -> None:
    if service not in SERVICES:
        raise StackError(f"no service called {service!r}; choose one of: {', '.join(SERVICES)}")


def stop_service(service: str, *, kill: bool = False) -> bool:
    """Stop one of redis, postgres, rabbitmq; ``kill=True`` is a crash (SIGKILL, no clean shutdown).

    Returns whether it was running. The failure labs use this to break the system.
    On the docker backend: ``docker compose stop`` / ``kill`` of that service.
    """
    _known(service)
    s = settings()
    if backend() == "docker":
        with _exclusive(s):
            return _docker(docker_backend.stop, service, kill=kill, s=s)
    with _exclusive(s):
        if kill:
            try:
                processes.kill(s.run_dir, service)
            except processes.StartError:
                return False
            processes.forget(s.run_dir, service)
            return True
        # The server's own shutdown signal: for PostgreSQL that is SIGINT, its "fast"
        # mode (roll back and disconnect clients). SIGTERM is its "smart" mode, which
        # waits for every connected client (gateways, order service) to leave: ~25 s.
        server = next(srv for srv in servers.all_servers(s) if srv.name == service)
        was_running = processes.stop(s.run_dir, service, stop_signal=server.stop_signal, timeout=20)
        if service == "postgres":
            # The next start refuses to run while postmaster.pid remains ("lock file
            # already exists"): wait (bounded) until the postmaster removed it.
            lock = servers.postgres_home(s) / "data" / "postmaster.pid"
            processes.wait_until(lambda: not lock.exists(), timeout=10)
        return was_running


def start_service(service: str, out: TextIO | None = None) -> str:
    """Start one service again (a no-op if it runs); returns its URL."""
    _known(service)
    s = settings()
    with _exclusive(s):
        if backend() == "docker":
            _docker(docker_backend.start, service, s=s, out=out)
        else:
            _start_missing(s, out, only=(service,))
    if service == "postgres":
        db.apply_schema(s.postgres_url)
    return s.urls()["amqp" if service == "rabbitmq" else service]


def forget_snapshot(service: str = "redis") -> None:
    """Delete Redis's snapshot (dump.rdb) while it is stopped: its next start is empty (lab redis-down)."""
    if service != "redis":
        raise StackError(f"only redis keeps a snapshot to forget, not {service!r}")
    s = settings()
    if backend() == "docker":
        _docker(docker_backend.remove_file, "redis", "/data/dump.rdb", s=s)
    else:
        (s.run_dir / "redis" / "dump.rdb").unlink(missing_ok=True)


# -- status ----------------------------------------------------------------------

def status() -> dict[str, dict]:
    """Per service: url, pid, port, health ("ok", "down" or what failed), backend and why.

    On the docker backend ``pid`` is None and ``container`` gives the
    container's state (running, paused, exited, missing).
    """
    s = settings()
    urls = {"redis": s.redis_url, "postgres": s.postgres_url, "rabbitmq": s.amqp_url}
    ports = {"redis": s.ports.redis, "postgres": s.ports.postgres, "rabbitmq": s.ports.amqp}
    result: dict[str, dict] = {}
    name, why = choose()
    docker = name == "docker"
    for server in servers.all_servers(s):
        container = None
        if docker:
            pid = None
            try:
                container = docker_backend.state(s, server.name)["status"]
            except (docker_backend.DockerError, OSError, subprocess.SubprocessError, ValueError):
                container = "unknown"
            up_ = container == "running"
        else:
            proc = processes.alive(s.run_dir, processes.load(s.run_dir, server.name))
            pid = proc.pid if proc else None
            up_ = bool(pid)
        healthy = server.ready() if up_ else False
        result[server.name] = {
            "url": urls[server.name],
            "pid": pid,
            "port": ports[server.name],
            "health": "ok" if healthy else ("unhealthy" if up_ else "down"),
            "backend": name,
            "backend_why": why,
        }
        if docker:
            result[server.name]["container"] = container
    return result


def healthy() -> bool:
    return all(v["health"] == "ok" for v in status().values())


# -- down, logs, reset -------------------------------------------------------------

def down(out: TextIO | None = STDOUT) -> list[str]:
    """Stop every process this checkout started (tiers included). Returns their names."""
    s = settings()
    with _exclusive(s):
        stopped = processes.stop_all(s.run_dir)
        if backend() == "docker":
            removed = _docker(docker_backend.down, s)
            stopped += [f"{name} (container)" for name in removed]
    room.record("stack", up=False)
    for name in stopped:
        _say(out, f"• stopped {name}")
    if not stopped:
        _say(out, "• nothing of this checkout was running")
    return stopped


def log_path(service: str) -> Path:
    s = settings()
    known = set(SERVICES) | {p.stem for p in (s.run_dir / "logs").glob("*.log")}
    if service not in known:
        raise StackError(f"no service called {service!r}; choose one of: {', '.join(sorted(known))}")
    return s.run_dir / "logs" / f"{service}.log"


def logs(service: str, lines: int = 60) -> str:
    if backend() == "docker" and service in SERVICES + DOCKER_ONLY:
        return _docker(docker_backend.logs, service, lines)
    path = log_path(service)
    if not path.exists():
        return f"(no log yet: {service} has not been started in this checkout)"
    return processes.tail(path, lines)


def reset(out: TextIO | None = STDOUT) -> None:
    """Stop everything and wipe all data: the next `up` starts from empty servers."""
    s = settings()
    down(out)
    if backend() == "docker":
        _docker(docker_backend.down, s, volumes=True)
        _say(out, "• removed the containers' volumes")
    for path in servers.data_paths(s):
        if path.is_symlink():
            path.unlink()
        elif path.exists():
            shutil.rmtree(path)
    _say(out, f"• wiped the data under {s.run_dir}")


def as_json(data) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
