"""Is this machine ready for the course? Each problem comes with ONE command that fixes it.

Why a module of its own: a learner's first hour is lost to an old Python, a
package at the wrong version, a missing server binary or a port some other
program holds — and a traceback from deep inside ``stack.up()`` says none of
that. So notebook 00 and ``seckill doctor`` look first, and say exactly what is
wrong and what to type:

  * Python: 3.11 or newer;
  * packages: every pin of ``pyproject.toml`` installed at its pinned version;
  * server binaries: redis-server, postgres, rabbitmq-server, nginx (found the
    way ``stack.up()`` finds them, via :mod:`seckill.stack.installer`);
  * ports: each port of the configuration free, or held by this checkout's own
    processes (a running stack is fine);
  * memory: RabbitMQ alone wants about 400 MB;
  * disk: the servers' data and logs go under ``.run/``.

Every input can be replaced through a parameter of :func:`run`, which is how the
tests fake each failure (a pyproject pinning a package that is not installed, a
port held by a listener they open, an empty ``SECKILL_BIN_PATH``, too little
memory) and check that each is reported with its fix.
"""

from __future__ import annotations

import html
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import unicodedata
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Iterable

import psutil

from seckill.stack import installer, processes
from seckill.config import REPO_ROOT, Settings, settings
from seckill.errors import SeckillError
from seckill.i18n import N_, tr, tr_message

MIN_PYTHON = (3, 11)
MIN_MEMORY_MB = 600        # RabbitMQ ~400 MB + Redis + PostgreSQL + one tier
LOW_MEMORY_MB = 1500       # below this the load tests get cramped: a warning, not a failure
MIN_DISK_MB = 1024         # PostgreSQL's data, RabbitMQ's message store, logs, results
PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*==\s*([^;\s]+)")


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, what was found, and the fix when it failed."""

    group: str                 # python | backend | packages | servers | ports | memory | disk
    name: str
    ok: bool
    found: str
    fix: str | None = None     # ONE concrete command or step; None when ok
    warning: bool = False      # a problem that does not stop the course (e.g. little memory)

    @property
    def mark(self) -> str:
        return "ok" if self.ok else ("warn" if self.warning else "FAIL")

    @property
    def shown(self) -> str:
        """``[mark] group: name`` in the reader's language (the fields themselves stay English ids)."""
        return f"{_mark(self.mark)} {_pair(self.group, self.name)}"


# The labels a report shows, translated when shown (tr); the checks keep the English as their ids.
LABELS = (N_("ok"), N_("warn"), N_("FAIL"), N_("python"), N_("backend"), N_("packages"), N_("servers"),
          N_("ports"), N_("memory"), N_("disk"), N_("fonts"), N_("free memory"), N_("free disk"),
          N_("CJK font"))


def _pair(label: str, text: str) -> str:
    """'group: text' in English, '组：text' in Chinese (a full-width colon takes no space after it)."""
    colon = tr(": ")
    return f"{tr(label)}{colon}{tr(text)}"


def _fix(fix: str | None) -> str:
    """'fix: <command>' / '修复：<command>'."""
    label = tr("fix:")
    return f"{label}{'' if label.endswith('：') else ' '}{fix}"


def _mark(mark: str) -> str:
    """``[  ok]``: four columns wide, whichever the language (a Chinese character takes two)."""
    label = tr(mark)
    width = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in label)
    return f"[{' ' * max(0, 4 - width)}{label}]"


class NotReady(SeckillError):
    """Raised by :meth:`Report.require`: in a notebook it shows as the list of fixes, without a traceback."""

    def _render_traceback_(self) -> list[str]:  # IPython's hook for how an exception is shown
        return [f"\x1b[31m{line}\x1b[0m" if i == 0 else line for i, line in enumerate(str(self).splitlines())]


