"""Where the CPU goes while a tier sells: CPU milliseconds per item sold, by server.

Why: on one machine every part of the system — gateway, broker, order
service, database, Redis and the load generator — draws on the same cores.
Once they are all busy, the sale cannot go faster than
``cores / (CPU seconds per item)``, whichever part is "slow". So the question
"where does the time go" has a plain answer in CPU per item, one figure per
server, measured over the same window as the sale; and the sum tells how many
cores a goal needs (100,000 items in 10 s at 4 ms per item is 40 cores).

Processes are found from the pid records the stack keeps for everything it
starts (processes.load/alive), each with its children, grouped by service
name; on the Docker backend the servers run in containers and count as
"other". The generator is this process and the children
it waited for (``os.times``); "other" is whatever else the machine did
(psutil's system-wide CPU times minus the rest). Uses psutil, no sampling:
CPU times are counters the kernel keeps, so measuring costs nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from seckill.stack import processes


@dataclass
class Snapshot:
    """CPU seconds so far: per (service, pid) of the stack, this process (with its reaped children), the machine."""

    per_process: dict[tuple[str, int], float] = field(default_factory=dict)
    generator_s: float = 0.0
    machine_busy_s: float = 0.0


def _service_of(name: str) -> str:
    """A process record's name as a group: gateway-1 … gateway-4 (tier flask-x4) are all "gateway"."""
    base, _, number = name.rpartition("-")
    return base if base and number.isdigit() else name


def snapshot(run_dir: Path) -> Snapshot:
    """The CPU counters now (seconds), for :func:`per_item`.

    Each server the stack started (its pid record under ``run_dir``, still the
    same process) with all its children: the gateway's workers, PostgreSQL's
    backends (which write their title over their environment, so a marker scan
    would miss them), RabbitMQ's helpers.
    """
    taken = Snapshot()
    directory = processes.pid_dir(run_dir)
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        proc = processes.alive(run_dir, processes.load(run_dir, path.stem))
        if proc is None:
            continue
        try:
            family = [proc, *proc.children(recursive=True)]
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for member in family:
            try:
                times = member.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
                continue
            taken.per_process[(_service_of(path.stem), member.pid)] = times.user + times.system
    mine = os.times()
    taken.generator_s = mine.user + mine.system + mine.children_user + mine.children_system
    machine = psutil.cpu_times()
    taken.machine_busy_s = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
    return taken


def per_item(before: Snapshot, after: Snapshot, items: int) -> dict[str, float]:
    """CPU milliseconds per item between two snapshots, by service, plus generator, other and total.

    ``items``: what was sold in the window (> 0). A process that ended inside
    the window is missed (its counters went with it); one started inside it is
    counted from zero. Returns {"gateway": 1.9, "rabbitmq": 0.6, ..., "generator": 0.4,
    "other": 0.1, "total": 4.2} sorted by cost, the largest first.
    """
    if items <= 0:
        raise ValueError(f"items must be at least 1, not {items}")
    spent: dict[str, float] = {}
    for key, now in after.per_process.items():
        spent[key[0]] = spent.get(key[0], 0.0) + max(0.0, now - before.per_process.get(key, 0.0))
    spent["generator"] = max(0.0, after.generator_s - before.generator_s)
    machine = max(0.0, after.machine_busy_s - before.machine_busy_s)
    spent["other"] = max(0.0, machine - sum(spent.values()))
    ranked = dict(sorted(((name, round(1000 * secs / items, 3)) for name, secs in spent.items()),
                         key=lambda pair: -pair[1]))
    ranked["total"] = round(1000 * max(machine, sum(spent.values())) / items, 3)
    return ranked


def cores_needed(ms_per_item: float, items_per_s: float) -> float:
    """Cores kept busy selling ``items_per_s`` at ``ms_per_item`` CPU each (10,000/s at 4 ms: 40)."""
    return ms_per_item * items_per_s / 1000.0
