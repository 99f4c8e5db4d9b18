"""The interview rehearsal: the seed's 3-minute script and follow-up drill, filled with YOUR numbers.

The seed (section 6) gives a 3-minute answer in four timed parts, and (section
7) the follow-up questions an interviewer asks. Said with the seed's numbers it
is a recitation; said with numbers you measured on your own machine it is
evidence. So everything here is built from :func:`seckill.measure.results.measured`:

    from seckill.course import rehearsal
    from seckill.measure import results
    m = results.measured()
    print(rehearsal.fill_script(m, "en").markdown())     # the script, your figures marked "(yours)"
    for card in rehearsal.cards("zh", m): ...             # the drill, in Chinese

A figure that no record holds is never guessed: the text says what to run to
produce it ("(not measured yet: run `make bench`)"). The seed's own figures stay,
marked "(seed)".

An :class:`Attempt` holds one rehearsal: notes per part, an answer per card,
the reveal (refused until the answer is written) and a self-rating 1-5. Each
saved attempt is its own file, ``results/rehearsal-<ts>.json``, so earlier
attempts are kept and the ratings can be compared over time.

The widgets live in :mod:`seckill.course.rehearsal_ui`; this module is plain functions
and data, tested without a browser.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from seckill.measure import results
from seckill.errors import SeckillError
from seckill.course.rehearsal_content import CARD_ORDER, FIGURE_UNITS, LANGS, PART_ORDER, PART_SECONDS, TEXT

KIND = "rehearsal"
RATINGS = range(1, 6)
# The seed's performance table (section 5): QPS per tier, quoted beside yours.
SEED_TIER_QPS = {"flask": 1000, "flask-x4": 5000, "fastapi": 25000, "local-stock": 50000}
SEED_PEAK_QPS = 10000
# The figures of each failure lab worth saying aloud (its report has many more); others: the first few.
HEADLINE_METRICS = {
    "race": ("naive_oversold", "atomic_oversold"),
    "redis-down": ("outage_s", "answers_503", "rebuild_s"),
    "redis-failover": ("failover_s", "answers_503", "lost_acknowledged"),
    "mq-down": ("down_s", "answers_503", "kept_by_queue", "lost"),
    "crash-between": ("crashes", "leaked", "sold_in_total"),
    "consumer-crash": ("redelivered", "duplicates_prevented", "lost"),
    "backlog": ("peak_depth", "alert_after_stop_s", "drain_per_s", "lost"),
}


class RehearsalError(SeckillError):
    """A rehearsal step asked for something it cannot do yet; the message says what to do."""


def text(lang: str) -> dict:
    """All words of the rehearsal in ``lang`` ("en" or "zh")."""
    if lang not in LANGS:
        raise RehearsalError(f"language must be one of {', '.join(LANGS)}, not {lang!r}")
    return TEXT[lang]


# -- filling templates with figures ------------------------------------------------------------

class _Filler:
    """The mapping str.format_map reads: each field name becomes a figure, a lab verdict or a grade."""

    def __init__(self, measured: dict, lang: str, progress: dict | None, markdown: bool):
        self.measured, self.t, self.progress, self.markdown = measured, text(lang), progress or {}, markdown
        self.sources: list[str] = []

    def _yours(self, value: str, source: str | None) -> str:
        if source and source not in self.sources:
            self.sources.append(source)
        return f"{f'**{value}**' if self.markdown else value} {self.t['yours']}"

    def __getitem__(self, key: str) -> str:
        if key == "chaos_all":
            return self.chaos_all()
        if key.startswith("chaos_"):
            return self.chaos(key.removeprefix("chaos_").replace("_", "-"))
        if key.startswith("grade_"):
            return self.grade(key.removeprefix("grade_"))
        fig = results.figure(self.measured, key)  # KeyError for a name that is no figure: a typo in a template
        if not fig.known:
            return self.t["missing"].format(how=fig.how)
        unit = self.t["units"][FIGURE_UNITS[key]]
        value = f"{results.number(fig.value)}{unit}" if unit == "×" else f"{results.number(fig.value)} {unit}"
        return self._yours(value, fig.source)

    def chaos(self, scenario: str) -> str:
        from seckill.chaos import SCENARIOS

        if scenario not in SCENARIOS:
            raise KeyError(f"no failure lab called {scenario!r}")
        entry = (self.measured.get("chaos") or {}).get(scenario)
        if not entry:
            return self.t["chaos"]["missing"].format(scenario=scenario)
        if entry.get("ok"):
            verdict = self.t["chaos"]["held"]
        else:
            broken = [str(c.get("name")) for c in entry.get("checks") or [] if not c.get("held")]
            verdict = self.t["chaos"]["broke"].format(checks=", ".join(broken) or "?")
        metrics = entry.get("metrics") or {}
        keys = [k for k in HEADLINE_METRICS.get(scenario, ()) if k in metrics] or list(metrics)
        numbers = [f"{k} {results.number(metrics[k])}" for k in keys
                   if isinstance(metrics[k], (int, float)) and not isinstance(metrics[k], bool)
                   and math.isfinite(metrics[k])][:4]
        return self._yours(" · ".join([verdict, *numbers]), entry.get("source"))

    def chaos_all(self) -> str:
        from seckill.chaos import SCENARIOS

        done = [name for name in SCENARIOS if (self.measured.get("chaos") or {}).get(name)]
        if not done:
            return self.t["chaos"]["none"].format(all=", ".join(SCENARIOS))
        entries = self.measured["chaos"]
        lines = [f"- {name}" + (f" ({entries[name]['title']})" if entries[name].get("title") else "")
                 + f": {self.chaos(name)}" for name in done]
        lines += [f"- {name}: {self.t['chaos']['missing'].format(scenario=name)}"
                  for name in SCENARIOS if name not in done]
        return "\n".join(lines)

    def grade(self, lab: str) -> str:
        from seckill.course.grader import LABS

        if lab not in LABS:
            raise KeyError(f"no lab called {lab!r}")
        entry = self.progress.get(lab)
        g = self.t["grade"]
        if not entry:
            return g["missing"].format(lab=lab)
        if entry.get("impl") == "solutions":
            return g["reference"].format(lab=lab)
        if not entry.get("passed"):
            return g["failed"].format(lab=lab, score=entry.get("score", "?"))
        return self._yours(g["passed"].format(score=entry.get("score", "?"), date=str(entry.get("date", ""))[:10]),
                           None)


def fill(template: str, measured: dict, lang: str = "en", progress: dict | None = None,
         markdown: bool = True) -> str:
    """``template`` with every {field} replaced by the learner's figure, verdict or grade (or what to run)."""
    return template.format_map(_Filler(measured, lang, progress, markdown))