@dataclass(repr=False)
class Report:
    checks: list[Check]

    def __repr__(self) -> str:
        return str(self)

    def require(self) -> "Report":
        """Raise NotReady listing every problem with its fix; return the report when there is none."""
        if self.ok:
            return self
        lines = [tr("Not ready yet: {n} problem(s). Fix each, then run this notebook again from the top:")
                 .format(n=len(self.problems))]
        lines += [f"  • {_pair(c.group, c.name)} — {c.found}\n      {_fix(c.fix)}" for c in self.problems]
        raise NotReady("\n".join(lines))

    @property
    def problems(self) -> list[Check]:
        """The failures (warnings excluded): the course cannot run until these are fixed."""
        return [c for c in self.checks if not c.ok and not c.warning]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if not c.ok and c.warning]

    @property
    def ok(self) -> bool:
        return not self.problems

    def find(self, group: str, name: str | None = None) -> list[Check]:
        return [c for c in self.checks if c.group == group and (name is None or c.name == name)]

    def summary(self) -> str:
        if self.ok and not self.warnings:
            return tr("all {n} checks passed: this machine is ready for the course").format(n=len(self.checks))
        parts = []
        if self.problems:
            parts.append(tr("{n} problem(s) to fix").format(n=len(self.problems)))
        if self.warnings:
            parts.append(tr("{n} warning(s)").format(n=len(self.warnings)))
        return tr("{parts} (of {n} checks); each comes with its fix").format(
            parts=tr(" and ").join(parts), n=len(self.checks))

    def __str__(self) -> str:
        """Problems and warnings one by one with their fix; what passed, one line per group."""
        lines = []
        for c in self.problems + self.warnings:
            lines.append(f"{c.shown} — {c.found}")
            if c.fix:
                lines.append(f"       {_fix(c.fix)}")
        for group in dict.fromkeys(c.group for c in self.checks):
            passed = [c for c in self.checks if c.group == group and c.ok]
            if len(passed) == 1:
                lines.append(f"{passed[0].shown} — {passed[0].found}")
            elif passed:
                names = ", ".join(c.name for c in passed) if len(passed) <= 6 else f"{passed[0].name} … {passed[-1].name}"
                lines.append(f"{_mark('ok')} {tr(group)}{tr(': ')}"
                             + tr("{n} checks ({names})").format(n=len(passed), names=names))
        lines.append(self.summary())
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"ok": self.ok, "summary": self.summary(), "checks": [asdict(c) for c in self.checks]}

    def _repr_html_(self) -> str:
        """Problems first, then warnings; the passed checks folded into one line per group."""
        e = html.escape
        colour = {"FAIL": "#cf222e", "warn": "#9a6700", "ok": "#1a7f37"}
        rows = []
        for c in self.problems + self.warnings:
            rows.append(f'<tr><td style="text-align:left;color:{colour[c.mark]}"><b>{e(tr(c.mark))}</b></td>'
                        f'<td style="text-align:left">{e(tr(c.group))}: {e(tr(c.name))}</td>'
                        f'<td style="text-align:left">{e(c.found)}</td>'
                        f'<td style="text-align:left"><code>{e(c.fix or "")}</code></td></tr>')
        for group in dict.fromkeys(c.group for c in self.checks):
            passed = [c for c in self.checks if c.group == group and c.ok]
            if passed:
                names = f"{passed[0].name}: {passed[0].found}" if len(passed) == 1 else ", ".join(c.name for c in passed)
                rows.append(f'<tr><td style="text-align:left;color:{colour["ok"]}">{e(tr("ok"))}</td>'
                            f'<td style="text-align:left">{e(tr(group))}</td>'
                            f'<td style="text-align:left" colspan="2"><small>{e(names)}</small></td></tr>')
        head = ('<tr><th style="text-align:left"></th><th style="text-align:left">check · 检查</th>'
                '<th style="text-align:left">found · 结果</th><th style="text-align:left">fix · 修复</th></tr>')
        verdict = colour["ok"] if self.ok else colour["FAIL"]
        return (f'<div class="seckill-envcheck"><table><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
                f'<p style="color:{verdict}"><b>{e(self.summary())}</b></p></div>')


# -- the checks -------------------------------------------------------------------------

def check_python(version: tuple[int, ...] | None = None) -> Check:
    version = tuple(version or sys.version_info[:3])
    shown = ".".join(map(str, version))
    if version[:2] >= MIN_PYTHON:
        return Check("python", "Python", True, f"{shown} ({sys.executable})")
    need = ".".join(map(str, MIN_PYTHON))
    return Check("python", "Python", False, tr("{shown} is too old; the course needs {need} or newer").format(shown=shown, need=need),
                 tr("install Python {need}+ then rebuild the environment: rm -rf .venv && make lab PYTHON=python{need}")
                 .format(need=need))


