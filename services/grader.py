"""Graders for the course's labs: run a learner's module against the real servers, check its BEHAVIOUR.

    from seckill.grader import check
    check("token_bucket")          # in a notebook: a table of checks, with hints

    $ seckill grade token_bucket   # in a shell; exit 0 only when every check passes

Each check drives the learner's code (never their notebook cells) and reports
passed or failed with a hint that points to the idea the code misses, never to
the code that fixes it. Every check runs in its own thread with a time limit,
so an endless loop or a lock never released shows up as "timed out" instead
of hanging the grader (the stuck thread is left behind; restart the kernel).

Grading is isolated from a running sale: Redis db 15, queues grader-<uuid>
(deleted afterwards) and the PostgreSQL database seckill_grader.
"""

from __future__ import annotations

import fcntl
import html
import importlib.util
import itertools
import json
import os
import sys
import threading
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

from . import impl as impl_mod
from . import room
from .errors import SeckillError
from .graders import _base
from .graders._base import CheckFailed, Context, not_implemented

# lab -> (module name, notebook, title), in the course's order
LABS: "OrderedDict[str, tuple[str, str, str]]" = OrderedDict([
    ("token_bucket", ("token_bucket", "notebooks/10_token_bucket.ipynb", "Token bucket")),
    ("rate_limit", ("rate_limit", "notebooks/11_rate_limits.ipynb", "Rate limits in Redis")),
    ("stock", ("stock", "notebooks/12_stock_reservation.ipynb", "Stock reservation in Redis")),
    ("producer", ("producer", "notebooks/13_order_producer.ipynb", "Order producer (RabbitMQ)")),
    ("consumer", ("consumer", "notebooks/14_order_consumer.ipynb", "Order consumer (PostgreSQL)")),
])
NEEDS_SERVERS = {"rate_limit", "stock", "producer", "consumer"}
IMPORT_TIMEOUT_S = 10.0
TIMEOUT_HINT = ("Timed out: something waits forever or loops without end. Look for a lock that is taken and "
                "never released, or a loop whose exit condition never becomes true.")


class GraderError(SeckillError):
    """The grader cannot run as asked (unknown lab, missing file, servers down); the message says what to do."""


class UnknownLab(GraderError):
    pass


@dataclass
class CheckResult:
    name: str
    passed: bool
    hint: str | None = None
    detail: str | None = None


@dataclass(repr=False)
class Report:
    lab: str
    impl: str
    results: list[CheckResult] = field(default_factory=list)
    _shown: bool = field(default=False, repr=False, compare=False)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.passed == self.total

    @property
    def score(self) -> str:
        return f"{self.passed}/{self.total}"

    def __repr__(self) -> str:
        return f"<Report {self.lab} ({self.impl}): {self.summary()}>"

    def summary(self) -> str:
        return f"{self.passed} of {self.total} checks passed"

    def __str__(self) -> str:
        title = LABS[self.lab][2] if self.lab in LABS else self.lab
        lines = [f"{title} — lab {self.lab!r}, implementation {self.impl}"]
        for r in self.results:
            lines.append(f"  [{'pass' if r.passed else 'FAIL'}] {r.name}")
            if not r.passed:
                if r.hint:
                    lines.append(f"         hint: {r.hint}")
                if r.detail:
                    lines.append(f"         seen: {r.detail}")
        lines.append(self.summary() + (" — well done!" if self.ok else ""))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        title = LABS[self.lab][2] if self.lab in LABS else self.lab
        rows = []
        for r in self.results:
            mark = ('<span style="color:#1a7f37">&#10004; passed</span>' if r.passed
                    else '<span style="color:#cf222e">&#10008; failed</span>')
            notes = ""
            if not r.passed:
                notes = (f"<b>Hint:</b> {e(r.hint or '')}"
                         + (f'<br><small style="color:#57606a">seen: {e(r.detail)}</small>' if r.detail else ""))
            rows.append(f'<tr><td style="text-align:left">{e(r.name)}</td><td>{mark}</td>'
                        f'<td style="text-align:left">{notes}</td></tr>')
        colour = "#1a7f37" if self.ok else "#cf222e"
        return (f"<div><b>{e(title)}</b> <small>(lab <code>{e(self.lab)}</code>, implementation "
                f"<code>{e(self.impl)}</code>)</small>"
                '<table><thead><tr><th style="text-align:left">check</th><th>result</th>'
                '<th style="text-align:left">hint</th></tr></thead><tbody>'
                + "".join(rows) + "</tbody></table>"
                f'<p style="color:{colour}"><b>{e(self.summary())}</b></p></div>')

    def _ipython_display_(self) -> None:
        if self._shown:  # check() has just displayed it: do not show it twice as the cell's value
            self._shown = False
            return
        _publish(self)


def _publish(report: Report) -> None:
    from IPython.display import display

    display({"text/plain": str(report), "text/html": report._repr_html_()}, raw=True)


# -- loading the learner's module ------------------------------------------------

_counter = itertools.count()


def _module_path(module: str, impl: str) -> Path:
    if impl in ("solutions", "labs"):
        spec = importlib.util.find_spec(f"{impl}.{module}")
        if spec is None or spec.origin is None:
            raise GraderError(f"cannot find {impl}/{module}.py")
        return Path(spec.origin)
    path = Path(impl).expanduser().resolve() / f"{module}.py"
    if not path.is_file():
        raise GraderError(f"--impl {impl!r}: use 'labs', 'solutions' or a folder holding {module}.py")
    return path


