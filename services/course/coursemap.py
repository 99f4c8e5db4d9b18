"""The course map: every notebook in order, its one-line goal, and for the graded labs your grade.

Read from the notebooks themselves (the first heading, ``# NN · goal``) so a
notebook added later appears without editing this file, and from
``seckill.course.grader.progress()`` (what ``seckill progress`` prints), so the map in
notebook 00 shows how far the learner has come.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from seckill.config import REPO_ROOT

HEADING = re.compile(r"^#\s+(\d+)\s*[·:.-]?\s*(.*)$")

# one-line goals in the seed's language, by notebook number (a notebook without one shows its English goal only)
GOALS_ZH = {
    "00": "从这里开始：环境检查、启动服务、第一次秒杀",
    "01": "需求与容量：5 步法，算出瓶颈和实例数",
    "10": "令牌桶：在流量到达任何组件之前削峰",
    "11": "Redis 限流：每个用户、每个 IP 一个共享计数",
    "12": "Redis 预减库存：瓶颈本身（原子操作防超卖）",
    "13": "发送订单：「已发送」必须意味着「不会丢」",
    "14": "消费订单：不丢单，不重复写",
    "20": "架构阶梯（上）：数据库直连、单个 Flask、nginx 后的四个 Flask",
    "21": "架构阶梯（下）：事件循环、不多一次往返的可靠交接、本地库存",
    "30": "故障实验（Redis）：超卖的场景与对账",
    "31": "故障实验（消息队列）：丢单、积压与恢复",
    "90": "面试演练：3 分钟答题与常见追问",
}


def _title(path: Path) -> tuple[str, str]:
    """(number, goal) from the notebook's first markdown heading."""
    number = path.stem.split("_", 1)[0]
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        return number, path.stem
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        source = "".join(cell.get("source", []))
        for line in source.splitlines():
            match = HEADING.match(line.strip())
            if match:
                return match.group(1), match.group(2).strip()
        break
    return number, path.stem.split("_", 1)[-1].replace("_", " ")


def _grade(lab: str, entry: dict | None) -> str:
    if not entry:
        return f"not graded yet · 未评分 — check(\"{lab}\")"
    state = "passed ✔" if entry.get("passed") else "not passed yet"
    if entry.get("impl") == "solutions":
        state = "reference " + state + " (grade your labs/: impl='labs')"
    date = str(entry.get("date", ""))[:10]
    return f"{state} {entry.get('score', '?')} · {date}".strip()


def entries(folder: Path | str | None = None, progress: dict | None = None) -> list[dict]:
    """One dict per notebook, in the course's order: notebook, goal, 目标, lab, grade."""
    from seckill.course import grader

    folder = Path(folder) if folder else REPO_ROOT / "notebooks"
    progress = grader.progress() if progress is None else progress
    lab_of = {Path(nb).name: lab for lab, (_module, nb, _title) in grader.LABS.items()}
    rows = []
    for path in sorted(folder.glob("*.ipynb")):
        number, goal = _title(path)
        lab = lab_of.get(path.name)
        rows.append({"notebook": path.stem, "goal": goal, "目标": GOALS_ZH.get(number, ""),
                     "lab": lab or "", "grade": _grade(lab, progress.get(lab)) if lab else ""})
    return rows


def table(folder: Path | str | None = None, progress: dict | None = None):
    """The course map as a pandas DataFrame (renders as a table in a notebook)."""
    import pandas as pd

    return pd.DataFrame(entries(folder, progress)).set_index("notebook")


class CourseMap:
    """Displays as an HTML table; the grade cell is green for a pass."""

    def __init__(self, folder: Path | str | None = None, progress: dict | None = None):
        self.rows = entries(folder, progress)

    def _repr_html_(self) -> str:
        e = html.escape
        body = []
        for r in self.rows:
            colour = "#1a7f37" if "passed ✔" in r["grade"] and not r["grade"].startswith("reference") else "#57606a"
            body.append(f"<tr><td style='text-align:left'><code>{e(r['notebook'])}</code></td>"
                        f"<td style='text-align:left'>{e(r['goal'])}<br><small>{e(r['目标'])}</small></td>"
                        f"<td style='text-align:left'>{e(r['lab'])}</td>"
                        f"<td style='text-align:left;color:{colour}'>{e(r['grade'])}</td></tr>")
        return ("<table class='seckill-course-map'><thead><tr><th style='text-align:left'>notebook</th>"
                "<th style='text-align:left'>goal · 目标</th><th style='text-align:left'>lab</th>"
                "<th style='text-align:left'>your grade · 成绩</th></tr></thead><tbody>"
                + "".join(body) + "</tbody></table>")

    def __repr__(self) -> str:
        return "\n".join(f"{r['notebook']:<28} {r['goal']}" + (f"  [{r['lab']}: {r['grade']}]" if r["lab"] else "")
                         for r in self.rows)
