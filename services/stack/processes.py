"""Start, find and stop the course's own background processes, and nothing else.

Why a module of its own: a learner's machine may already run a Redis or a
PostgreSQL, and a crash may leave stale pid files behind. So every process we
start carries an environment marker, ``SECKILL_OWNED_BY=<this checkout's .run>``
plus ``SECKILL_SERVICE=<name>``, which its children inherit (RabbitMQ's epmd,
PostgreSQL's workers). (The marker is not the SECKILL_RUN_DIR *setting*: a shell
or notebook that merely sets that must never look like ours.) Stopping means: find the processes whose environment
carries *our* marker, signal them, wait. A pid file is only a hint; a pid that
was reused by an unrelated process never matches the marker, so it is never
touched.

Starting uses mirakuru, which launches the command in its own session and waits
until the port accepts connections (no hand-rolled sleep loops). mirakuru is
built for test fixtures and would kill the process when the Python object or
interpreter goes away; our services must outlive ``seckill up``, so after the
wait we take the pid over ourselves (:func:`start`).
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import mirakuru
import mirakuru.base
import psutil

from seckill.errors import SeckillError
from seckill.i18n import N_

# Services started by `seckill up` must survive the command that started them.
atexit.unregister(mirakuru.base.cleanup_subprocesses)

MARKER = "SECKILL_OWNED_BY"
SERVICE = "SECKILL_SERVICE"


class StartError(SeckillError):
    """A service did not come up; the message names its log."""


@dataclass
class Record:
    """What we know of a process we started (saved as .run/pids/<name>.json)."""

    name: str
    pid: int
    port: int | None
    create_time: float
    log: str
    command: list[str]


def pid_dir(run_dir: Path) -> Path:
    return run_dir / "pids"


def save(run_dir: Path, record: Record) -> None:
    path = pid_dir(run_dir) / f"{record.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2))
    tmp.replace(path)


def load(run_dir: Path, name: str) -> Record | None:
    path = pid_dir(run_dir) / f"{name}.json"
    try:
        return Record(**json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError, TypeError):
        return None


def forget(run_dir: Path, name: str) -> None:
    (pid_dir(run_dir) / f"{name}.json").unlink(missing_ok=True)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Can a server bind ``port`` now? Checked by binding, as the server will.

    Connecting is not enough: a port can be unusable although nothing listens on
    it (the local end of some program's outgoing connection), and then a server
    fails to start although a connect check said "free". SO_REUSEADDR, as
    servers set it, so a connection of ours closing (TIME_WAIT) does not count.
    """
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# The kernel's ephemeral range on Linux (net.ipv4.ip_local_port_range): outgoing connections take
# their local port from it, so a port suggested there may be taken at any moment.
EPHEMERAL = range(32768, 61000)


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return {}