def pinned_packages(pyproject: Path | str | None = None) -> list[tuple[str, str]]:
    """(distribution, version) for each `name==version` of pyproject.toml's dependencies."""
    path = Path(pyproject) if pyproject else REPO_ROOT / "pyproject.toml"
    deps = tomllib.loads(path.read_text())["project"]["dependencies"]
    pins = []
    for dep in deps:
        match = PIN.match(dep)
        if match:
            pins.append((match.group(1), match.group(3)))
    return pins


def _pip_install(name: str, version: str) -> str:
    return f"{shlex.quote(sys.executable)} -m pip install '{name}=={version}'"


def check_packages(pyproject: Path | str | None = None) -> list[Check]:
    """Installed version of each pinned distribution (metadata only: importing locust would patch the kernel)."""
    checks = []
    for name, version in pinned_packages(pyproject):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            checks.append(Check("packages", name, False, tr("not installed"), _pip_install(name, version)))
            continue
        if installed != version:
            checks.append(Check("packages", name, False, tr("{installed} installed, the course pins {version}").format(installed=installed, version=version),
                                _pip_install(name, version)))
        else:
            checks.append(Check("packages", name, True, version))
    return checks


def _install_command(apt_package: str, brew: str, conda: str) -> str:
    """The one command that installs a server package on this machine."""
    if installer.can_apt():
        return "seckill install-servers"
    if sys.platform == "darwin" and shutil.which("brew"):
        return f"brew install {brew}"
    if shutil.which("apt-get"):
        return f"sudo apt-get install -y {apt_package}"
    if shutil.which("conda") or shutil.which("mamba"):
        return f"conda install -c conda-forge {conda}"
    return tr("install the {package} package with your system's package manager (or conda-forge: {conda})").format(
        package=apt_package, conda=conda)


def _find_without_override(name: str) -> str | None:
    saved = os.environ.pop("SECKILL_BIN_PATH", None)
    try:
        return installer.find(name)
    finally:
        if saved is not None:
            os.environ["SECKILL_BIN_PATH"] = saved


def check_backend() -> Check:
    """Which backend `seckill up` uses and why (stack.choose); a Docker backend without Compose fails."""
    from seckill.stack import docker_backend
    from seckill import stack

    try:
        name, why = stack.choose()
    except stack.StackError as exc:
        return Check("backend", "SECKILL_BACKEND", False, str(exc), "export SECKILL_BACKEND=auto")
    if name == "docker":
        answers, engine = docker_backend.engine_answers()
        compose = docker_backend.compose_command()
        if not answers or not compose:
            return Check("backend", "docker", False, f"{why}; {engine if not answers else tr('no Compose')}",
                         tr("start Docker (Docker Desktop, or `sudo systemctl start docker`) and install Compose, "
                            "or export SECKILL_BACKEND=native"))
        return Check("backend", "docker", True, f"{tr_message(why) if engine in why else tr_message(why) + '; ' + engine}; "
                                                f"{' '.join(compose)}")
    return Check("backend", name, True, tr_message(why))


def _docker_backend() -> bool:
    from seckill import stack

    try:
        return stack.choose()[0] == "docker"
    except stack.StackError:
        return False


def check_servers() -> list[Check]:
    docker = _docker_backend()
    checks = []
    for name, server in installer.SERVERS.items():
        path = installer.find(name)
        if path:
            checks.append(Check("servers", server.binary, True, path))
            continue
        where = os.environ.get("SECKILL_BIN_PATH")
        fix = _install_command(server.apt, server.brew, server.conda)
        if where is not None:
            found = tr("not found in SECKILL_BIN_PATH={where}").format(where=where)
            elsewhere = _find_without_override(name)
            if elsewhere:  # installed, but the override hides it
                fix = tr("unset SECKILL_BIN_PATH (or add {folder} to it): {path} is installed").format(
                    folder=os.path.dirname(elsewhere), path=elsewhere)
        else:
            found = tr("not found on this machine")
        checks.append(Check("servers", server.binary, False, found, fix,
                            # on the docker backend the servers (nginx too) run in containers
                            warning=docker))
    return checks


