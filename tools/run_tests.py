"""`make test`: the native suite in the foreground, the Docker-backend suite beside it.

Why two processes: the Docker suite (tests/test_docker_backend.py) spends most of
its 13–18 minutes waiting for containers to start and stop, and so does much of
the native suite waiting for servers and timeouts. Run one after the other they
take over 30 minutes on 2 cores; side by side, about the time of the longer one.
They cannot collide: the Docker suite runs in test slot 10 (its own ports, +1000,
and run dir .run/test10), its own dockerd and Compose project.

    python tools/run_tests.py            # both suites; exit 0 only when both pass
    python tools/run_tests.py ARGS...    # plain pytest ARGS (e.g. one file), nothing beside it

The Docker suite's output goes to .run/docker-suite.log; its summary is printed
after the native suite's, so the last line is a pytest closing line either way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DOCKER_SUITE = "tests/test_docker_backend.py"
DOCKER_SLOT = "10"


def main(argv: list[str]) -> int:
    if argv:
        return subprocess.call([PYTHON, "-m", "pytest", *argv], cwd=REPO)
    log_path = REPO / ".run" / "docker-suite.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SECKILL_TEST_SLOT=DOCKER_SLOT)
    print(f"• the Docker-backend suite runs beside this one (test slot {DOCKER_SLOT}); its log: "
          f"{log_path.relative_to(REPO)}", flush=True)
    with open(log_path, "w") as log:
        docker = subprocess.Popen([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", DOCKER_SUITE],
                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        try:
            native = subprocess.call([PYTHON, "-m", "pytest", f"--ignore={DOCKER_SUITE}"], cwd=REPO)
            docker_rc = docker.wait()
        except KeyboardInterrupt:
            docker.terminate()
            docker.wait()
            raise
    lines = log_path.read_text(errors="replace").splitlines()
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    print(f"\n===== Docker-backend suite (exit {docker_rc}); whole log: {log_path.relative_to(REPO)} =====")
    for line in failures[:40]:
        print(line)
    print(lines[-1] if lines else "no output (did it start?)")
    return native or docker_rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
