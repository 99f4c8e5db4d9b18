"""Flame graphs of the running tier's Python processes while a load runs (py-spy).

Why: the CPU budget (cpu_budget.py) says *which* server costs most per item;
a flame graph says where inside it — how much of the gateway is FastAPI's
routing, the Redis client, aio-pika's framing, the event loop itself. py-spy
samples another process's Python stacks from outside (no code change, no
restart, little slowdown with ``--nonblocking``), which is why it is the tool
here rather than cProfile inside the server.

``with profiler.recording(run_dir, seconds, out_dir, stem) as graphs:`` starts
one ``py-spy record --subprocesses`` per Python service of the tier (the
gateway with its workers, the order service) and, when the block ends, waits
for them (bounded) and leaves one SVG per service in ``graphs`` (paths). It
needs permission to read another process's memory: root, or the same user with
``kernel.yama.ptrace_scope`` at 0; otherwise ProfileError says so in one line.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from seckill.errors import SeckillError
from seckill.stack import processes

PYTHON_SERVICES = ("gateway", "order-service")  # the tier's Python processes (nginx and the servers are not)


class ProfileError(SeckillError):
    """py-spy is missing or may not attach; the message says what to do."""


def py_spy() -> str:
    """The py-spy executable beside this Python, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if not found:
        raise ProfileError("py-spy is not installed: `pip install py-spy` (in the course's .venv: make tools)")
    return found


@contextmanager
def recording(run_dir: Path, seconds: float, out_dir: Path, stem: str):
    """Record each Python service of the running tier for ``seconds`` (1–600); yields the list of SVG paths."""
    if not 1 <= seconds <= 600:
        raise ProfileError(f"a profile lasts 1 to 600 s, not {seconds:g}")
    spy = py_spy()
    out_dir.mkdir(parents=True, exist_ok=True)
    started: list[tuple[subprocess.Popen, Path]] = []
    for service in PYTHON_SERVICES:
        proc = processes.alive(run_dir, processes.load(run_dir, service))
        if proc is None:
            continue
        svg = out_dir / f"{stem}-{service}.svg"
        command = [spy, "record", "--pid", str(proc.pid), "--subprocesses", "--nonblocking", "--rate", "100",
                   "--duration", str(max(1, round(seconds))), "--format", "flamegraph", "--output", str(svg)]
        started.append((subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), svg))
    if not started:
        raise ProfileError("no tier is running: start one (`seckill tier up local-stock`) before profiling it")
    graphs: list[Path] = []
    try:
        yield graphs
    finally:
        problems = []
        for child, svg in started:
            try:
                _, err = child.communicate(timeout=seconds + 60)
            except subprocess.TimeoutExpired:
                child.kill()
                _, err = child.communicate()
            if svg.exists() and svg.stat().st_size > 0:
                graphs.append(svg)
            else:
                problems.append((err or "").strip().splitlines()[-1:] or ["no output"])
        if problems and not graphs:
            reason = problems[0][0]
            hint = (" (run as root, or `sudo sysctl kernel.yama.ptrace_scope=0`)"
                    if "ermission" in reason or "ptrace" in reason.lower() else "")
            raise ProfileError(f"py-spy could not profile the tier: {reason[:200]}{hint}")