def ours(run_dir: Path, service: str | None = None) -> list[psutil.Process]:
    """Every live process that carries this checkout's marker (and service name)."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        env = _environ(proc)
        if env.get(MARKER) != str(run_dir) or SERVICE not in env:
            continue
        if service is not None and env.get(SERVICE) != service:
            continue
        found.append(proc)
    return found


def alive(run_dir: Path, record: Record | None) -> psutil.Process | None:
    """The recorded process, if it is still the one we started."""
    if record is None:
        return None
    try:
        proc = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > 1.0:
            return None  # the pid was reused by someone else
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    # A pid file copied, restored or left by another stack (another user's crashed stack on a
    # workshop host) may name a live process that is not ours. Another user's process hides its
    # environment from us: not ours. One carrying another run dir's marker: not ours. (nginx
    # rewrites its process title over its environment, so a marker may be gone: pid and start
    # time then decide, as before.)
    try:
        env = proc.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return None
    if env.get(MARKER, str(run_dir)) != str(run_dir):
        return None
    return proc


def who_listens(port: int) -> str:
    """A short description of whoever holds a TCP port, for error messages.

    A listener first; else the program whose connection uses the port as its
    local end (nothing listens, yet no server can bind it).
    """
    def name(pid: int | None) -> str:
        if not pid:
            return N_("another process")
        try:
            return f"pid {pid} ({psutil.Process(pid).name()})"
        except psutil.Error:
            return f"pid {pid}"

    try:
        conns = [c for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port]
    except (psutil.Error, OSError):
        return N_("another process")
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN:
            return name(conn.pid)
    for conn in conns:
        if conn.status != psutil.CONN_TIME_WAIT:
            return N_(f"a connection of {name(conn.pid)} (nothing listens there, but the port is in use)")
    return N_("another process")


def free_port_near(port: int, taken=()) -> int:
    """A port a server can bind, 100 above ``port`` (then 200, ...; then below) so the course's ports stay
    together, and never in the kernel's ephemeral range (32768-60999), where any outgoing connection
    may take it next."""
    taken = set(taken)
    candidates = [port + 100 * k for k in range(1, 330)] + [port - 100 * k for k in range(1, 330)]
    for candidate in candidates:
        if 1024 <= candidate < 65536 and candidate not in EPHEMERAL and candidate not in taken \
                and port_free(candidate):
            return candidate
    raise StartError(f"no free port found near {port}")


_REASON = re.compile(r"error|fatal|fail|cannot|can't|could not|unable|denied|in use|refused|no such|not found",
                     re.I)


def log_reason(log_path: Path, max_chars: int = 200) -> str:
    """': <the line of the server's log that says why>' (or "" when the log says nothing), for one-line errors.

    The last line naming an error wins (a server logs its reason just before it
    exits); otherwise the last line of the log. Python tracebacks give their
    final "SomeError: message" line, which is the reason.
    """
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16_384))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    if not lines:
        return ""
    reason = next((ln for ln in reversed(lines) if _REASON.search(ln)), lines[-1])
    reason = " ".join(reason.split())
    if len(reason) > max_chars:
        reason = reason[: max_chars - 1] + "…"
    return f": {reason}"


def start(
    run_dir: Path,
    name: str,
    command: list[str],
    *,
    port: int | None,
    ready: Callable[[], bool] | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    timeout: float = 60.0,
    stop_signal: int = signal.SIGTERM,
) -> Record:
    """Start ``command`` in the background, wait until it is ready, record it.

    Ready means: the TCP ``port`` accepts connections (mirakuru's TCPExecutor)
    and then, if given, ``ready()`` returns true (a real protocol check).
    """
    log_path = run_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    envvars = dict(env or {})
    envvars[MARKER] = str(run_dir)
    envvars[SERVICE] = name
    log = open(log_path, "ab")
    popen_kwargs = {"user": user} if user else {}
    kwargs = dict(
        cwd=str(cwd) if cwd else None,
        timeout=timeout,
        sleep=0.05,
        envvars=envvars,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        stop_signal=stop_signal,
        popen_kwargs=popen_kwargs,
    )
    if port is not None:
        executor = mirakuru.TCPExecutor(command, host="127.0.0.1", port=port, **kwargs)
    else:
        executor = mirakuru.SimpleExecutor(command, **kwargs)
    try:
        executor.start()
        if ready is not None:
            def check() -> bool:
                if not executor.running():
                    raise StartError(f"{name} exited while starting; whole log: {log_path}")
                return ready()
            executor.wait_for(check)
    except mirakuru.exceptions.ProcessExitedWithError as exc:
        log.close()
        raise StartError(f"{name} exited while starting (code {exc.exit_code}){log_reason(log_path)}; "
                         f"whole log: {log_path}") from None
    except mirakuru.exceptions.TimeoutExpired:
        log.close()
        raise StartError(f"{name} was not ready within {timeout:.0f} s{log_reason(log_path)}; "
                         f"whole log: {log_path}") from None
    except StartError as exc:
        log.close()
        raise StartError(f"{exc}{log_reason(log_path)}") from None
    finally:
        log.close()
    assert executor.process is not None
    pid = executor.process.pid
    # Take the process over: mirakuru would kill it when `executor` is collected.
    executor.process = None
    record = Record(
        name=name,
        pid=pid,
        port=port,
        create_time=psutil.Process(pid).create_time(),
        log=str(log_path),
        command=list(command),
    )
    save(run_dir, record)
    return record


def _wait_gone(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait (bounded) until each process has exited; returns those still running.

    Exited means exited even when it is still a zombie: a server started by
    another process (the test run, when a notebook kernel stops it) stays a
    zombie until *that* process reaps it, and waiting for it to vanish would
    only ever end at the timeout.
    """
    deadline = time.monotonic() + timeout
    running = list(procs)
    while running:
        _, running = psutil.wait_procs(running, timeout=0.05)  # reaps our own children
        running = [p for p in running if not _zombie(p)]
        if time.monotonic() >= deadline:
            break
    return running


def _zombie(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True  # gone


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


def stop(run_dir: Path, name: str, *, stop_signal: int = signal.SIGTERM, timeout: float = 20.0) -> bool:
    """Stop service ``name`` and every process that inherited its marker.

    The main process gets ``stop_signal`` first (a clean shutdown: PostgreSQL
    checkpoints, Redis saves, RabbitMQ syncs its queues); stragglers get SIGTERM,
    then SIGKILL. Returns whether anything was running.
    """
    record = load(run_dir, name)
    main = alive(run_dir, record)
    procs = ours(run_dir, name)
    if main is not None:
        _signal_all([main], stop_signal)
        _wait_gone([main], timeout)
    rest = [p for p in ours(run_dir, name)]
    if rest:
        _signal_all(rest, signal.SIGTERM)
        still = _wait_gone(rest, 5)
        _signal_all(still, signal.SIGKILL)
        _wait_gone(still, 5)
    forget(run_dir, name)
    return bool(main or procs)


def kill(run_dir: Path, name: str, sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to a service's main process (failure labs use SIGKILL). Returns its pid."""
    main = alive(run_dir, load(run_dir, name))
    if main is None:
        raise StartError(f"{name} is not running; start it first")
    main.send_signal(sig)
    if sig in (signal.SIGKILL, signal.SIGTERM):
        _wait_gone([main], 10)
    return main.pid


def stop_all(run_dir: Path) -> list[str]:
    """Stop every process of this checkout, pid files or not. Returns the names stopped."""
    names = sorted({_environ(p).get(SERVICE, "?") for p in ours(run_dir)})
    for name in names:
        stop(run_dir, name, timeout=10)
    # whatever a crash left behind in pids/ now points at nothing of ours
    for path in pid_dir(run_dir).glob("*.json"):
        path.unlink(missing_ok=True)
    return names


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``check`` until true or ``timeout`` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def tail(path: str | os.PathLike, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()[-64_000:]
    except FileNotFoundError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])
