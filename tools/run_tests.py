"""`make test`: three pytest processes side by side — the native suite, the notebooks, Docker + the graders.

Why three: much of the suite waits — for servers to start and stop, for fixed
load-test and failure-lab windows, for containers — rather than computes. Run one
after the other they took 34 minutes in CI on 2 cores (the notebooks, 24 runs in
both editions, about 40 % of it); side by side, about the time of the longest.
They cannot collide: each runs in its own test slot (own ports, own run dir
.run/testN, own stack; the Docker suite its own dockerd and Compose project),
the notebooks in slot 11, the Docker suite (with the graders) in slot 12. Not slot 10:
its stack's ports (18379 …) are test_stack_lifecycle's own, and its gateway (20000) is root's
automatic workshop block.

    python tools/run_tests.py            # all three; exit 0 only when all pass
    python tools/run_tests.py ARGS...    # plain pytest ARGS (e.g. one file), nothing beside it

The side suites' output goes to .run/<name>-suite.log; their summaries are
printed after the native suite's, so the last line is a pytest closing line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# (name, title, test files, test slot): each runs beside the native suite, which leaves them out. The
# split is by measured time (fresh clone, 2 cores, three processes at once): the native suite about 28 min
# with the bench's tests in it; the notebooks about 21 alone (with the graders beside them they reached
# about 30); the Docker suite about 10 plus the graders' 7. The bench's tests stay in the native process:
# beside it they loaded both cores with wrk for minutes and broke locust's and the lifecycle's tests.
SIDE_SUITES = [("notebooks", "Notebooks (both editions)", ("tests/test_notebooks.py",), "11"),
               # every test that starts the tests' dockerd: one engine at a time, in one process; the
               # graders ride along (see above)
               ("docker", "Docker-backend suite and the graders",
                ("tests/test_docker_backend.py", "tests/test_docker_workshop.py", "tests/test_singleuser_image.py",
                 "tests/test_graders.py"), "12")]


def main(argv: list[str]) -> int:
    if argv:
        return subprocess.call([PYTHON, "-m", "pytest", *argv], cwd=REPO)
    (REPO / ".run").mkdir(exist_ok=True)
    side = {}
    for name, title, paths, slot in SIDE_SUITES:
        log_path = REPO / ".run" / f"{name}-suite.log"
        print(f"• {title} runs beside this one (test slot {slot}); its log: {log_path.relative_to(REPO)}",
              flush=True)
        log = open(log_path, "w")
        env = dict(os.environ, SECKILL_TEST_SLOT=slot)
        side[title] = (subprocess.Popen([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths], cwd=REPO,
                                        env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL),
                       log, log_path)
    try:
        ignored = [f"--ignore={path}" for _name, _title, paths, _slot in SIDE_SUITES for path in paths]
        native = subprocess.call([PYTHON, "-m", "pytest", *ignored], cwd=REPO)
        codes = {title: proc.wait() for title, (proc, _log, _path) in side.items()}
    except KeyboardInterrupt:
        for proc, _log, _path in side.values():
            proc.terminate()
            proc.wait()
        raise
    finally:
        for _proc, log, _path in side.values():
            log.close()
    for title, (_proc, _log, log_path) in side.items():
        lines = log_path.read_text(errors="replace").splitlines()
        failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
        print(f"\n===== {title} (exit {codes[title]}); whole log: {log_path.relative_to(REPO)} =====")
        for line in failures[:40]:
            print(line)
        print(lines[-1] if lines else "no output (did it start?)")
    return native or next((code for code in codes.values() if code), 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