def project_ports(s: Settings) -> dict[str, tuple[int, str]]:
    """Every port the course listens on: label -> (port, the variable that moves it).

    Read from the Ports settings themselves (``SECKILL_<NAME>_PORT``, as
    ``Ports.from_env`` reads them), so a port added there is checked here too.
    """
    ports = {name: (getattr(s.ports, name), f"SECKILL_{name.upper()}_PORT")
             for name in s.ports.__dataclass_fields__}
    for i in range(4):  # tier flask-x4: four gateways on the ports after the gateway port
        ports[f"gateway-{i + 1}"] = (s.ports.gateway + 1 + i, "SECKILL_GATEWAY_PORT")
    return ports


def _listener_pids(port: int) -> list[int]:
    """Every process listening on ``port`` (a forking server's children may hold the socket too)."""
    pids = []
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                pids.append(conn.pid)
    except (psutil.Error, OSError):
        pass  # macOS without root: the owner cannot be seen
    return sorted(set(pids))


def _is_ours(pid: int, ours: set[int]) -> bool | None:
    """The pid, or one of its parents, is a process of this checkout (PostgreSQL's workers are forks).

    None when the process is already gone: a server's short-lived fork holds the
    listening socket for an instant, so a vanished pid says nothing about the port.
    """
    if pid in ours:
        return True
    try:
        return any(parent.pid in ours for parent in psutil.Process(pid).parents())
    except psutil.NoSuchProcess:
        return None
    except psutil.Error:
        return False


def _holders(port: int, ours: set[int]) -> tuple[list[int], list[int]]:
    """(our pids, foreign pids) listening on ``port``; vanished forks are looked past."""
    for _attempt in range(3):
        verdicts = {pid: _is_ours(pid, ours) for pid in _listener_pids(port)}
        if None not in verdicts.values():
            break
        time.sleep(0.1)
    return ([p for p, v in verdicts.items() if v], [p for p, v in verdicts.items() if v is False])


def _our_pids(s: Settings) -> set[int]:
    pids = {p.pid for p in processes.ours(s.run_dir)}
    for record_path in processes.pid_dir(s.run_dir).glob("*.json"):
        record = processes.load(s.run_dir, record_path.stem)
        if processes.alive(s.run_dir, record):
            pids.add(record.pid)
    return pids


def _free_port_near(port: int, taken: Iterable[int]) -> int:
    """A bindable port 100 above (then 200, ...) so the course's ports stay together, outside 32768-60999."""
    return processes.free_port_near(port, taken)


def check_ports(s: Settings | None = None) -> list[Check]:
    s = s or settings()
    ports = project_ports(s)
    ours = _our_pids(s)
    recorded = {}
    for record_path in processes.pid_dir(s.run_dir).glob("*.json"):
        record = processes.load(s.run_dir, record_path.stem)
        if record and record.port and processes.alive(s.run_dir, record):
            recorded[record.port] = record.pid
    docker = _docker_backend()
    checks = []
    for label, (port, variable) in ports.items():
        if processes.port_free(port):  # by binding: a connect check misses ports held by connections
            checks.append(Check("ports", f"{label} :{port}", True, tr("free")))
            continue
        mine, foreign = _holders(port, ours)
        if not mine and not foreign and port in recorded:  # owners invisible (macOS without root): our records
            mine = [recorded[port]]
        if mine and not foreign:
            checks.append(Check("ports", f"{label} :{port}", True, tr("held by this course (pid {pid})").format(pid=mine[0])))
            continue
        pid = foreign[0] if foreign else None
        try:
            owner_name = psutil.Process(pid).name() if pid else ""
        except psutil.Error:
            owner_name = ""
        if docker and owner_name.startswith(("docker", "com.docker")):
            checks.append(Check("ports", f"{label} :{port}", True, tr("held by docker compose (pid {pid})").format(pid=pid)))
            continue
        owner = (f"pid {pid} ({owner_name})" if owner_name else f"pid {pid}") if pid \
            else tr_message(processes.who_listens(port).replace("another process", N_("another program")))
        other = _free_port_near(port, (p for p, _ in ports.values()))
        if variable == "SECKILL_GATEWAY_PORT" and label != "gateway":
            move = f"export SECKILL_GATEWAY_PORT={other - (port - s.ports.gateway)}"
        else:
            move = f"export {variable}={other}"
        stop = f"kill {pid}" if pid else tr("stop that program")
        checks.append(Check("ports", f"{label} :{port}", False,
                            tr("taken by {owner}, not by this course").format(owner=owner),
                            tr("{stop} if it is yours to stop, or move the course: `{move}` in your terminal, "
                               "then `make lab` again").format(stop=stop, move=move)))
    return checks


