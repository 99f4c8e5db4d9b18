"""Graders for the course's labs: run a learner's module against the real servers, check its BEHAVIOUR.

    from seckill.course.grader import check
    check("token_bucket")          # in a notebook: a table of checks, with hints

    $ seckill grade token_bucket   # in a shell; exit 0 only when every check passes

Each check drives the learner's code (never their notebook cells) and reports
passed or failed with a hint that points to the idea the code misses, never to
the code that fixes it. Every check runs in a child process of its own
(seckill.course.graders._child) with a time limit and an output limit: learner code
that loops for ever, kills its process, segfaults or prints without end gives
that check's result ("timed out after 15 s", "the process died (signal 9)",
"output cut at 64 KB"); the other checks are still graded, and nothing is left
running. A check whose precondition failed in an earlier check says "skipped:
depends on ..." instead of blaming its own property. One progress line per
check goes to stdout while grading.

Grading is isolated from a running sale: Redis db 15, queues grader-<uuid>
(deleted afterwards) and the PostgreSQL database seckill_grader.
"""

from __future__ import annotations

import fcntl
import html
import importlib
import importlib.util
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from seckill.system import impl as impl_mod
from seckill import room
from seckill.errors import SeckillError
from seckill.i18n import tr
from seckill.course.graders import _base
from seckill.course.graders._base import Context

# lab -> (module name, notebook, title), in the course's order
LABS: "OrderedDict[str, tuple[str, str, str]]" = OrderedDict([
    ("token_bucket", ("token_bucket", "notebooks/10_token_bucket.ipynb", "Token bucket")),
    ("rate_limit", ("rate_limit", "notebooks/11_rate_limits.ipynb", "Rate limits in Redis")),
    ("stock", ("stock", "notebooks/12_stock_reservation.ipynb", "Stock reservation in Redis")),
    ("producer", ("producer", "notebooks/13_order_producer.ipynb", "Order producer (RabbitMQ)")),
    ("consumer", ("consumer", "notebooks/14_order_consumer.ipynb", "Order consumer (PostgreSQL)")),
])
NEEDS_SERVERS = {"rate_limit", "stock", "producer", "consumer"}
IMPORT_TIMEOUT_S = 20.0  # starting Python and importing the learner's module, on a loaded machine
OUTPUT_LIMIT = 64 * 1024  # bytes a check's child may print before it is stopped
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
    skipped: bool = False  # not run: a check it depends on failed (counts as not passed)


