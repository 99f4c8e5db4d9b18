"""The architecture as a drawn data-flow diagram (an SVG we generate, so it renders anywhere).

The seed's section 3 draws the system as a column of arrows; here it is the
same flow in two lanes — the **fast path** (快速路径: nginx → gateway → Redis →
answer in < 50 ms) and the **async path** (异步路径: RabbitMQ → order service →
PostgreSQL) — and every box names the module of this repository that *is* that
box, so a learner who knows the picture finds the code.

    from seckill.course import diagram
    diagram.architecture()          # displays in Jupyter (SVG); .svg is the text

The boxes and arrows are data (:data:`BOXES`, :data:`EDGES`); a test checks that
every module a box names exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

FAST = "#1f77b4"     # requests on the fast path
ASYNC = "#e07b00"    # orders on the async path
REPLY = "#2ca02c"    # the answer to the user


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int
    title: str           # English · 中文
    lines: tuple[str, ...]
    modules: tuple[str, ...]  # files of this repository, relative to its root
    fill: str = "#ffffff"


@dataclass(frozen=True)
class Edge:
    points: tuple[tuple[int, int], ...]   # a polyline; the arrow head is at the last point
    label: str
    label_at: tuple[int, int]
    colour: str
    dashed: bool = False
    both_ways: bool = False


def boxes(client_qps: int = 50_000, nginx_qps: int = 15_000) -> dict[str, Box]:
    return {
        "client": Box(20, 80, 170, 96, "Clients · 客户端", (f"{client_qps:,} QPS at the peak", "秒杀开始的一瞬间"),
                      ("services/measure/burst.py", "services/measure/loadtest.py")),
        "nginx": Box(250, 80, 190, 96, "nginx · 限流", (f"limit_req ≤ {nginx_qps:,} QPS", "beyond: 429 (削峰)"),
                     ("services/system/nginx.py", "services/system/nginx/seckill.conf")),
        "gateway": Box(500, 80, 230, 96, "gateway × 4 · 网关", ("token bucket → user/IP limits", "→ reserve → publish"),
                       ("services/system/gateway.py", "solutions/token_bucket.py")),
        "redis": Box(790, 80, 190, 96, "Redis · 预减", ("stock · buyers · limits", "one Lua script, atomic"),
                     ("solutions/stock.py", "solutions/rate_limit.py"), "#f4f9ff"),
        "rabbitmq": Box(500, 300, 230, 96, "RabbitMQ · 异步队列", ("persistent messages", "publisher confirms (削峰)"),
                        ("services/system/broker.py", "solutions/producer.py"), "#fff8f0"),
        "orders": Box(790, 300, 190, 96, "order service · 订单服务", ("idempotent insert", "+ guarded stock update"),
                      ("services/system/order_service.py", "solutions/consumer.py"), "#fff8f0"),
        "postgres": Box(790, 428, 190, 84, "PostgreSQL · 数据库", ("orders, products:", "the truth (持久化)"),
                        ("services/stack/db.py", "services/stack/schema.sql"), "#fff8f0"),
    }


def edges(client_qps: int = 50_000, nginx_qps: int = 15_000) -> list[Edge]:
    return [
        Edge(((190, 128), (250, 128)), f"{client_qps // 1000}k/s", (220, 120), FAST),
        Edge(((440, 128), (500, 128)), f"≤ {nginx_qps // 1000}k/s", (470, 120), FAST),
        Edge(((730, 128), (790, 128)), "预减", (760, 120), FAST, both_ways=True),
        Edge(((615, 176), (615, 300)), "publish + confirm · 发送", (622, 242), ASYNC),
        Edge(((730, 348), (790, 348)), "consume", (760, 340), ASYNC),
        Edge(((885, 396), (885, 428)), "", (0, 0), ASYNC),
        Edge(((560, 80), (560, 44), (105, 44), (105, 80)),
             "200 {\"success\": true} in < 50 ms · 立即返回「下单成功」", (332, 38), REPLY, dashed=True),
    ]


BOXES = boxes()
EDGES = edges()


def _arrow_head(p_from: tuple[int, int], p_to: tuple[int, int], colour: str) -> str:
    (x0, y0), (x1, y1) = p_from, p_to
    if x0 == x1:  # vertical
        d = 1 if y1 > y0 else -1
        pts = [(x1, y1), (x1 - 5, y1 - 9 * d), (x1 + 5, y1 - 9 * d)]
    else:
        d = 1 if x1 > x0 else -1
        pts = [(x1, y1), (x1 - 9 * d, y1 - 5), (x1 - 9 * d, y1 + 5)]
    return f'<polygon points="{" ".join(f"{x},{y}" for x, y in pts)}" fill="{colour}"/>'


def _box_svg(key: str, b: Box) -> str:
    cx = b.x + b.w // 2
    parts = [f'<g class="box" id="box-{key}">',
             f'<rect x="{b.x}" y="{b.y}" width="{b.w}" height="{b.h}" rx="8" fill="{b.fill}" '
             f'stroke="#444" stroke-width="1.3"/>',
             f'<text x="{cx}" y="{b.y + 20}" text-anchor="middle" font-weight="bold" font-size="14">'
             f'{escape(b.title)}</text>']
    for i, line in enumerate(b.lines):
        parts.append(f'<text x="{cx}" y="{b.y + 38 + 14 * i}" text-anchor="middle" font-size="11.5">'
                     f'{escape(line)}</text>')
    shown = " · ".join(Path(m).name for m in b.modules)
    size = min(10.5, round((b.w - 14) / (0.62 * len(shown)), 1))  # a long pair of names gets smaller type
    parts.append(f'<text x="{cx}" y="{b.y + b.h - 9}" text-anchor="middle" font-size="{size}" '
                 f'font-family="monospace" fill="#555">{escape(shown)}</text>')
    parts.append("</g>")
    return "".join(parts)


def _edge_svg(e: Edge) -> str:
    pts = " ".join(f"{x},{y}" for x, y in e.points)
    dash = ' stroke-dasharray="6 4"' if e.dashed else ""
    out = [f'<polyline points="{pts}" fill="none" stroke="{e.colour}" stroke-width="2.2"{dash}/>',
           _arrow_head(e.points[-2], e.points[-1], e.colour)]
    if e.both_ways:
        out.append(_arrow_head(e.points[1], e.points[0], e.colour))
    if e.label:
        vertical = e.points[0][0] == e.points[-1][0] and len(e.points) == 2
        anchor = "start" if vertical else "middle"
        out.append(f'<text x="{e.label_at[0]}" y="{e.label_at[1]}" text-anchor="{anchor}" font-size="11.5" '
                   f'fill="{e.colour}">{escape(e.label)}</text>')
    return "".join(out)


@dataclass(frozen=True)
class Diagram:
    svg: str

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.svg, encoding="utf-8")
        return path


def architecture(client_qps: int = 50_000, nginx_qps: int = 15_000) -> Diagram:
    """The data-flow diagram with the seed's numbers (or yours) on the arrows."""
    bx, ed = boxes(client_qps, nginx_qps), edges(client_qps, nginx_qps)
    lanes = (
        f'<rect x="8" y="20" width="984" height="170" rx="10" fill="{FAST}" fill-opacity="0.06"/>'
        f'<text x="20" y="206" font-size="12.5" fill="{FAST}" font-weight="bold">fast path · 快速路径 — '
        "the user waits only for this (Redis reserves, RabbitMQ confirms, answer)</text>"
        f'<rect x="8" y="232" width="984" height="290" rx="10" fill="{ASYNC}" fill-opacity="0.06"/>'
        f'<text x="20" y="256" font-size="12.5" fill="{ASYNC}" font-weight="bold">async path · 异步路径 — '
        "orders reach PostgreSQL at its own pace</text>"
    )
    legend = (
        '<text x="30" y="310" font-size="15" font-weight="bold">秒杀 = 削峰 + 异步 + 预减</text>'
        '<text x="30" y="332" font-size="12.5">flash sale = shave the peak + go async + pre-decrement</text>'
        '<text x="30" y="360" font-size="12">bottleneck 瓶颈: concurrent writes to one stock counter</text>'
        f'<line x1="30" y1="392" x2="70" y2="392" stroke="{FAST}" stroke-width="2.2"/>'
        '<text x="78" y="396" font-size="11.5">request · 请求</text>'
        f'<line x1="30" y1="414" x2="70" y2="414" stroke="{ASYNC}" stroke-width="2.2"/>'
        '<text x="78" y="418" font-size="11.5">order message · 订单消息</text>'
        f'<line x1="30" y1="436" x2="70" y2="436" stroke="{REPLY}" stroke-width="2.2" stroke-dasharray="6 4"/>'
        '<text x="78" y="440" font-size="11.5">answer to the user · 返回用户</text>'
        '<text x="30" y="470" font-size="10.5" font-family="monospace" fill="#555">'
        "grey names: the files that are each box</text>"
    )
    body = lanes + "".join(_edge_svg(e) for e in ed) + "".join(_box_svg(k, b) for k, b in bx.items()) + legend
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" class="seckill-architecture" width="880" height="466" '
           'viewBox="0 0 1000 530" font-family="Helvetica, Arial, \'Noto Sans CJK SC\', \'PingFang SC\', '
           f'sans-serif"><title>seckill architecture · 秒杀架构</title>{body}</svg>')
    return Diagram(svg)
