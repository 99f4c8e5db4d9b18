"""`seckill checklist`: the seed's self-check list, each item with the evidence you have produced.

The items come from ``checklists/self_check.md`` (one source for the human list
and this command). Each item has evidence rules here, keyed by the item's id:
a pair of your measured figures, a failure lab that held, a lab you passed with
your own code, a rehearsal you saved. An item is proven (✓) when every rule
finds its evidence; otherwise each missing piece says what to run to produce it.

    from seckill.course import checklist
    report = checklist.evaluate("en")
    print(checklist.render(report))
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from seckill.measure import results
from seckill.config import REPO_ROOT
from seckill.errors import SeckillError
from seckill.course.rehearsal_content import FIGURE_UNITS, TEXT

CHECKLIST_PATH = REPO_ROOT / "checklists" / "self_check.md"
REHEARSAL_NOTEBOOK = "notebooks/90_interview_rehearsal.ipynb"

ITEM = re.compile(r"^- \[[ xX]\] `(?P<id>[a-z0-9-]+)` (?P<en>.+?)\s*$")


class ChecklistError(SeckillError):
    """The checklist file cannot be read as a list of items; the message says what is wrong."""


@dataclass
class Item:
    id: str
    en: str
    zh: str
    evidence_en: str = ""
    evidence_zh: str = ""

    def title(self, lang: str) -> str:
        return (self.zh if lang == "zh" else self.en).replace("**", "")


def parse_items(markdown: str) -> list[Item]:
    """The items of the checklist file: id, English line, the seed's Chinese line, and their evidence lines."""
    items: list[Item] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        match = ITEM.match(lines[i])
        i += 1
        if not match:
            continue
        zh = lines[i].strip() if i < len(lines) else ""
        if not zh or zh.startswith("-"):
            raise ChecklistError(f"checklist item {match['id']!r} needs its Chinese line right below it")
        item = Item(match["id"], match["en"], zh)
        i += 1
        current = None
        while i < len(lines) and lines[i].startswith("  "):  # the item's indented evidence lines
            line = lines[i].strip()
            if line.startswith("- Evidence:"):
                current, item.evidence_en = "en", line.removeprefix("- Evidence:").strip()
            elif line.startswith("- 证据："):
                current, item.evidence_zh = "zh", line.removeprefix("- 证据：").strip()
            elif current == "en":
                item.evidence_en += " " + line
            elif current == "zh":
                item.evidence_zh += line
            i += 1
        items.append(item)
    if not items:
        raise ChecklistError("the checklist file holds no items (lines like: - [ ] `id` English)")
    return items


def items(path: Path | str | None = None) -> list[Item]:
    path = Path(path) if path else CHECKLIST_PATH
    try:
        return parse_items(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ChecklistError(f"{path} is missing; restore it with `git checkout {path.name}`") from None


# -- evidence ---------------------------------------------------------------------------------------

WORDS = {
    "en": {
        "sep": " — ", "vs": "{a} vs {b}", "missing": "not measured yet", "run": "run",
        "lab_held": "every invariant held",
        "lab_broke": "an invariant broke ({checks}): fix it, then run `{cmd}` again",
        "lab_missing": "not run yet", "graded": "passed {labs} with your own code",
        "not_graded": "not passed with your own code yet: {labs}",
        "rehearsed": "you said the design part aloud and saved it ({date})",
        "not_rehearsed": "say the design part aloud in the interview rehearsal and save the attempt",
        "proven": "{n} of {total} items proven", "next": "what to do next",
        "all": "every item proven: you can answer all five with your own numbers",
        "labels": {
            "redis_vs_pg": "Redis Lua reservations vs PostgreSQL transactions",
            "flask_vs_db": "single Flask (Redis first) vs db-direct",
            "p99": "fast path p99 vs db-direct p99",
            "drain": "order service batched vs one order per transaction",
            "backlog": "backlog lab (the queue absorbs a stopped order service)",
            "mq_labs": "producer and consumer labs",
            "race": "concurrent race", "redis_fail": "Redis failure", "mq_loss": "message lost",
            "stock_lab": "stock reservation lab",
            "instances": "more instances: four Flask behind nginx vs one",
            "async": "async framework: FastAPI vs Flask", "local": "local stock",
            "limit_labs": "rate-limit boxes", "rehearsal": "the design part, rehearsed",
            "mq_db_labs": "MQ → DB boxes",
        },
    },
    # the same keys in Chinese: a translation table, so its shape repeats "en" on purpose
    "zh": {
        "sep": "，", "vs": "{a} 对比 {b}", "missing": "尚未测量", "run": "运行", "lab_held": "所有不变量都成立",
        "lab_broke": "有不变量被打破（{checks}）：修好后再运行 `{cmd}`",
        "lab_missing": "尚未运行", "graded": "你自己的代码通过了 {labs}",
        "not_graded": "你自己的代码还没有通过：{labs}",
        "rehearsed": "你已大声讲过“方案”这一段并保存（{date}）",
        "not_rehearsed": "在面试演练里把“方案”这一段大声讲出来并保存",
        "proven": "已证明 {n} / {total} 条", "next": "下一步",
        "all": "每一条都已证明：五个问题你都能用自己的数字回答",
        "labels": {
            "redis_vs_pg": "Redis Lua 预减 对比 PostgreSQL 事务",
            "flask_vs_db": "单个 Flask（先走 Redis）对比 db-direct",
            "p99": "快速路径 p99 对比 db-direct p99",
            "drain": "订单服务批量写入 对比 每个订单一个事务",
            "backlog": "堆积实验（队列吸收了停掉的订单服务）",
            "mq_labs": "生产者和消费者实验",
            "race": "并发竞争", "redis_fail": "Redis 失败", "mq_loss": "MQ 丢失",
            "stock_lab": "库存预减实验",
            "instances": "加实例：Nginx 后 4 个 Flask 对比 1 个",
            "async": "异步框架：FastAPI 对比 Flask", "local": "本地库存",
            "limit_labs": "限流方框", "rehearsal": "“方案”这一段的演练",
            "mq_db_labs": "MQ → DB 方框",
        },
    },
}


@dataclass
class Context:
    """Everything the rules look at: measured figures, lab grades, saved rehearsals."""
    measured: dict
    progress: dict
    rehearsals: list[dict]
    lang: str = "en"

    @property
    def w(self) -> dict:
        return WORDS[self.lang]


@dataclass
class Piece:
    label: str
    ok: bool
    text: str
    sources: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)  # commands that would produce the missing evidence


