"""Capacity estimation (step 2 of the seed's 5-step framework · 能力评估): demand vs capacity per layer.

Pure arithmetic, no servers: a :class:`Scenario` (how much traffic, how many
items, how fast they sell) and the :class:`Capacities` of one instance of each
layer (nginx, the app tier, Redis, PostgreSQL) give a :class:`Plan`: each
layer's demand, how many instances it needs (``ceil(demand / capacity)``), and
the bottleneck — the layer whose single instance is the most overloaded.

The defaults are the seed's scenario: 10,000 QPS at the peak, 100,000 items sold
in 10 s, 50,000 QPS from clients into nginx (15,000 QPS per nginx), Flask at
1,000 QPS per instance, Redis at 100,000 ops/s, PostgreSQL at 1,000 writes/s.
:func:`from_results` replaces each of those with the learner's own measurement
when ``results/`` has one (``seckill bench``, ``seckill load``), and every
figure carries its source, so the calculator can say whose number it is.

Which demand reaches which layer:

  * nginx sees every client request (``client_qps``), also those it turns away;
  * the app tier sees what the limits let through (``peak_qps``);
  * Redis sees ``redis_ops_per_request`` operations per admitted request
    (the gateway's user limit, IP limit and the reserve script: 3);
  * PostgreSQL depends on the design: **db-direct** (tier T0) runs one transaction
    per admitted request; **redis+queue** (削峰 + 异步 + 预减) writes only the
    orders, and the queue lets it write them at its own pace: the 100,000 orders
    of a 10 s sale spread over ``drain_target_s`` seconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from seckill.errors import SeckillError

DESIGNS = ("redis+queue", "db-direct")

# The seed's numbers (section 2: 10000 QPS, DB 1000 QPS; 3: client 50000, nginx 15000;
# 5: the optimisation roadmap's QPS per design; 6: Redis 100000+ QPS).
SEED_TIER_RPS = {"db-direct": 1_000.0, "flask": 1_000.0, "flask-x4": 5_000.0, "fastapi": 25_000.0,
                 "local-stock": 50_000.0}
SEED_SOURCES = {
    "nginx": "seed §3 (Nginx 限流 15000 QPS)",
    "app": "seed §5 (roadmap: QPS per design)",
    "redis": "seed §6 (Redis 100000+ QPS)",
    "db": "seed §2 (DB 只能 1000 QPS)",
}
LAYERS = ("nginx", "app", "redis", "db")
LAYER_LABELS = {  # (English, 中文)
    "nginx": ("nginx", "Nginx 限流"),
    "app": ("app tier", "应用层"),
    "redis": ("Redis", "Redis 预减"),
    "db": ("PostgreSQL", "数据库"),
}
UNITS = {"nginx": "requests/s", "app": "requests/s", "redis": "Redis calls/s", "db": "writes/s"}
UNITS_ZH = {"requests/s": "请求/秒", "Redis calls/s": "Redis 调用/秒", "writes/s": "写入/秒"}


class CapacityError(SeckillError):
    """An input the model cannot use (zero, negative, inconsistent); the message says which and why."""


@dataclass(frozen=True)
class Scenario:
    """Step 1 (需求澄清): the traffic and the sale. Defaults: the seed's interview opening."""

    client_qps: float = 50_000          # what clients send at the peak (nginx sees all of it)
    peak_qps: float = 10_000            # what the limits let through to the app tier
    items: int = 100_000                # stock on sale
    sell_out_s: float = 10              # the sale is over in this many seconds
    design: str = "redis+queue"         # or "db-direct" (every request a PostgreSQL transaction)
    drain_target_s: float = 120         # with the queue: every order in PostgreSQL within this time
    redis_ops_per_request: float = 3    # user limit + IP limit + reserve script

    @property
    def orders_per_s(self) -> float:
        """The rate at which items sell: items / sell-out time (never more than the admitted requests)."""
        return min(self.items / self.sell_out_s, self.peak_qps)

    @property
    def sale_s(self) -> float:
        """How long selling out really takes: the sell-out time, or longer if too few requests get through."""
        return max(self.sell_out_s, self.items / self.peak_qps)


@dataclass(frozen=True)
class Capacities:
    """What ONE instance of each layer handles, and where each number comes from."""

    nginx_rps: float = 15_000
    app_rps: float = SEED_TIER_RPS["flask"]
    redis_ops_per_s: float = 100_000
    db_writes_per_s: float = 1_000
    app_tier: str = "flask"
    sources: dict[str, str] = field(default_factory=lambda: dict(SEED_SOURCES))

    def of(self, layer: str) -> float:
        return {"nginx": self.nginx_rps, "app": self.app_rps, "redis": self.redis_ops_per_s,
                "db": self.db_writes_per_s}[layer]


