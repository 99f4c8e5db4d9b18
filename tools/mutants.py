"""Mutation score of the graders: how many automatic mutants of solutions/ the graders catch.

    python tools/mutants.py                    # every lab
    python tools/mutants.py token_bucket stock # some labs
    python tools/mutants.py --list-survivors   # and print each surviving mutant's diff (with its number)
    python tools/mutants.py consumer --only 31-56  # grade only these mutants (1-based numbers, below)
    python tools/mutants.py consumer --only 12     # grade one mutant again (e.g. a suspected timeout)

Why cosmic-ray (PyPI) and not mutmut? The test command here is not pytest but the grader itself
(`seckill grade LAB --impl FOLDER`, exit 0 = every check passed = the mutant SURVIVED), and cosmic-ray
takes any shell command as its test command and mutates the module file in place, which is exactly what
the grader reads. mutmut 3 runs pytest inside its own copy of the tree with an import trampoline, so the
grader's child processes would never see the mutant.

The mutants are made in a copy (.run/mutants/src/<lab>.py), never in solutions/ itself, so the tests and
the notebooks can run meanwhile and an interrupted run leaves the reference untouched.

Only the code a learner writes is mutated (between `# BEGIN SOLUTION` and `# END SOLUTION`): the rest
of each module is given to the learner unchanged, so the graders do not have to judge it.

cosmic-ray lives in its own virtualenv (.run/mutants/venv), installed on first use, so the course's .venv
stays as `make tools` made it. Sessions are kept in .run/mutants/<lab>.sqlite; run again to resume
(the mutants already graded keep their result). Mutants are numbered 1…N in the order of their place in
the file (line, column, operator); `--only A-B` grades just those (again, if they were graded), the
summary still counts every graded mutant of the session.

The grader starts its own stack (servers under .run/mutants/run). With SECKILL_TEST_SLOT=N exported, its
ports move by 100*N exactly as the tests' (tests/conftest.py), so the run does not collide with a test
run or another checkout on the same machine; a SECKILL_*_PORT given explicitly still wins.
Not part of `make test`: it grades every mutant, minutes per lab.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".run" / "mutants"
VENV = WORK / "venv"
COSMIC_RAY = "cosmic-ray==8.7.0"
LABS = ["token_bucket", "rate_limit", "stock", "producer", "consumer"]
BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"
# The test stack's ports, as tests/conftest.py sets them; SECKILL_TEST_SLOT=N adds 100*N to each.
TEST_PORTS = {"REDIS": 17379, "POSTGRES": 17432, "AMQP": 17672, "RABBITMQ_DIST": 17673, "EPMD": 17369,
              "GATEWAY": 19000, "NGINX": 19080, "REDIS_REPLICA": 17380, "SENTINEL": 17381}


def say(line: str) -> None:
    print(line, flush=True)


def ensure_cosmic_ray() -> Path:
    exe = VENV / "bin" / "cosmic-ray"
    if not exe.exists():
        say(f"• installing {COSMIC_RAY} into {VENV.relative_to(ROOT)} (once)")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", COSMIC_RAY], check=True)
    return exe


def solution_lines(path: Path) -> set[int]:
    """Line numbers (1-based) inside BEGIN/END SOLUTION blocks."""
    inside, lines = False, set()
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip() == BEGIN:
            inside = True
        elif line.strip() == END:
            inside = False
        elif inside:
            lines.add(number)
    return lines


def config(lab: str, source: Path) -> Path:
    seckill = ROOT / ".venv" / "bin" / "seckill"
    path = WORK / f"{lab}.toml"
    path.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{source}"\n'
        "timeout = 300.0\n"
        "excluded-modules = []\n"
        f'test-command = "{seckill} grade {lab} --impl {source.parent}"\n'
        "\n[cosmic-ray.distributor]\n"
        'name = "local"\n')
    return path


def parse_only(text: str) -> tuple[int, int]:
    """'A-B' or 'N' -> (first, last), 1-based and inclusive; argparse reports a ValueError as a usage error."""
    first, _, last = text.partition("-")
    first_n, last_n = int(first), int(last or first)
    if not 1 <= first_n <= last_n:
        raise ValueError(text)
    return first_n, last_n


def numbered(db: sqlite3.Connection) -> list[str]:
    """The session's job ids in mutant-number order (1-based position = number): by place in the file."""
    return [job for (job,) in db.execute(
        "SELECT job_id FROM mutation_specs "
        "ORDER BY start_pos_row, start_pos_col, operator_name, occurrence, job_id")]