def fields(template: str) -> list[str]:
    """The {field} names a template quotes."""
    return [name for _lit, name, _spec, _conv in string.Formatter().parse(template) if name]


# -- the 3-minute script ---------------------------------------------------------------------------

@dataclass
class Part:
    id: str
    seconds: int
    title: str
    prompt: str
    script: str


@dataclass
class Script:
    lang: str
    parts: list[Part]
    sources: list[str]  # the result files the figures came from, in the order first quoted

    def markdown(self) -> str:
        t = text(self.lang)
        lines = [f"**{p.title} ({p.seconds} s)** — {p.script}\n" for p in self.parts]
        names = [Path(s).name for s in self.sources]
        lines.append(f"*{t['ui']['sources']}:* " + (", ".join(f"`{n}`" for n in names) if names
                                                     else t["ui"]["no_sources"]))
        return "\n".join(lines)


def fill_script(measured: dict, lang: str = "en", progress: dict | None = None) -> Script:
    """The seed's four timed parts in ``lang``, each with its prompt and its script filled with your figures."""
    filler = _Filler(measured, lang, progress, markdown=True)
    parts = []
    for pid in PART_ORDER:
        words = text(lang)["parts"][pid]
        parts.append(Part(pid, PART_SECONDS[pid], words["title"], words["prompt"],
                          words["script"].format_map(filler)))
    return Script(lang, parts, filler.sources)


# -- the follow-up drill ---------------------------------------------------------------------------