@dataclass(frozen=True)
class Layer:
    name: str
    label: str
    label_zh: str
    demand: float          # per second, in `unit`
    capacity: float        # of one instance
    unit: str
    instances: int         # ceil(demand / capacity); 0 when the design does not use the layer
    utilisation: float     # demand / capacity of ONE instance (1.0 = exactly full)
    source: str
    bottleneck: bool = False


@dataclass(frozen=True)
class Plan:
    scenario: Scenario
    capacities: Capacities
    layers: tuple[Layer, ...]
    notes: tuple[str, ...]

    @property
    def bottleneck(self) -> Layer:
        return next(layer for layer in self.layers if layer.bottleneck)

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)

    @property
    def queue_peak(self) -> float:
        """Orders waiting in RabbitMQ when the sale ends (redis+queue; 0 for db-direct)."""
        if self.scenario.design != "redis+queue":
            return 0.0
        sc, db = self.scenario, self.layer("db")
        drained = db.instances * db.capacity * sc.sale_s
        return max(0.0, sc.items - drained)

    @property
    def drain_s(self) -> float:
        """Seconds from the start of the sale until the last order is in PostgreSQL."""
        sc, db = self.scenario, self.layer("db")
        if sc.design != "redis+queue":
            return sc.sale_s
        return max(sc.sale_s, sc.items / (db.instances * db.capacity))

    def queue_depth(self, t: float) -> float:
        """Messages waiting in RabbitMQ ``t`` seconds after the sale opens (a fluid model).

        Orders arrive at ``orders_per_s`` until the sale is over; PostgreSQL takes
        them at ``instances × capacity``. The difference piles up in the queue and
        drains after the sale: that pile is the peak the queue shaves off (削峰).
        """
        sc = self.scenario
        if sc.design != "redis+queue" or t <= 0:
            return 0.0
        db = self.layer("db")
        rate_in, rate_out = sc.orders_per_s, db.instances * db.capacity
        if rate_in <= rate_out:
            return 0.0
        built = (rate_in - rate_out) * min(t, sc.sale_s)
        return max(0.0, built - rate_out * max(0.0, t - sc.sale_s))

    def as_rows(self) -> list[dict[str, Any]]:
        return [{"layer": f"{x.label} · {x.label_zh}", "demand": round(x.demand), "unit": x.unit,
                 "capacity of one": round(x.capacity), "load of one": f"{x.utilisation:.0%}",
                 "instances needed": x.instances, "bottleneck": "◀" if x.bottleneck else "",
                 "source of capacity": x.source} for x in self.layers]

    def as_frame(self):
        import pandas as pd

        return pd.DataFrame(self.as_rows()).set_index("layer")

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": asdict(self.scenario), "layers": [asdict(x) for x in self.layers],
                "bottleneck": self.bottleneck.name, "queue_peak": self.queue_peak, "drain_s": self.drain_s,
                "notes": list(self.notes)}

    def verdict(self, lang: str = "en") -> str:
        """One sentence: the bottleneck, by how much, and what it takes."""
        b, sc = self.bottleneck, self.scenario
        over = b.utilisation
        if lang == "zh":
            if over <= 1:
                text = (f"每层一个实例就够：最忙的是{b.label_zh}（{over:.0%}）。")
            else:
                text = (f"瓶颈是{b.label_zh}：需要 {b.demand:,.0f} {UNITS_ZH[b.unit]}，一个实例只能处理 "
                        f"{b.capacity:,.0f}（{over:.1f} 倍），需要 {b.instances} 个实例。")
            if sc.design == "redis+queue":
                text += (f"队列削峰：{sc.items:,} 个订单在 {self.drain_s:,.0f} 秒内写入数据库，"
                         f"峰值积压 {self.queue_peak:,.0f} 条消息。")
            return text
        if over <= 1:
            text = f"One instance of each layer holds: the busiest is {b.label} at {over:.0%} of one instance."
        else:
            text = (f"The bottleneck is {b.label}: it must handle {b.demand:,.0f} {b.unit} and one instance "
                    f"takes {b.capacity:,.0f} ({over:.1f}×), so it needs {b.instances} instances.")
        if sc.design == "redis+queue":
            text += (f" The queue shaves the peak: all {sc.items:,} orders are in PostgreSQL after "
                     f"{self.drain_s:,.0f} s, with at most {self.queue_peak:,.0f} messages waiting.")
        return text