def check_memory(available_bytes: int | None = None) -> Check:
    available = psutil.virtual_memory().available if available_bytes is None else available_bytes
    mb = available / 2**20
    if mb >= LOW_MEMORY_MB:
        return Check("memory", "free memory", True, tr("{mb:,.0f} MB available").format(mb=mb))
    fix = tr("free at least {need:,.0f} MB: close other programs (browsers, IDEs, containers); "
             "`seckill tier down` stops a running tier").format(
        need=MIN_MEMORY_MB - mb if mb < MIN_MEMORY_MB else LOW_MEMORY_MB - mb)
    if mb >= MIN_MEMORY_MB:
        return Check("memory", "free memory", False,
                     tr("{mb:,.0f} MB available: enough for the stack, tight for load tests").format(mb=mb), fix,
                     warning=True)
    return Check("memory", "free memory", False,
                 tr("{mb:,.0f} MB available; the stack needs about {need} MB (RabbitMQ alone ~400 MB)").format(
                     mb=mb, need=MIN_MEMORY_MB), fix)


def check_disk(free_bytes: int | None = None, path: Path | None = None) -> Check:
    path = path or settings().run_dir
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free if free_bytes is None else free_bytes
    mb = free / 2**20
    if mb >= MIN_DISK_MB:
        return Check("disk", "free disk", True, tr("{mb:,.0f} MB free under {path}").format(mb=mb, path=probe))
    return Check("disk", "free disk", False,
                 tr("{mb:,.0f} MB free under {path}; the course needs {need} MB").format(
                     mb=mb, path=probe, need=MIN_DISK_MB),
                 tr("free {more:,.0f} MB on that disk (`seckill reset` wipes this course's server data; "
                    "`du -sh {path}/*` shows what is big)").format(more=MIN_DISK_MB - mb, path=probe))


# Fonts that carry Simplified Chinese glyphs, by how to install them (the first found is enough).
CJK_FONT_FIX = N_("sudo apt-get install fonts-noto-cjk   (or fonts-wqy-microhei; macOS: brew install --cask "
                   "font-noto-sans-cjk-sc; conda: conda install -c conda-forge font-ttf-noto-cjk)")


def check_cjk_font(fc_list: str | None = None) -> Check:
    """Is a font with Chinese glyphs installed (``fc-list :lang=zh``)? Without one, 中文 shows as boxes (tofu).

    A warning, not a failure: only the Chinese edition and Chinese charts need it. ``fc_list`` replaces
    the command's output (for tests)."""
    if fc_list is None:
        exe = shutil.which("fc-list")
        if exe is None:
            return Check("fonts", "CJK font", False,
                         tr("fc-list not found (fontconfig), cannot tell whether a Chinese font is installed"),
                         tr(CJK_FONT_FIX), warning=True)
        try:
            fc_list = subprocess.run([exe, ":lang=zh", "family"], capture_output=True, text=True,
                                     timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            fc_list = ""
    families = sorted({line.split(",")[0].strip() for line in fc_list.splitlines() if line.strip()})
    if families:
        return Check("fonts", "CJK font", True, ", ".join(families[:3]) + (" …" if len(families) > 3 else ""))
    return Check("fonts", "CJK font", False,
                 tr("no font with Chinese glyphs: the 中文 edition and its charts would show boxes"),
                 tr(CJK_FONT_FIX), warning=True)


def run(*, pyproject: Path | str | None = None, s: Settings | None = None, python: tuple[int, ...] | None = None,
        available_memory: int | None = None, free_disk: int | None = None) -> Report:
    """Every check of this machine; each argument replaces what would be read from it (for tests)."""
    s = s or settings()
    checks = [check_python(python)]
    checks.append(check_backend())
    checks += check_packages(pyproject)
    checks += check_servers()
    checks += check_ports(s)
    checks.append(check_memory(available_memory))
    checks.append(check_disk(free_disk, s.run_dir))
    checks.append(check_cjk_font())
    return Report(checks)


def machine() -> dict:
    """What the figures of this course were measured on (quoted by the notebooks)."""
    return {"python": platform.python_version(), "system": f"{platform.system()} {platform.release()}",
            "cores": os.cpu_count(), "memory_mb": round(psutil.virtual_memory().total / 2**20)}