def _labelled(label: str, text: str) -> str:
    """'hint: …' in English, '提示：…' in Chinese (a full-width colon takes no space after it)."""
    return f"         {label}{'' if label.endswith('：') else ' '}{text}"


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
        return tr("{passed} of {total} checks passed").format(passed=self.passed, total=self.total)

    def __str__(self) -> str:
        title = tr(LABS[self.lab][2]) if self.lab in LABS else self.lab
        lines = [tr("{title} — lab {lab!r}, implementation {impl}").format(title=title, lab=self.lab, impl=self.impl)]
        for r in self.results:
            lines.append(f"  [{tr('pass') if r.passed else tr('skip') if r.skipped else tr('FAIL')}] {tr(r.name)}")
            if not r.passed:
                if r.hint:
                    lines.append(_labelled(tr("hint:"), tr(r.hint)))
                if r.detail:
                    lines.append(_labelled(tr("seen:"), r.detail))
        lines.append(self.summary() + (tr(" — well done!") if self.ok else ""))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        title = tr(LABS[self.lab][2]) if self.lab in LABS else self.lab
        rows = []
        for r in self.results:
            mark = (f'<span style="color:#1a7f37">&#10004; {tr("passed")}</span>' if r.passed
                    else f'<span style="color:#57606a">&#8211; {tr("skipped")}</span>' if r.skipped
                    else f'<span style="color:#cf222e">&#10008; {tr("failed")}</span>')
            notes = ""
            if r.skipped:
                notes = e(tr(r.hint or ""))
            elif not r.passed:
                notes = (f"<b>{tr('Hint:')}</b> {e(tr(r.hint or ''))}"
                         + (f'<br><small style="color:#57606a">{tr("seen:")} {e(r.detail)}</small>' if r.detail else ""))
            rows.append(f'<tr><td style="text-align:left">{e(tr(r.name))}</td><td>{mark}</td>'
                        f'<td style="text-align:left">{notes}</td></tr>')
        colour = "#1a7f37" if self.ok else "#cf222e"
        return (f"<div><b>{e(title)}</b> <small>({tr('lab')} <code>{e(self.lab)}</code>, {tr('implementation')} "
                f"<code>{e(self.impl)}</code>)</small>"
                f'<table><thead><tr><th style="text-align:left">{tr("check")}</th><th>{tr("result")}</th>'
                f'<th style="text-align:left">{tr("hint")}</th></tr></thead><tbody>'
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


# -- running the learner's module in child processes ------------------------------

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


def _shown_path(module: str, impl: str, path: Path) -> str:
    """How the learner names the file: labs/stock.py (or the folder they gave)."""
    return f"{impl}/{module}.py" if impl in ("solutions", "labs") else str(path)


@dataclass
class _Outcome:
    kind: str  # "result" | "import_error" | "timeout" | "died" | "output"
    message: dict = field(default_factory=dict)
    notebook: str | None = None
    detail: str = ""


def _signal_name(number: int) -> str:
    try:
        return f"signal {number}, {signal.Signals(number).name}"
    except ValueError:
        return f"signal {number}"


def _run_child(lab: str, path: Path, index: int, urls: dict, limit: float) -> _Outcome:
    """Run check `index` of `lab` in a new process; its clock starts once the learner's module loaded."""
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "seckill.course.graders._child", lab, str(path), str(index), json.dumps(urls),
             str(write_fd)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            pass_fds=(write_fd,), start_new_session=True, env=env)
    finally:
        os.close(write_fd)
    results = os.fdopen(read_fd, "rb", buffering=0)
    output = child.stdout
    selector = selectors.DefaultSelector()
    selector.register(results, selectors.EVENT_READ, "results")
    selector.register(output, selectors.EVENT_READ, "output")
    started = time.monotonic()
    deadline = started + IMPORT_TIMEOUT_S
    buffer, printed, tail = b"", 0, b""
    notebook = None
    outcome: _Outcome | None = None
    try:
        while outcome is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome = _Outcome("timeout" if notebook is not None else "import_timeout")
                break
            events = selector.select(min(remaining, 0.5))
            for key, _mask in events:
                chunk = os.read(key.fileobj.fileno(), 65536)
                if key.data == "output":
                    if not chunk:
                        selector.unregister(output)
                        continue
                    printed += len(chunk)
                    tail = (tail + chunk)[-400:]
                    if printed > OUTPUT_LIMIT:
                        outcome = _Outcome("output")
                        break
                    continue
                if not chunk:  # the child closed fd 3: it ended, with or without a result
                    selector.unregister(results)
                    code = child.wait()
                    how = _signal_name(-code) if code < 0 else f"exit code {code}"
                    last = tail.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
                    outcome = _Outcome("died", detail=how + (f"; it printed last: {last[0][:160]}" if last[0] else ""))
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    message = json.loads(line)
                    if message["event"] == "imported":
                        notebook = message.get("notebook") or ""
                        deadline = time.monotonic() + limit
                    else:
                        outcome = _Outcome(message["event"], message, notebook)
                        break
                if outcome is not None:
                    break
    finally:
        selector.close()
        if child.poll() is None:
            try:
                os.killpg(child.pid, signal.SIGKILL)  # the child and anything it started in its session
            except ProcessLookupError:
                pass
        child.wait()
        results.close()
        output.close()
    outcome.notebook = notebook if outcome.notebook is None else outcome.notebook
    return outcome