@dataclass
class Card:
    id: str
    question: str
    hint: str
    model: str    # the seed's answer (verbatim in Chinese) and ours
    yours: str    # the same question answered by the learner's own records
    sources: list[str] = field(default_factory=list)


def cards(lang: str = "en", measured: dict | None = None, progress: dict | None = None) -> list[Card]:
    """The follow-up questions, in order, each with its model answer and your evidence filled in."""
    measured = measured if measured is not None else results.measured()
    out = []
    for cid in CARD_ORDER:
        words = text(lang)["cards"][cid]
        filler = _Filler(measured, lang, progress, markdown=True)
        yours = words["yours"].format_map(filler)
        out.append(Card(cid, words["question"], words["hint"], words["model"], yours, filler.sources))
    return out


def card(card_id: str, lang: str = "en", measured: dict | None = None, progress: dict | None = None) -> Card:
    for c in cards(lang, measured, progress):
        if c.id == card_id:
            return c
    raise RehearsalError(f"no card called {card_id!r}; the cards are: {', '.join(CARD_ORDER)}")


# -- one attempt: notes, answers, reveals, ratings -----------------------------------------------

def validate_rating(rating: Any) -> int:
    """A self-rating is a whole number 1-5 (1 = lost, 5 = interview-ready)."""
    if isinstance(rating, bool) or not isinstance(rating, int) or rating not in RATINGS:
        raise RehearsalError(f"a rating is a whole number from 1 to 5, not {rating!r}")
    return rating


@dataclass
class Answer:
    text: str = ""
    revealed: bool = False
    rating: int | None = None


@dataclass
class Attempt:
    """One rehearsal: what the learner wrote per part and per card, what they revealed, how they rated it."""
    lang: str = "en"
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    notes: dict[str, str] = field(default_factory=dict)
    answers: dict[str, Answer] = field(default_factory=dict)

    def note(self, part: str, notes: str) -> None:
        if part not in PART_ORDER:
            raise RehearsalError(f"no part called {part!r}; the parts are: {', '.join(PART_ORDER)}")
        self.notes[part] = notes

    def _answer(self, card_id: str) -> Answer:
        if card_id not in CARD_ORDER:
            raise RehearsalError(f"no card called {card_id!r}; the cards are: {', '.join(CARD_ORDER)}")
        return self.answers.setdefault(card_id, Answer())

    def answer(self, card_id: str, answer: str) -> None:
        self._answer(card_id).text = answer

    def reveal(self, card_id: str) -> None:
        """Mark the model answer of ``card_id`` as seen; refused while the learner's own answer is empty."""
        entry = self._answer(card_id)
        if not entry.text.strip():
            raise RehearsalError(text(self.lang)["ui"]["refused"])
        entry.revealed = True

    def rate(self, card_id: str, rating: Any) -> None:
        """Rate your answer 1-5 against the model: only after you have seen it."""
        rating = validate_rating(rating)
        entry = self._answer(card_id)
        if not entry.revealed:
            raise RehearsalError(f"reveal the model answer of {card_id!r} before rating yourself against it")
        entry.rating = rating

    def as_record(self) -> dict:
        return {"lang": self.lang, "started_at": self.started_at,
                "notes": {p: self.notes[p] for p in PART_ORDER if p in self.notes},
                "cards": {c: asdict(self.answers[c]) for c in CARD_ORDER if c in self.answers}}


def save_attempt(attempt: Attempt, directory: Path | str | None = None) -> Path:
    """Write the attempt to results/rehearsal-<ts>.json (a new file each time: earlier attempts are kept)."""
    if not attempt.notes and not any(a.text.strip() for a in attempt.answers.values()):
        raise RehearsalError("nothing to save yet: write notes for a part or answer a card first")
    return results.save(KIND, "", attempt.as_record(), Path(directory) if directory else None)


def attempts(directory: Path | str | None = None) -> list[dict]:
    """Every saved attempt, newest first."""
    return [r for r in results.all_records(directory) if r["kind"] == KIND]