def _positive(name: str, value: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CapacityError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise CapacityError(f"{name} must be greater than 0, got {value!r}")
    return number


def validate(sc: Scenario, cap: Capacities) -> None:
    """Reject what the model cannot use, with a message naming the input."""
    for name in ("client_qps", "peak_qps", "items", "sell_out_s", "drain_target_s", "redis_ops_per_request"):
        _positive(name, getattr(sc, name))
    for name in ("nginx_rps", "app_rps", "redis_ops_per_s", "db_writes_per_s"):
        _positive(name, getattr(cap, name))
    if sc.design not in DESIGNS:
        raise CapacityError(f"design {sc.design!r}: choose one of {', '.join(DESIGNS)}")
    if sc.peak_qps > sc.client_qps:
        raise CapacityError(f"peak_qps ({sc.peak_qps:,.0f}) cannot exceed client_qps ({sc.client_qps:,.0f}): "
                            "the limits only let through part of what clients send")


def plan(sc: Scenario | None = None, cap: Capacities | None = None) -> Plan:
    """Demand vs capacity for each layer, the instances each needs, and the bottleneck."""
    sc = sc or Scenario()
    cap = cap or Capacities()
    validate(sc, cap)
    if sc.design == "redis+queue":
        redis_demand = sc.peak_qps * sc.redis_ops_per_request
        # the queue holds the orders; PostgreSQL needs only to finish within drain_target_s
        db_demand = min(sc.orders_per_s, sc.items / sc.drain_target_s)
    else:  # db-direct: no Redis, no queue, one transaction with a row lock per admitted request
        redis_demand = 0.0
        db_demand = sc.peak_qps
    demand = {"nginx": sc.client_qps, "app": sc.peak_qps, "redis": redis_demand, "db": db_demand}
    layers = []
    for name in LAYERS:
        capacity = cap.of(name)
        need = demand[name]
        instances = math.ceil(need / capacity - 1e-9) if need > 0 else 0
        label, label_zh = LAYER_LABELS[name]
        if name == "app":
            label, label_zh = f"app tier ({cap.app_tier})", f"应用层 ({cap.app_tier})"
        layers.append(Layer(name, label, label_zh, need, capacity, UNITS[name], instances, need / capacity,
                            cap.sources.get(name, "?")))
    # a tie goes to the deeper layer: a database is harder to multiply than a web process
    worst = max(reversed(layers), key=lambda x: x.utilisation)
    layers = [replace(x, bottleneck=x is worst) for x in layers]
    notes = []
    if sc.items / sc.sell_out_s > sc.peak_qps:
        notes.append(f"Selling {sc.items:,} items in {sc.sell_out_s:g} s needs {sc.items / sc.sell_out_s:,.0f} "
                     f"buys/s but only {sc.peak_qps:,.0f} requests/s get through: the sale lasts "
                     f"{sc.sale_s:,.0f} s.")
    if sc.design == "redis+queue" and sc.items / sc.drain_target_s < sc.orders_per_s:
        notes.append(f"The queue absorbs the peak: orders arrive at {sc.orders_per_s:,.0f}/s, PostgreSQL "
                     f"needs only {db_demand:,.0f} writes/s to finish within {sc.drain_target_s:g} s.")
    return Plan(sc, cap, tuple(layers), tuple(notes))


def _yours(path: str | None) -> str:
    return f"yours ({Path(path).name})" if path else "yours"


def from_results(measured: dict | None = None, app_tier: str = "flask") -> Capacities:
    """The seed's capacities, each replaced by the learner's own measurement when results/ has one.

    ``measured`` is :func:`seckill.measure.results.measured` (read afresh when None). The
    app tier's capacity is the requests/s measured on ``app_tier``; nginx, Redis
    and PostgreSQL come from the bench's ceilings (nginx ``return 200``, the
    reserve Lua script under redis-benchmark, guarded-update transactions/s).
    """
    if measured is None:
        from seckill.measure import results

        measured = results.measured()
    if app_tier not in SEED_TIER_RPS:
        raise CapacityError(f"app tier {app_tier!r}: choose one of {', '.join(SEED_TIER_RPS)}")
    values = {"nginx_rps": 15_000.0, "app_rps": SEED_TIER_RPS[app_tier], "redis_ops_per_s": 100_000.0,
              "db_writes_per_s": 1_000.0}
    sources = dict(SEED_SOURCES)
    if app_tier != "flask":
        sources["app"] = f"seed §5 ({app_tier})"
    ceilings = measured.get("ceilings") or {}
    for key, layer, field_name in (("nginx_return_200_rps", "nginx", "nginx_rps"),
                                   ("redis_lua_ops_per_s", "redis", "redis_ops_per_s"),
                                   ("postgres_tx_per_s", "db", "db_writes_per_s")):
        value = ceilings.get(key)
        if isinstance(value, (int, float)) and value > 0:
            values[field_name] = float(value)
            sources[layer] = _yours(ceilings.get("source"))
    tier = (measured.get("tiers") or {}).get(app_tier) or {}
    rps = tier.get("requests_per_s")
    if isinstance(rps, (int, float)) and rps > 0:
        values["app_rps"] = float(rps)
        sources["app"] = _yours(tier.get("source"))
    return Capacities(app_tier=app_tier, sources=sources, **values)


def measured_tiers(measured: dict | None = None) -> list[str]:
    """The tiers the learner has measured, in the ladder's order."""
    if measured is None:
        from seckill.measure import results

        measured = results.measured()
    tiers = measured.get("tiers") or {}
    return [t for t in SEED_TIER_RPS if (tiers.get(t) or {}).get("requests_per_s")]