def _checks(lab: str) -> list[_base.Check]:
    module = importlib.import_module(f".graders.{lab}", __package__)
    return module.CHECKS


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def grade(lab: str, impl: str | None = None, *, timeout: float | None = None, progress: bool = True) -> Report:
    """Grade `lab` on implementation `impl` ("labs", "solutions" or a folder; default: the learner's).

    Each check runs in a child process (see the module docstring). `timeout` caps each check's time
    limit (seconds). With `progress`, one line per check goes to stdout as it finishes.
    Raises UnknownLab / GraderError (a SeckillError) when the lab or the file does not exist.
    """
    if lab not in LABS:
        raise UnknownLab(f"unknown lab {lab!r}; the labs are: {', '.join(LABS)}")
    impl = impl or impl_mod.learner()
    module, notebook, _title = LABS[lab]
    path = _module_path(module, impl)
    shown = _shown_path(module, impl, path)
    report = Report(lab=lab, impl=impl)

    urls: dict[str, str] = {}
    if lab in NEEDS_SERVERS:
        from seckill import stack

        urls = stack.up(out=None)
        if lab == "consumer":
            Context(urls=urls).ensure_database()
    checks = _checks(lab)
    failed: set[str] = set()
    missing: set[str] = set()  # functions already reported as not implemented
    t0 = time.monotonic()
    for number, check_ in enumerate(checks, 1):
        blockers = [d for d in check_.depends if d in failed]
        if blockers:
            hint = tr("skipped: depends on “{check}”, which failed above").format(check=tr(blockers[0]))
            result = CheckResult(check_.title, False, hint, skipped=True)
        else:
            limit = min(check_.timeout, timeout) if timeout else check_.timeout
            outcome = _run_child(lab, path, number - 1, urls, limit)
            if outcome.kind in ("import_error", "import_timeout"):
                where = ("it did not finish importing" if outcome.kind == "import_timeout"
                         else outcome.message.get("where"))
                report.results = [CheckResult(
                    f"{path.name} imports", False,
                    "Your file cannot be imported, so nothing else could be checked: fix the error on the line "
                    "shown (then run the check again).", f"{path}: {where}")]
                if progress:
                    _say(f"  [1/1] {path.name} imports … FAIL")
                return report
            notebook = outcome.notebook or notebook
            result = _result(check_, outcome, limit, shown, notebook, missing)
        if not result.passed:
            failed.add(check_.title)
        report.results.append(result)
        if progress:
            state = "pass" if result.passed else "skipped" if result.skipped else "FAIL"
            _say(f"  [{number}/{len(checks)}] {tr(check_.title)} … {tr(state)} ({time.monotonic() - t0:.0f}{tr(' s')})")
    return report


def _result(check_: _base.Check, outcome: _Outcome, limit: float, shown: str, notebook: str,
            missing: set[str]) -> CheckResult:
    if outcome.kind == "timeout":
        return CheckResult(check_.title, False, TIMEOUT_HINT, f"timed out after {limit:g} s (the process was stopped)")
    if outcome.kind == "died":
        return CheckResult(check_.title, False,
                           tr("Your code ended the whole process (it killed itself, crashed inside a C library, or "
                              "called exit) while this check ran: look for what your code does to its own process."),
                           f"the process died ({outcome.detail})")
    if outcome.kind == "output":
        return CheckResult(check_.title, False,
                           tr("Your code printed without end while this check ran: look for a print inside a loop "
                              "that never finishes."), f"output cut at {OUTPUT_LIMIT // 1024} KB (the process was stopped)")
    message = outcome.message
    if message.get("passed"):
        return CheckResult(check_.title, True)
    if "not_implemented" in message:
        function = message["not_implemented"] or "the missing function"
        if function in missing:
            return CheckResult(check_.title, False, tr("Not implemented yet: {function} (see above).").format(
                function=function))
        missing.add(function)
        return CheckResult(check_.title, False,
                           tr("Not implemented yet — write {function} in {shown} (explained in {notebook}).").format(
                               function=function, shown=shown, notebook=notebook))
        # (no "seen:" line: the skeleton's own message would name the file a second time)
    return CheckResult(check_.title, False, message.get("hint"), message.get("detail"))


# -- progress -----------------------------------------------------------------------

def progress_path() -> Path:
    from seckill.config import settings

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