def exec_selected(exe: Path, cfg: Path, session: Path, only: tuple[int, int] | None) -> None:
    """Grade the pending mutants, or with `only` just the mutants so numbered (graded again if they were).

    A selection runs in a copy of the session holding only those mutants; their results are copied back
    (even after an interruption), so the session itself never loses a mutant.
    """
    target = session
    if only is not None:
        with sqlite3.connect(session) as db:
            jobs = numbered(db)
        if only[1] > len(jobs):
            raise SystemExit(f"mutants: --only {only[0]}-{only[1]}: this lab has {len(jobs)} mutants (1-{len(jobs)})")
        chosen = jobs[only[0] - 1:only[1]]
        target = session.with_suffix(".only.sqlite")
        shutil.copyfile(session, target)
        with sqlite3.connect(target) as db:
            db.execute("CREATE TEMP TABLE chosen (job_id TEXT PRIMARY KEY)")
            db.executemany("INSERT INTO chosen VALUES (?)", [(j,) for j in chosen])
            for table in ("work_results", "mutation_specs", "work_items"):
                db.execute(f"DELETE FROM {table} WHERE job_id NOT IN (SELECT job_id FROM chosen)")
            db.execute("DELETE FROM work_results")  # graded again
    worker = subprocess.Popen([str(exe), "exec", str(cfg), str(target)], cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        if worker.wait() != 0:
            raise SystemExit(f"mutants: cosmic-ray exec failed for {cfg.stem} (exit {worker.returncode})")
    finally:
        if worker.poll() is None:  # interrupted: stop it before restoring the file it mutates
            worker.terminate()
            worker.wait()
        if target != session:
            with sqlite3.connect(session) as db:
                db.execute("ATTACH DATABASE ? AS only", (str(target),))
                db.execute("INSERT OR REPLACE INTO work_results SELECT * FROM only.work_results")
                db.commit()
                db.execute("DETACH DATABASE only")
            target.unlink()


def run_lab(exe: Path, lab: str, only: tuple[int, int] | None = None) -> dict:
    reference = ROOT / "solutions" / f"{lab}.py"
    source = WORK / "src" / f"{lab}.py"
    source.parent.mkdir(parents=True, exist_ok=True)
    session = WORK / f"{lab}.sqlite"
    if not session.exists() or not source.exists():
        session.unlink(missing_ok=True)
        source.write_bytes(reference.read_bytes())
    original = source.read_bytes()
    cfg = config(lab, source)
    t0 = time.monotonic()
    try:
        if not session.exists():
            subprocess.run([str(exe), "init", str(cfg), str(session)], cwd=ROOT, check=True)
            keep = solution_lines(source)
            with sqlite3.connect(session) as db:
                gone = [job for job, row in db.execute("SELECT job_id, start_pos_row FROM mutation_specs")
                        if row not in keep]
                db.executemany("DELETE FROM mutation_specs WHERE job_id = ?", [(j,) for j in gone])
                db.executemany("DELETE FROM work_items WHERE job_id = ?", [(j,) for j in gone])
        exec_selected(exe, cfg, session, only)
    finally:
        if source.read_bytes() != original:
            source.write_bytes(original)
    with sqlite3.connect(session) as db:
        number = {job: n for n, job in enumerate(numbered(db), 1)}
        rows = sorted((number[job], op, line, outcome, diff) for job, op, line, outcome, diff in db.execute(
            "SELECT m.job_id, m.operator_name, m.start_pos_row, r.test_outcome, r.diff FROM mutation_specs m "
            "JOIN work_results r USING (job_id)"))
        total = len(number)
    killed = [r for r in rows if str(r[3]).lower() == "killed"]
    survived = [r for r in rows if str(r[3]).lower() == "survived"]
    incompetent = [r for r in rows if str(r[3]).lower() == "incompetent"]
    return {"lab": lab, "mutants": total, "graded": len(rows), "killed": len(killed), "survived": len(survived),
            "incompetent": len(incompetent), "seconds": round(time.monotonic() - t0),
            "survivors": [{"number": n, "operator": op, "line": line, "diff": diff}
                          for n, op, line, _o, diff in survived]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("labs", nargs="*", help=f"labs to mutate (default: all of {', '.join(LABS)})")
    parser.add_argument("--list-survivors", action="store_true", help="print each surviving mutant's diff")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--only", metavar="A-B", type=parse_only,
                        help="grade only mutants A to B (or one, N) of the lab, numbered 1… by place in the file "
                             "as --list-survivors shows them; again if already graded; the rest stay as they are")
    args = parser.parse_args(argv)
    labs = args.labs or LABS
    if args.only and len(labs) != 1:
        print("mutants: --only numbers the mutants of one lab; name that lab, e.g. "
              "tools/mutants.py consumer --only 31-56", file=sys.stderr)
        return 2
    unknown = [lab for lab in labs if lab not in LABS]
    if unknown:
        print(f"mutants: unknown lab {unknown[0]!r}; the labs are: {', '.join(LABS)}", file=sys.stderr)
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-up that restores the copy
    os.environ.setdefault("SECKILL_RUN_DIR", str(WORK / "run"))  # grading progress stays out of .run/
    slot = os.environ.get("SECKILL_TEST_SLOT", "")
    if slot:
        if not slot.isdigit():
            print(f"mutants: SECKILL_TEST_SLOT={slot!r} is not a whole number; unset it or give e.g. 5",
                  file=sys.stderr)
            return 2
        for name, port in TEST_PORTS.items():
            os.environ.setdefault(f"SECKILL_{name}_PORT", str(port + 100 * int(slot)))
    exe = ensure_cosmic_ray()
    results = []
    for lab in labs:
        say(f"• {lab}: grading every mutant of the code a learner writes …")
        results.append(run_lab(exe, lab, args.only))
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    say("")
    say(f"{'lab':<14}{'mutants':>8}{'graded':>8}{'killed':>8}{'survived':>9}{'score':>8}{'time':>8}")
    for r in results:
        graded = r["killed"] + r["survived"]
        score = f"{100 * r['killed'] / graded:.0f}%" if graded else "-"
        say(f"{r['lab']:<14}{r['mutants']:>8}{r['graded']:>8}{r['killed']:>8}{r['survived']:>9}{score:>8}"
            f"{r['seconds']:>7}s")
    if args.list_survivors:
        for r in results:
            for s in r["survivors"]:
                say(f"\n--- {r['lab']} mutant {s['number']}, line {s['line']} ({s['operator']})\n{s['diff'].strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