Rule = Callable[[Context], Piece]


def _fig_text(ctx: Context, fig: results.Figure) -> str:
    unit = TEXT[ctx.lang]["units"][FIGURE_UNITS[fig.name]]
    return f"{results.number(fig.value)}{unit}" if unit == "×" else f"{results.number(fig.value)} {unit}"


def pair(label: str, a: str, b: str | None = None) -> Rule:
    """Evidence: figure ``a`` (against figure ``b``), both measured."""
    def rule(ctx: Context) -> Piece:
        figs = [results.figure(ctx.measured, n) for n in (a, b) if n]
        name = ctx.w["labels"][label]
        missing = [f for f in figs if not f.known]
        if missing:
            todo = sorted({f.how for f in missing})
            commands = ", ".join(f"`{t}`" for t in todo)
            return Piece(name, False, f"{ctx.w['missing']}{ctx.w['sep']}{ctx.w['run']} {commands}", todo=todo)
        texts = [_fig_text(ctx, f) for f in figs]
        shown = ctx.w["vs"].format(a=texts[0], b=texts[1]) if len(texts) == 2 else texts[0]
        sources = sorted({Path(f.source).name for f in figs if f.source})
        return Piece(name, True, shown, sources)
    return rule


def chaos_any(label: str, scenarios: tuple[str, ...]) -> Rule:
    """Evidence: at least one of ``scenarios`` ran, and every one that ran held its invariants."""
    def rule(ctx: Context) -> Piece:
        name = ctx.w["labels"][label]
        ran = {s: (ctx.measured.get("chaos") or {}).get(s) for s in scenarios}
        ran = {s: e for s, e in ran.items() if e}
        if not ran:
            cmd = f"seckill chaos {scenarios[0]}"
            return Piece(name, False, f"{ctx.w['lab_missing']}{ctx.w['sep']}{ctx.w['run']} `{cmd}`", todo=[cmd])
        broken = {s: e for s, e in ran.items() if not e.get("ok")}
        sources = sorted(Path(e["source"]).name for e in ran.values() if e.get("source"))
        if broken:
            s, e = next(iter(broken.items()))
            checks = ", ".join(str(c.get("name")) for c in e.get("checks") or [] if not c.get("held")) or "?"
            cmd = f"seckill chaos {s}"
            return Piece(name, False, f"{s}: " + ctx.w["lab_broke"].format(checks=checks, cmd=cmd), sources, [cmd])
        return Piece(name, True, f"{', '.join(ran)}: {ctx.w['lab_held']}", sources)
    return rule


def graded(label: str, labs: tuple[str, ...]) -> Rule:
    """Evidence: each of ``labs`` passed with the learner's own code (grading the reference proves nothing)."""
    def rule(ctx: Context) -> Piece:
        name = ctx.w["labels"][label]
        mine = {lab: e for lab, e in ((lab, ctx.progress.get(lab) or {}) for lab in labs)
                if e.get("passed") and e.get("impl") != "solutions"}
        todo = [f"seckill grade {lab}" for lab in labs if lab not in mine]
        if todo:
            return Piece(name, False, ctx.w["not_graded"].format(labs=", ".join(f"`{t}`" for t in todo)), todo=todo)
        scores = ", ".join(f"{lab} {e.get('score', '?')}" for lab, e in mine.items())
        return Piece(name, True, ctx.w["graded"].format(labs=scores), ["progress.json"])
    return rule


