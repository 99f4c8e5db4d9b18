"""The grader survives the learner's code: a check whose code kills its process, segfaults, prints without
end or never returns is reported as THAT check's result, the other checks are still graded, and nothing
(no process, no thread) is left running. Also: knock-on failures are "skipped", the not-implemented message
names the file and the function once, and grading prints one progress line per check on stdout."""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import psutil
import pytest

from seckill.course import grader

HERE = Path(__file__).resolve().parent
SOLUTION = (HERE.parent / "solutions" / "token_bucket.py").read_text()

# Each crash happens only in "starts full" (the one check with a bucket of capacity 4); the rest is the
# reference, so every other check must still pass.
CRASHES = {
    "kill": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "the process died (signal 9"),
    "segfault": ("import ctypes\nctypes.string_at(0)", "the process died (signal 11"),
    "runaway_output": ("import sys\nfor _ in range(50):\n    sys.stdout.write('x' * 10_000_000)",
                       "output cut at 64 KB"),
    "endless_loop": ("while True:\n    pass", "timed out after 3 s"),
    "child_process_and_loop": ("import subprocess, time\nsubprocess.Popen(['sleep', '313'])\n"
                               "while True:\n    time.sleep(0.01)", "timed out after 3 s"),
    "exit": ("import sys\nsys.exit(3)", None),  # SystemExit is raised, so the check just fails
    "os_exit": ("import os\nos._exit(4)", "the process died (exit code 4"),
}


def crashing_module(tmp_path: Path, crash: str) -> Path:
    code = CRASHES[crash][0]
    anchor = "        if tokens <= 0:\n"
    assert SOLUTION.count(anchor) == 1
    body = textwrap.indent(code, " " * 12)
    source = SOLUTION.replace(anchor, f"        if self.capacity == 4:\n{body}\n" + anchor)
    (tmp_path / "token_bucket.py").write_text(source)
    return tmp_path


def our_children() -> list[psutil.Process]:
    """The grader's check processes under this one (servers a fixture started have children of their own
    that come and go, e.g. RabbitMQ's disk monitor)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if p.is_running() and "seckill.course.graders._child" in " ".join(p.cmdline()):
                found.append(p)
        except psutil.Error:
            pass
    return found


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_a_crashing_check_is_that_checks_result_and_the_rest_is_graded(crash, tmp_path, capsys):
    threads_before = threading.active_count()
    before = {p.pid for p in our_children()}
    sleepers_before = {p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "313"]}
    report = grader.grade("token_bucket", str(crashing_module(tmp_path, crash)), timeout=3)
    out = capsys.readouterr().out
    first, *rest = report.results
    assert first.name == "starts full" and not first.passed and not first.skipped
    expected = CRASHES[crash][1]
    if expected:
        assert first.detail.startswith(expected), str(report)
    assert all(r.passed for r in rest), str(report)  # the other checks were graded, and pass
    assert report.score == f"{report.total - 1}/{report.total}"
    assert "Traceback" not in str(report)
    assert len(out) < 20_000  # the runaway output never reached us
    assert out.count("\n") >= report.total  # a progress line per check
    assert {p.pid for p in our_children()} <= before  # no process left behind
    sleepers = {p.pid for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "313"]}
    assert sleepers <= sleepers_before
    assert threading.active_count() <= threads_before  # and no thread


def test_an_import_that_never_ends_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(grader, "IMPORT_TIMEOUT_S", 3.0)
    (tmp_path / "token_bucket.py").write_text("while True:\n    pass\n")
    report = grader.grade("token_bucket", str(tmp_path))
    assert report.total == 1 and not report.ok
    assert "did not finish importing" in report.results[0].detail


def test_knock_on_failures_are_skipped_not_blamed(tmp_path):
    # the example: a bucket that spends a token when it refuses
    wrong = SOLUTION.replace("            if self._tokens + _EPSILON < tokens:\n                return False\n",
                             "            enough = self._tokens + _EPSILON >= tokens\n")
    wrong = wrong.replace("            return True\n", "            return enough\n")
    assert wrong != SOLUTION
    (tmp_path / "token_bucket.py").write_text(wrong)
    report = grader.grade("token_bucket", str(tmp_path))
    by_name = {r.name: r for r in report.results}
    assert not by_name["a rejected request spends nothing"].passed
    for name in ("refills by elapsed time at the rate", "uses the injected clock", "fractional refill adds up"):
        assert by_name[name].skipped and "depends on" in by_name[name].hint
        assert "a rejected request spends nothing" in by_name[name].hint
    assert "[skip] uses the injected clock" in str(report)
    assert report.passed + sum(r.skipped for r in report.results) < report.total or not report.ok


def test_not_implemented_names_the_file_and_function_once():
    report = grader.grade("token_bucket", "labs")
    texts = [r.hint or "" for r in report.results]
    full = [t for t in texts if "labs/token_bucket.py" in t]
    assert len(full) == 1 and "TokenBucket.allow_request" in full[0], str(report)
    assert "notebooks/10_token_bucket.ipynb" in full[0]
    assert str(report).count("labs/token_bucket.py") == 1


def test_progress_lines_go_to_stdout(capsys):
    report = grader.grade("token_bucket", "solutions")
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.strip().startswith("[")]
    assert len(lines) == report.total
    assert lines[0].strip().startswith(f"[1/{report.total}] starts full … pass")
    assert captured.err == ""


def test_seeded_rounds_name_the_failing_seed_and_replay_it(monkeypatch):
    from seckill.course.graders._base import SEED_ENV, CheckFailed, expect, seeded_rounds

    seen = []

    def one_round(seed):
        seen.append(seed)
        expect(seed % 3 != 0, "a hint", f"round saw {seed}")

    with pytest.raises(CheckFailed) as failed:
        seeded_rounds(one_round, 5)
    assert seen == [1, 2, 3, 4, 5]
    assert f"{SEED_ENV}=3" in failed.value.detail and "failed 1 of 5" in failed.value.detail
    seeded_rounds(one_round, 5, must_pass=4)  # k of n: one failing round is tolerated here

    seen.clear()
    monkeypatch.setenv(SEED_ENV, "3")
    with pytest.raises(CheckFailed):
        seeded_rounds(one_round, 5)
    assert seen == [3]  # the replay runs that round alone
