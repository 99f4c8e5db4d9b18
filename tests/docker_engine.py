"""A Docker engine of the tests' own, and the stand-in images it runs (docker/standin).

Public registries cannot be reached from CI here, so the official images cannot
be pulled; the Debian archive can. This module:

  * starts ``dockerd`` as root on its own socket, data root and exec root
    (under /var/lib/seckill-docker-test and /run/seckill-docker-test), never
    touching a daemon the machine already runs, and stops it afterwards if it
    started it;
  * makes a base image once: ``debootstrap --variant=minbase bookworm`` from the
    mirror apt uses, then ``docker import`` (about 30 s);
  * builds each stand-in from it with apt, tagged with a hash of its directory:
    the data root keeps them, so later runs on this machine reuse them and a
    changed Dockerfile is rebuilt.

    python tests/docker_engine.py start   # start it, build the images, print the environment
    python tests/docker_engine.py stop    # stop the daemon this module started

:func:`unavailable` gives the one line why the engine cannot run here (not root,
not Linux, no dockerd or debootstrap); the Docker-backend tests skip with it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("SECKILL_TEST_DOCKER_ROOT", "/var/lib/seckill-docker-test"))
RUN = Path("/run/seckill-docker-test")
SOCKET = RUN / "docker.sock"
PIDFILE = RUN / "dockerd.pid"
OURS = RUN / "started-by-tests"  # present while a daemon we started runs
BASE_IMAGE = "seckill/base:bookworm"
STANDINS = {  # image variable of docker-compose.yml -> directory of its stand-in
    "SECKILL_REDIS_IMAGE": REPO / "docker/standin/redis",
    "SECKILL_POSTGRES_IMAGE": REPO / "docker/standin/postgres",
    "SECKILL_RABBITMQ_IMAGE": REPO / "docker/standin/rabbitmq",
    "SECKILL_NGINX_IMAGE": REPO / "docker/standin/nginx",
    "SECKILL_TOOLS_IMAGE": REPO / "docker/tools",
}


def unavailable() -> str | None:
    """None when this machine can run our dockerd; else one line why not."""
    if sys.platform != "linux":
        return "the Docker-backend tests start their own dockerd, which needs Linux"
    if os.geteuid() != 0:
        return "the Docker-backend tests start their own dockerd, which needs root (run make test as root)"
    for binary, package in (("dockerd", "docker.io"), ("docker", "docker.io"), ("debootstrap", "debootstrap")):
        if shutil.which(binary) is None:
            return f"{binary} not installed (apt-get install -y {package}; make tools does it as root)"
    return None


def env() -> dict[str, str]:
    return {"DOCKER_HOST": f"unix://{SOCKET}"}


def _docker(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], env=dict(os.environ, **env()), check=check, timeout=timeout,
                          text=True, capture_output=True, **kwargs)


def answers() -> bool:
    try:
        return _docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


_DAEMON: subprocess.Popen | None = None  # the dockerd this process started (reaped by stop)


def start(timeout: float = 60) -> bool:
    """Start our dockerd unless it answers already. Returns whether this call started it."""
    if answers():
        return False
    RUN.mkdir(parents=True, exist_ok=True)
    (ROOT / "data").mkdir(parents=True, exist_ok=True)
    log = open(ROOT / "dockerd.log", "ab")
    global _DAEMON
    _DAEMON = subprocess.Popen(
        ["dockerd", "--host", f"unix://{SOCKET}", "--data-root", str(ROOT / "data"),
         "--exec-root", str(RUN / "exec"), "--pidfile", str(PIDFILE),
         # its own containerd namespaces: nothing shared with a daemon the machine runs
         "--containerd-namespace", "seckill-test", "--containerd-plugins-namespace", "seckill-test-plugins"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers():
            OURS.write_text(PIDFILE.read_text() if PIDFILE.exists() else "")
            return True
        time.sleep(0.5)
    raise RuntimeError(f"our dockerd did not answer within {timeout:.0f} s; see {ROOT / 'dockerd.log'}")


def stop(timeout: float = 30) -> None:
    """Stop the daemon this module started (by its pid file); a no-op otherwise."""
    if not OURS.exists() or not PIDFILE.exists():
        return
    pid = int(PIDFILE.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    if _DAEMON is not None:
        _DAEMON.poll()  # reap it: no zombie left behind
    OURS.unlink(missing_ok=True)


def _has_image(tag: str) -> bool:
    return _docker("image", "inspect", tag, check=False).returncode == 0


def _mirror() -> str:
    """The Debian mirror apt uses here (deb.debian.org when none is found)."""
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and len(words) > 1 and words[1].rstrip("/").endswith("/debian"):
                return words[1]
            if words[:1] == ["deb"]:
                urls = [w for w in words[1:] if w.startswith("http")]
                if urls and urls[0].rstrip("/").endswith("/debian"):
                    return urls[0]
    return "http://deb.debian.org/debian"


def base_image(out=sys.stderr) -> str:
    if _has_image(BASE_IMAGE):
        return BASE_IMAGE
    rootfs = ROOT / "rootfs" / "bookworm"
    t0 = time.monotonic()
    if not (rootfs / "etc" / "debian_version").exists() or not (rootfs / "usr" / "bin" / "apt-get").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        print(f"• debootstrap bookworm from {_mirror()} (once per machine) …", file=out, flush=True)
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), _mirror()],
                       check=True, capture_output=True, timeout=900)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["docker", "import", "-", BASE_IMAGE], stdin=tar.stdout, check=True, capture_output=True,
                   env=dict(os.environ, **env()), timeout=600)
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    print(f"• base image {BASE_IMAGE} in {time.monotonic() - t0:.0f} s", file=out, flush=True)
    return BASE_IMAGE


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(path.relative_to(directory).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def standin_tag(variable: str) -> str:
    directory = STANDINS[variable]
    return f"seckill-standin/{directory.name}:{_digest(directory)}"


def build(tag: str, context: Path, dockerfile: Path | None = None, out=sys.stderr, timeout: float = 1200,
          args: dict[str, str] | None = None) -> float:
    """``docker build`` FROM our Debian base (apt and pip through the host's network); returns seconds."""
    base = base_image(out)
    t0 = time.monotonic()
    print(f"• building {tag} from Debian packages …", file=out, flush=True)
    extra = [a for k, v in (args or {}).items() for a in ("--build-arg", f"{k}={v}")]
    result = _docker("build", "--network", "host", "--build-arg", f"BASE={base}", *extra, "-t", tag,
                     *(["-f", str(dockerfile)] if dockerfile else []), str(context), check=False, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"building {tag} failed: {result.stdout[-2000:]}\n{result.stderr[-1000:]}")
    print(f"• built {tag} in {time.monotonic() - t0:.0f} s", file=out, flush=True)
    return time.monotonic() - t0


def build_images(out=sys.stderr) -> dict[str, str]:
    """Build what is missing; return the image variables that select the stand-ins."""
    chosen = {}
    for variable, directory in STANDINS.items():
        tag = standin_tag(variable)
        if not _has_image(tag):
            build(tag, directory, out=out)
        chosen[variable] = tag
    return chosen


SINGLEUSER_TAG = "seckill/singleuser:test"


def build_singleuser(out=sys.stderr) -> float:
    """The Zero to JupyterHub image of docker/singleuser from this checkout; returns the build's seconds.

    Built every time: the engine's layer cache keeps the servers' and the Python packages' layers
    while only the course changed (seconds), so the image always holds this checkout.
    """
    # the CAs this machine added to its trust store (e.g. a proxy's between it and PyPI): pip in the build needs them
    local_cas = "".join(p.read_text() for p in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")))
    return build(SINGLEUSER_TAG, REPO, REPO / "docker/singleuser/Dockerfile", out=out, timeout=2400,
                 args={"EXTRA_CA_CERTS": local_cas} if local_cas else None)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "start"
    if command == "stop":
        stop()
    elif command == "start":
        why = unavailable()
        if why:
            sys.exit(f"seckill: {why}")
        start()
        for name, value in {**env(), **build_images()}.items():
            print(f"export {name}={value}")
    else:
        sys.exit("usage: python tests/docker_engine.py start|stop")