def _load_fresh(module: str, path: Path) -> ModuleType:
    """Execute the file anew (a notebook re-grades after every edit; no stale import)."""
    name = f"_seckill_graded_{module}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses and enums look their module up here
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def _where(exc: BaseException, path: Path) -> str:
    """'line N: ExcType: message', the line being the deepest one in the learner's file."""
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"line {exc.lineno}: {type(exc).__name__}: {exc.msg}"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == path]
    message = f"{type(exc).__name__}: {exc}".strip()
    return f"line {frames[-1].lineno}: {message}" if frames else message


def _in_thread(func, timeout: float):
    """Run func() in a daemon thread: ("ok", value) | ("error", exc) | ("timeout", None)."""
    box: dict = {}

    def target():
        try:
            box["value"] = func()
        except BaseException as exc:  # reported to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="seckill-grader-check")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return "timeout", None
    if "error" in box:
        return "error", box["error"]
    return "ok", box.get("value")


def _run_check(check: _base.Check, mod: ModuleType, path: Path, urls: dict, notebook: str,
               timeout: float | None) -> CheckResult:
    limit = min(check.timeout, timeout) if timeout else check.timeout
    ctx = Context(urls=urls)
    try:
        outcome, value = _in_thread(lambda: check.func(ctx, mod), limit)
    finally:
        ctx.close()
    if outcome == "ok":
        return CheckResult(check.title, True)
    if outcome == "timeout":
        return CheckResult(check.title, False, TIMEOUT_HINT, f"no answer within {limit:g} s")
    if isinstance(value, CheckFailed):
        return CheckResult(check.title, False, value.hint, value.detail)
    if not_implemented(value):
        return CheckResult(check.title, False, f"Not implemented yet — open {notebook}", _where(value, path))
    return CheckResult(check.title, False, check.hint, "raised " + _where(value, path))


def _checks(lab: str) -> list[_base.Check]:
    module = importlib.import_module(f".graders.{lab}", __package__)
    return module.CHECKS


def grade(lab: str, impl: str | None = None, *, timeout: float | None = None) -> Report:
    """Grade `lab` on implementation `impl` ("labs", "solutions" or a folder; default: the learner's).

    `timeout` caps each check's time limit (seconds).
    """
    if lab not in LABS:
        raise UnknownLab(f"unknown lab {lab!r}; the labs are: {', '.join(LABS)}")
    impl = impl or impl_mod.learner()
    module, notebook, _title = LABS[lab]
    path = _module_path(module, impl)
    report = Report(lab=lab, impl=impl)

    outcome, value = _in_thread(lambda: _load_fresh(module, path), IMPORT_TIMEOUT_S)
    if outcome != "ok":
        where = "it did not finish importing" if outcome == "timeout" else _where(value, path)
        report.results.append(CheckResult(
            f"{path.name} imports", False,
            "Your file cannot be imported, so nothing else could be checked: fix the error on the line shown "
            "(then run the check again).", f"{path}: {where}"))
        return report
    mod = value
    notebook = getattr(mod, "NOTEBOOK", None) or notebook

    urls: dict[str, str] = {}
    if lab in NEEDS_SERVERS:
        from . import stack

        urls = stack.up(out=None)
        if lab == "consumer":
            Context(urls=urls).ensure_database()
    for check_ in _checks(lab):
        report.results.append(_run_check(check_, mod, path, urls, notebook, timeout))
    return report


# -- progress -----------------------------------------------------------------------

def progress_path() -> Path:
    from .config import settings

    return settings().run_dir / "progress.json"


def progress() -> dict:
    """Per lab: {passed, score, date, impl} of the best run, and `last` (the latest attempt)."""
    path = progress_path()
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _ratio(entry: dict) -> tuple[float, int]:
    try:
        passed, total = (int(x) for x in str(entry.get("score", "0/0")).split("/"))
    except ValueError:
        return (0.0, 0)
    return (passed / total if total else 0.0, passed)


def save_progress(report: Report) -> dict:
    """Record `report`: the best run is kept (a later failure never erases a pass), and the last attempt."""
    path = progress_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    attempt = {"passed": report.ok, "score": report.score,
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "impl": report.impl}
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = progress()
        best = data.get(report.lab) or {}
        best = {k: best[k] for k in ("passed", "score", "date", "impl") if k in best}
        if not best or _ratio(attempt) > _ratio(best):
            best = dict(attempt)
        data[report.lab] = {**best, "last": attempt}
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, path)
    room.record("grade", lab=report.lab, passed=report.ok, score=report.score, impl=report.impl)
    return data[report.lab]


# -- for notebooks ---------------------------------------------------------------------

def _ipython_shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def check(lab: str, impl: str | None = None) -> Report:
    """Grade `lab`, show the result (a table in Jupyter, text elsewhere) and save progress."""
    report = grade(lab, impl)
    save_progress(report)
    shell = _ipython_shell()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        _publish(report)  # Jupyter: the HTML table
    else:
        print(report)
    if shell is not None:
        report._shown = True  # IPython would show the returned report a second time
    return report