def ratings_table(saved: list[dict]) -> list[dict]:
    """One row per (attempt, card) with a rating, oldest attempt first: for a chart of progress."""
    rows = []
    for n, record in enumerate(reversed(saved), start=1):
        for cid, entry in (record.get("cards") or {}).items():
            if isinstance(entry, dict) and entry.get("rating") in RATINGS:
                rows.append({"attempt": n, "saved_at": record.get("saved_at"), "card": cid,
                             "rating": entry["rating"]})
    return rows


def ratings_figure(saved: list[dict], lang: str = "en"):
    """Your self-ratings per card, attempt after attempt; None when no attempt has a rating yet."""
    import plotly.graph_objects as go

    rows = ratings_table(saved)
    if not rows:
        return None
    zh = lang == "zh"
    fig = go.Figure()
    for cid in CARD_ORDER:
        mine = [r for r in rows if r["card"] == cid]
        if mine:
            fig.add_trace(go.Scatter(x=[r["attempt"] for r in mine], y=[r["rating"] for r in mine],
                                     mode="lines+markers", name=text(lang)["cards"][cid]["question"][:40]))
    fig.update_layout(title="每个追问的自评，一次次演练下来" if zh else "Your self-rating per question, attempt by attempt",
                      height=420, legend={"orientation": "h", "y": -0.25})
    fig.update_yaxes(range=[0.5, 5.5], dtick=1, title_text="自评（1–5 分）" if zh else "self-rating (1–5 points)")
    fig.update_xaxes(dtick=1, title_text="第几次演练（从旧到新）" if zh else "attempt number (oldest → newest)")
    return fig


# -- capacity (the seed's step 2): how many copies of each tier the peak needs ------------------

def capacity(measured: dict, peak_qps: int = SEED_PEAK_QPS) -> list[dict]:
    """Per tier: the seed's QPS, yours, and how many copies of that set-up ``peak_qps`` would need."""
    if not isinstance(peak_qps, int) or peak_qps <= 0:
        raise RehearsalError(f"the peak is a positive whole number of requests per second, not {peak_qps!r}")
    rows = []
    for tier, fig_name in (("db-direct", "t0_rps"), ("flask", "t1_rps"), ("flask-x4", "t2_rps"),
                           ("fastapi", "t3_rps"), ("local-stock", "t4_rps")):
        fig = results.figure(measured, fig_name)
        seed = SEED_TIER_QPS.get(tier)
        rows.append({
            "tier": tier,
            "seed_qps": seed,
            "copies_needed_seed": math.ceil(peak_qps / seed) if seed else None,
            "your_rps": fig.value,
            "copies_needed_yours": math.ceil(peak_qps / fig.value) if fig.value else None,
            "source": Path(fig.source).name if fig.source else f"not measured yet: run `{fig.how}`",
        })
    return rows


def seed_vs_yours_figure(measured: dict, lang: str = "en"):
    """Bars: the seed's QPS per tier beside yours (log scale, the gaps are ten-fold)."""
    import plotly.graph_objects as go

    rows = capacity(measured)
    zh = lang == "zh"
    tiers = [r["tier"] for r in rows]
    fig = go.Figure([
        go.Bar(name="原文" if zh else "seed", x=tiers, y=[r["seed_qps"] for r in rows], marker_color="#aaaaaa"),
        go.Bar(name="你的实测" if zh else "yours", x=tiers, y=[r["your_rps"] for r in rows],
               marker_color="#1f77b4"),
    ])
    fig.update_layout(
        barmode="group", height=420, legend={"orientation": "h", "y": -0.2},
        title="每个层级的吞吐：原文 vs 你的实测" if zh else "Throughput per tier: the seed's figures vs yours")
    fig.update_yaxes(type="log", title_text="请求/秒（对数刻度）" if zh else "requests per second (log scale)")
    fig.update_xaxes(title_text="层级" if zh else "tier")
    return fig


NUMBER = re.compile(r"(?<![A-Za-z_\-./\d])\d[\d,]*(?:\.\d+)?")


def numbers_in(text_: str) -> list[str]:
    """The numbers a reader sees in ``text_`` (not the digits of names like flask-x4 or p99), commas removed."""
    return [m.group().rstrip(",").replace(",", "") for m in NUMBER.finditer(text_)]
