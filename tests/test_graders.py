"""The graders: pass the reference, fail the skeleton and plausible wrong implementations, with hints
that point to the idea and never give the answer; the `seckill grade` / `seckill progress` commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seckill.course import grader
from seckill.system import impl
from wrong_impls import CAUGHT_BY, KINDS, MISTAKES, materialize, wrong_source

HERE = Path(__file__).resolve().parent
SECKILL = str(Path(sys.executable).parent / "seckill")

# Solution code a hint must never contain: the graders explain ideas, not answers.
FORBIDDEN_IN_HINTS = (
    "redis.call", "ON CONFLICT", "min(", "max(", "confirm_delivery", "durable=True", "delivery_mode",
    "basic_ack", "_lock", "Lock(", "INCR", "DECR", "EXPIRE", "SISMEMBER", "SREM", "stock > 0", "FOR UPDATE",
    "register_script", "elapsed *", " * self.", "self._tokens", "<=", ">=", "Persistent", "pika.",
)

# Variants that hang on purpose: graded with a short time limit so the test stays quick.
HANGS = {"token_bucket/lock_never_released"}


def wrong_variants() -> list[str]:
    return sorted(MISTAKES)


def assert_hints_give_no_answer(report: grader.Report) -> None:
    for result in report.results:
        for text in (result.hint or "",):
            leaked = [code for code in FORBIDDEN_IN_HINTS if code in text]
            assert not leaked, f"hint of {result.name!r} gives solution code {leaked}: {text}"


def test_learner_default_is_labs_and_follows_seckill_impl(monkeypatch):
    monkeypatch.delenv("SECKILL_IMPL", raising=False)
    assert impl.learner() == "labs"
    monkeypatch.setenv("SECKILL_IMPL", "solutions")
    assert impl.learner() == "solutions"
    monkeypatch.setenv("SECKILL_IMPL", "")
    assert impl.learner() == "labs"


def test_labs_are_the_five_pieces_in_course_order():
    assert list(grader.LABS) == ["token_bucket", "rate_limit", "stock", "producer", "consumer"]
    for lab, (module, notebook, title) in grader.LABS.items():
        assert module in impl.PIECES and title
        assert (HERE.parent / notebook).is_file(), notebook


def test_every_lab_has_at_least_ten_wrong_implementations_across_kinds():
    variants = wrong_variants()
    assert set(variants) == set(CAUGHT_BY), "keep CAUGHT_BY in step with MISTAKES in tests/wrong_impls.py"
    assert {kind for kind, _check in CAUGHT_BY.values()} == set(KINDS)
    for lab in grader.LABS:
        mine = [v for v in variants if v.startswith(lab + "/")]
        assert len(mine) >= 10, lab
        assert len({CAUGHT_BY[v][0] for v in mine}) >= 3, f"{lab}: wrong implementations of one kind only"


@pytest.mark.parametrize("lab", list(grader.LABS))
def test_grader_passes_the_solutions(lab, stack_urls):
    report = grader.grade(lab, "solutions")
    assert report.ok, str(report)
    assert report.passed == report.total >= 5
    assert f"{report.total} of {report.total} checks passed" in str(report)


@pytest.mark.parametrize("lab", list(grader.LABS))
def test_grader_fails_the_untouched_skeleton_and_names_the_file_once(lab, stack_urls):
    report = grader.grade(lab, "labs")
    module, notebook, _title = grader.LABS[lab]
    assert not report.ok
    failed = [r for r in report.results if not r.passed]
    assert failed
    first = [r for r in failed if f"labs/{module}.py" in (r.hint or "")]
    assert first and first[0].hint.startswith("Not implemented yet — write ") and notebook in first[0].hint, str(report)
    # each missing function is named once; the other checks say "(see above)" or are skipped
    functions = [r.hint.split(" write ", 1)[1].split(" in ", 1)[0] for r in first]
    assert len(functions) == len(set(functions)), str(report)
    assert all(r in first or r.skipped or r.hint.startswith("Not implemented yet:") for r in failed), str(report)
    assert f"{report.passed} of {report.total} checks passed" in str(report)


@pytest.mark.parametrize("variant", sorted(CAUGHT_BY))
def test_grader_fails_a_wrong_implementation_with_a_hint(variant, stack_urls, tmp_path):
    lab = variant.split("/")[0]
    t0 = time.monotonic()
    report = grader.grade(lab, str(materialize(variant, tmp_path)), timeout=0.5 if variant in HANGS else None,
                          progress=False)
    if variant in HANGS:  # every check it runs is cut off at its limit and says so
        assert time.monotonic() - t0 < 60
        assert all(r.skipped or (r.hint == grader.TIMEOUT_HINT and "after 0.5 s" in r.detail)
                   for r in report.results), str(report)
    assert not report.ok, f"{variant} passed every check:\n{report}"
    failed = [r for r in report.results if not r.passed and not r.skipped]
    assert any(r.hint and r.hint.strip() for r in failed)
    words = CAUGHT_BY[variant][1]
    assert any(words in r.name for r in failed), f"{variant} not caught where expected:\n{report}"
    assert not any(r.hint.startswith("Not implemented") for r in failed)
    assert_hints_give_no_answer(report)
    assert f"{report.passed} of {report.total} checks passed" in str(report)


def test_hints_of_every_check_give_no_answer():
    import importlib

    texts = [grader.TIMEOUT_HINT]
    for lab in grader.LABS:
        module = importlib.import_module(f"seckill.course.graders.{lab}")
        source = Path(module.__file__).read_text()
        texts += [c.hint for c in module.CHECKS]
        assert "CHECKS" in source
    report = grader.Report("token_bucket", "x", [grader.CheckResult("c", False, t) for t in texts])
    assert_hints_give_no_answer(report)


def test_an_import_error_is_one_failed_check_with_the_line(tmp_path):
    (tmp_path / "token_bucket.py").write_text("import time\n\nclass TokenBucket:\n    def oops(self)\n        pass\n")
    report = grader.grade("token_bucket", str(tmp_path))
    assert report.total == 1 and not report.ok
    (result,) = report.results
    assert "line 4" in result.detail and "SyntaxError" in result.detail
    assert "Traceback" not in str(report)
    assert "0 of 1 checks passed" in str(report)

    (tmp_path / "token_bucket.py").write_text("import time\n\nx = 1\nraise KeyError('boom')\n")
    result = grader.grade("token_bucket", str(tmp_path)).results[0]
    assert not result.passed and "line 4" in result.detail and "KeyError" in result.detail


def test_the_hint_names_the_notebook_of_the_modules_constant(tmp_path):
    (tmp_path / "token_bucket.py").write_text(
        'NOTEBOOK = "notebooks/99_mine.ipynb"\n\nclass TokenBucket:\n'
        '    def __init__(self, capacity, refill_rate, clock=None):\n        pass\n\n'
        '    def allow_request(self, tokens=1):\n        raise NotImplementedError("later")\n')
    report = grader.grade("token_bucket", str(tmp_path))
    assert not report.ok
    assert "notebooks/99_mine.ipynb" in report.results[0].hint and "TokenBucket.allow_request" in report.results[0].hint


def test_a_grader_is_fresh_after_the_learner_edits_the_file(tmp_path):
    source = (HERE.parent / "solutions" / "token_bucket.py").read_text()
    (tmp_path / "token_bucket.py").write_text(source)
    assert grader.grade("token_bucket", str(tmp_path)).ok
    (tmp_path / "token_bucket.py").write_text(source.replace("min(self.capacity, ", "("))  # overfills now
    assert not grader.grade("token_bucket", str(tmp_path)).ok


def test_unknown_lab_and_missing_folder_are_seckill_errors(tmp_path):
    from seckill.errors import SeckillError

    with pytest.raises(SeckillError, match="token_bucket, rate_limit, stock, producer, consumer"):
        grader.grade("nope", "solutions")
    with pytest.raises(SeckillError, match="stock.py"):
        grader.grade("stock", str(tmp_path))


def test_report_text_and_html():
    report = grader.Report("stock", "labs", [
        grader.CheckResult("a", True),
        grader.CheckResult("b <x>", False, "think & try", "saw <3>"),
    ])
    assert (report.passed, report.total, report.ok) == (1, 2, False)
    text = str(report)
    assert "1 of 2 checks passed" in text and "think & try" in text and "saw <3>" in text
    page = report._repr_html_()
    assert "<table" in page and "b &lt;x&gt;" in page and "think &amp; try" in page
    assert "1 of 2 checks passed" in page
    assert not grader.Report("stock", "labs", []).ok


def test_progress_keeps_the_best_run_and_the_last_attempt(tmp_path, monkeypatch):
    monkeypatch.setenv("SECKILL_RUN_DIR", str(tmp_path))
    passed = grader.Report("stock", "solutions", [grader.CheckResult("a", True), grader.CheckResult("b", True)])
    failed = grader.Report("stock", "labs", [grader.CheckResult("a", True), grader.CheckResult("b", False, "h")])
    first = grader.save_progress(passed)
    time.sleep(1.1)
    grader.save_progress(failed)
    data = json.loads((tmp_path / "progress.json").read_text())
    entry = data["stock"]
    assert entry["passed"] is True and entry["score"] == "2/2" and entry["date"] == first["date"]
    assert entry["impl"] == "solutions"
    assert entry["last"]["passed"] is False and entry["last"]["score"] == "1/2" and entry["last"]["impl"] == "labs"
    assert entry["last"]["date"] > entry["date"]
    assert grader.progress() == data


def test_check_grades_prints_and_saves_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SECKILL_RUN_DIR", str(tmp_path))
    report = grader.check("token_bucket", "solutions")
    assert report.ok
    assert "checks passed" in capsys.readouterr().out
    assert grader.progress()["token_bucket"]["passed"] is True


# -- the command line ----------------------------------------------------------------------

def run_cli(*args: str, run_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SECKILL_RUN_DIR": str(run_dir)}
    env.pop("SECKILL_IMPL", None)
    return subprocess.run([SECKILL, *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_grade_exit_codes_and_progress(tmp_path):
    ok = run_cli("grade", "token_bucket", "--impl", "solutions", run_dir=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "9 of 9 checks passed" in ok.stdout

    skeleton = run_cli("grade", "token_bucket", run_dir=tmp_path)  # default: the learner's labs/
    assert skeleton.returncode == 1
    assert "implementation labs" in skeleton.stdout
    assert "Not implemented yet — write TokenBucket.allow_request in labs/token_bucket.py" in skeleton.stdout
    assert "notebooks/10_token_bucket.ipynb" in skeleton.stdout
    assert "0 of 9 checks passed" in skeleton.stdout and "Traceback" not in skeleton.stderr

    wrong = run_cli("grade", "token_bucket", "--impl", str(materialize("token_bucket/overfills", tmp_path / "overfills")), run_dir=tmp_path)
    assert wrong.returncode == 1 and "8 of 9 checks passed" in wrong.stdout

    unknown = run_cli("grade", "tokenbucket", run_dir=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr.strip().count("\n") == 0
    assert unknown.stderr.startswith("seckill: unknown lab 'tokenbucket'")
    assert "token_bucket, rate_limit, stock, producer, consumer" in unknown.stderr

    missing = run_cli("grade", "stock", "--impl", str(tmp_path / "nowhere"), run_dir=tmp_path)
    assert missing.returncode == 1 and missing.stderr.strip().count("\n") == 0
    assert missing.stderr.startswith("seckill: ") and "stock.py" in missing.stderr

    listed = run_cli("progress", "--json", run_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert set(data) == {"token_bucket"}
    entry = data["token_bucket"]
    assert entry["passed"] is True and entry["score"] == "9/9" and entry["impl"] == "solutions"
    assert entry["last"]["score"] == "8/9" and entry["last"]["passed"] is False

    text = run_cli("progress", run_dir=tmp_path)
    assert text.returncode == 0
    lines = text.stdout.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("token_bucket") and " passed " in lines[0] and entry["date"] in lines[0]
    assert "not graded yet" in lines[1]


def test_cli_grade_on_a_server_lab(stack_urls, tmp_path):
    # The stack runs in the test run dir, so this one keeps it (progress lands there).
    env = {**os.environ}
    done = subprocess.run([SECKILL, "grade", "stock", "--impl", str(materialize("stock/no_rollback", tmp_path))],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr
    assert "8 of 11 checks passed" in done.stdout and "hint:" in done.stdout


@pytest.mark.parametrize("variant", sorted(MISTAKES))
def test_every_mistake_still_applies_to_the_current_solution(variant):
    wrong = wrong_source(variant)  # raises when solutions/ no longer holds the text to break
    module = MISTAKES[variant][1]
    assert wrong.split("\n", 1)[1] != (HERE.parent / "solutions" / module).read_text(), "the mistake changes nothing"
    compile(wrong, module, "exec")
