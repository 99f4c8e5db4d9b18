"""Find the server binaries the course needs, and install them when we may.

On Debian/Ubuntu as root, missing packages are installed with apt. Anywhere
else we stop with one line saying what to install (apt, brew or conda), because
a learner who is not root should decide themselves what goes on their machine.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

from seckill.errors import SeckillError


class MissingServers(SeckillError):
    """Server binaries are missing and we cannot install them; the message says how."""


@dataclass(frozen=True)
class Server:
    binary: str           # what we look for
    apt: str              # Debian/Ubuntu package
    brew: str             # Homebrew formula
    conda: str            # conda-forge package
    extra_dirs: tuple[str, ...] = ()


SERVERS = {
    "redis": Server("redis-server", "redis-server", "redis", "redis-server"),
    "postgres": Server("postgres", "postgresql", "postgresql@15", "postgresql",
                       extra_dirs=("/usr/lib/postgresql/*/bin",)),
    "rabbitmq": Server("rabbitmq-server", "rabbitmq-server", "rabbitmq", "rabbitmq-server",
                       extra_dirs=("/usr/lib/rabbitmq/bin",)),
    "nginx": Server("nginx", "nginx", "nginx", "nginx", extra_dirs=("/usr/sbin",)),
}

# Tools the tests and benchmarks use besides the servers: a command (or a file) that
# shows it is installed → its Debian package.
TOOLS = {"docker-compose": "docker-compose", "wrk": "wrk", "redis-benchmark": "redis-tools",
         # the Docker-backend tests start their own engine and build stand-in images from Debian
         "dockerd": "docker.io", "debootstrap": "debootstrap",
         # the browser test drives JupyterLab in Debian's headless Chromium (no browser download)
         "chromium": "chromium", "chromedriver": "chromium-driver",
         # a small CJK font, so the 中文 in the browser test's screenshots is text, not boxes
         "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc": "fonts-wqy-microhei"}


def _tool_present(tool: str) -> bool:
    return os.path.exists(tool) if tool.startswith("/") else shutil.which(tool) is not None


def _search_dirs(server: Server) -> list[str]:
    override = os.environ.get("SECKILL_BIN_PATH")
    if override is not None:  # tests and unusual installs: only look here
        return [d for d in override.split(os.pathsep) if d]
    # The packages' own folders come first: Debian's /usr/sbin/rabbitmq-server is
    # a wrapper that switches to the rabbitmq user, which cannot write to .run/.
    dirs: list[str] = []
    for pattern in server.extra_dirs:
        # highest version first, e.g. /usr/lib/postgresql/16/bin before 15
        dirs.extend(sorted(glob.glob(pattern), key=_version_key, reverse=True))
    return dirs + os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin", "/usr/local/sbin"]


def _version_key(path: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in path.split("/"))


def find(name: str) -> str | None:
    """Absolute path of the server binary for ``name`` (e.g. "redis"), or None."""
    server = SERVERS[name]
    for d in _search_dirs(server):
        candidate = os.path.join(d, server.binary)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def sibling(name: str, tool: str) -> str:
    """A tool installed beside a server binary (initdb beside postgres)."""
    path = find(name)
    if path:
        candidate = os.path.join(os.path.dirname(path), tool)
        if os.path.exists(candidate):
            return candidate
    found = shutil.which(tool)
    if not found:
        raise MissingServers(f"{tool} not found beside {path or name}; reinstall {SERVERS[name].apt}")
    return found


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def can_apt() -> bool:
    """apt as root, unless SECKILL_NO_INSTALL=1 says to leave the machine alone."""
    if os.environ.get("SECKILL_NO_INSTALL") == "1":
        return False
    return is_root() and shutil.which("apt-get") is not None


def missing(names: list[str] | None = None) -> list[str]:
    return [n for n in (names or list(SERVERS)) if find(n) is None]


def how_to_install(names: list[str]) -> str:
    servers = [SERVERS[n] for n in names]
    apt = " ".join(s.apt for s in servers)
    brew = " ".join(s.brew for s in servers)
    conda = " ".join(s.conda for s in servers)
    return (f"missing {', '.join(s.binary for s in servers)}: install with "
            f"`sudo apt-get install -y {apt}` (Debian/Ubuntu), `brew install {brew}` (macOS) "
            f"or `conda install -c conda-forge {conda}`, then run the command again")


def apt_install(packages: list[str], *, out=sys.stderr) -> None:
    """apt-get install, showing progress. Only as root on Debian/Ubuntu."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print(f"• installing {' '.join(packages)} with apt-get (one-time, may take a few minutes) …",
          file=out, flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    # apt prints its own progress; -o Dpkg::Use-Pty keeps it line based in CI logs
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
                   check=True, env=env)
    print("• installed", file=out, flush=True)


def ensure_servers(names: list[str] | None = None, *, tools: list[str] = ()) -> None:
    """Make sure the servers (and optional Debian tools) exist; install them as root.

    Raises MissingServers with a one-line instruction when they are missing
    and cannot be installed here.
    """
    need = missing(names)
    need_tools = [TOOLS[t] for t in tools if not _tool_present(t)]
    if not need and not need_tools:
        return
    if can_apt():
        apt_install([SERVERS[n].apt for n in need] + need_tools)
        still = missing(names)
        if still:
            raise MissingServers(how_to_install(still))
        return
    if need:
        raise MissingServers(how_to_install(need))