def rehearsed(label: str, part: str) -> Rule:
    """Evidence: a saved rehearsal attempt with notes for ``part``."""
    def rule(ctx: Context) -> Piece:
        name = ctx.w["labels"][label]
        for record in ctx.rehearsals:  # newest first
            if str((record.get("notes") or {}).get(part) or "").strip():
                return Piece(name, True, ctx.w["rehearsed"].format(date=str(record.get("saved_at", ""))[:10]),
                             [Path(record["path"]).name])
        return Piece(name, False, f"{ctx.w['not_rehearsed']}{ctx.w['sep']}{REHEARSAL_NOTEBOOK}",
                     todo=[REHEARSAL_NOTEBOOK])
    return rule


RULES: dict[str, list[Rule]] = {
    "why-redis-not-db": [pair("redis_vs_pg", "redis_ops", "pg_tx"), pair("flask_vs_db", "t1_rps", "t0_rps")],
    "why-mq": [pair("p99", "t1_p99", "t0_p99"), pair("drain", "drain_batched", "drain_one"),
               chaos_any("backlog", ("backlog",)), graded("mq_labs", ("producer", "consumer"))],
    "three-oversell": [chaos_any("race", ("race",)), chaos_any("redis_fail", ("redis-down", "redis-failover")),
                       chaos_any("mq_loss", ("mq-down", "crash-between", "consumer-crash")),
                       graded("stock_lab", ("stock",))],
    "three-scale-out": [pair("instances", "t2_rps", "t1_rps"), pair("async", "t3_rps", "t1_rps"),
                        pair("local", "t4_rps")],
    "data-flow": [graded("limit_labs", ("token_bucket", "rate_limit")), graded("stock_lab", ("stock",)),
                  graded("mq_db_labs", ("producer", "consumer")), rehearsed("rehearsal", "design")],
}


@dataclass
class ItemResult:
    id: str
    title: str
    ok: bool
    evidence: list[Piece]


@dataclass
class Report:
    lang: str
    items: list[ItemResult]

    @property
    def proven(self) -> int:
        return sum(i.ok for i in self.items)

    def todo(self) -> list[str]:
        """Every command that would produce missing evidence, once each, in the list's order."""
        seen: list[str] = []
        for item in self.items:
            for piece in item.evidence:
                seen += [t for t in piece.todo if t not in seen]
        return seen

    def as_dict(self) -> dict:
        return {"lang": self.lang, "proven": self.proven, "total": len(self.items), "todo": self.todo(),
                "items": [asdict(i) for i in self.items]}


def evaluate(lang: str = "en", *, measured: dict | None = None, progress: dict | None = None,
             rehearsals: list[dict] | None = None, path: Path | str | None = None) -> Report:
    """Check every item of the list against the learner's records (read from disk unless given)."""
    if lang not in WORDS:
        raise ChecklistError(f"language must be one of {', '.join(WORDS)}, not {lang!r}")
    if measured is None:
        measured = results.measured()
    if progress is None:
        from seckill.course.grader import progress as read_progress

        progress = read_progress()
    if rehearsals is None:
        from seckill.course.rehearsal import attempts

        rehearsals = attempts()
    ctx = Context(measured, progress, rehearsals, lang)
    out = []
    for item in items(path):
        if item.id not in RULES:
            raise ChecklistError(f"checklist item {item.id!r} has no evidence rule in services/course/checklist.py")
        pieces = [rule(ctx) for rule in RULES[item.id]]
        out.append(ItemResult(item.id, item.title(lang), all(p.ok for p in pieces), pieces))
    return Report(lang, out)


def render(report: Report) -> str:
    """The report as terminal text: ✓/✗ per item, one line per piece of evidence, then what to do next."""
    w = WORDS[report.lang]
    lines = []
    for item in report.items:
        lines.append(f"{'✓' if item.ok else '✗'} {item.title}")
        for p in item.evidence:
            where = f"  ({', '.join(p.sources)})" if p.sources else ""
            lines.append(f"    {'✓' if p.ok else '✗'} {p.label}: {p.text}{where}")
    lines.append("")
    lines.append(w["proven"].format(n=report.proven, total=len(report.items)))
    todo = report.todo()
    lines.append(f"{w['next']}: " + " · ".join(f"`{t}`" if " " in t else t for t in todo) if todo else w["all"])
    return "\n".join(lines)
