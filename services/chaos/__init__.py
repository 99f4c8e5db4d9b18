"""Failure labs: break the running system on purpose and check that nothing is oversold or lost.

    from seckill import chaos
    report = chaos.run("redis-down")      # inject the fault, drive load, check the invariants
    print(report)                          # a timeline of what happened and each invariant
    report.ok                              # True when every invariant held

``seckill chaos SCENARIO [--json]`` does the same from a shell. Each scenario is
one module of this package (named in SCENARIOS), with a ``run(**options)``
function returning a :class:`ChaosReport`. A scenario:
  * brings up the tier it needs on the running stack (or uses the one running),
  * creates its own sale, so it never depends on what ran before,
  * injects its fault at a known moment, drives a bounded load,
  * repairs what it broke (the stack is healthy again when it returns),
  * checks the invariants with :mod:`seckill.measure.invariants` and says which held.
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from seckill.errors import SeckillError

# scenario name → (module in this package, one line on what it breaks)
SCENARIOS: dict[str, tuple[str, str]] = {
    "race": ("race", "naive check-then-set under concurrent buyers, against the atomic Lua path"),
    "redis-down": ("redis_down", "Redis stopped mid-sale, then back empty and rebuilt by the gateway from PostgreSQL"),
    "redis-failover": ("redis_failover", "primary killed with a replica and Sentinel watching"),
    "mq-down": ("mq_down", "RabbitMQ stopped mid-sale, then back"),
    "crash-between": ("crash_between", "gateway killed between the Redis reservation and the publish"),
    "consumer-crash": ("consumer_crash", "order service killed after commit before ack, and before commit"),
    "backlog": ("backlog", "order service stopped under load: the queue grows and an alert fires"),
    "broker-stall": ("broker_stall", "RabbitMQ frozen (SIGSTOP): confirms stop; yes, no and unknown answers"),
    "pg-down": ("pg_down", "PostgreSQL stopped mid-sale: queue tiers keep answering, orders wait; db-direct 503"),
    "poison": ("poison", "messages no database takes, ahead of good orders: dead-lettered, nothing blocked"),
}


class ChaosError(SeckillError):
    """A scenario cannot run (unknown name, stack not reachable); the message says what to do."""


@dataclass
class Check:
    """One invariant: its name, whether it held, and the numbers behind the verdict."""
    name: str
    held: bool
    detail: str = ""


@dataclass
class ChaosReport:
    scenario: str
    title: str
    checks: list[Check] = field(default_factory=list)
    # (seconds since the start, what happened) — printed as a timeline
    events: list[tuple[float, str]] = field(default_factory=list)
    # figures a learner quotes later (failover_s, leaked, drain_per_s, ...)
    metrics: dict[str, Any] = field(default_factory=dict)
    # per-second (or per-sample) columns for charts: {"t": [...], "queue_depth": [...]}
    series: dict[str, list] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic, repr=False)

    def event(self, text: str) -> None:
        self.events.append((round(time.monotonic() - self.started, 2), text))

    def check(self, name: str, held: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(held), detail))
        return bool(held)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.held for c in self.checks)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("started")
        data["ok"] = self.ok
        data["checks"] = [asdict(c) for c in self.checks]
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)

    def __str__(self) -> str:
        lines = [f"{self.scenario}: {self.title}"]
        lines += [f"  {t:7.2f} s  {text}" for t, text in self.events]
        if self.metrics:
            lines.append("  " + " · ".join(f"{k} {v}" for k, v in self.metrics.items()))
        lines += [f"  {'held  ' if c.held else 'BROKEN'}  {c.name}" + (f" ({c.detail})" if c.detail else "")
                  for c in self.checks]
        lines.append("→ every invariant held" if self.ok else "→ an invariant broke")
        return "\n".join(lines)


def scenario_module(name: str):
    if name not in SCENARIOS:
        raise ChaosError(f"no scenario called {name!r}; choose one of: {', '.join(SCENARIOS)}")
    return importlib.import_module(f"{__name__}.{SCENARIOS[name][0]}")


def run(name: str, *, save: bool = True, **options) -> ChaosReport:
    """Run scenario ``name`` against the running stack; see each module for its options.

    The report is saved as results/chaos-<name>-<ts>.json (``save=False`` not to),
    so the rehearsal and the checklist can quote the learner's own failure labs.
    """
    report = scenario_module(name).run(**options)
    if save:
        from seckill.measure import results

        results.save("chaos", name, report.as_dict())
    return report
