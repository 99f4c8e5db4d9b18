"""The course's JupyterLab: started by `seckill lab` (what `make lab` runs), ready for a first hour.

What it adds to a plain `jupyter lab`, each because a learner hit it:
  * its port from ``--port``, ``$SECKILL_LAB_PORT`` or ``make lab PORT=…``, checked by binding;
  * no "get notified about official Jupyter news?" pop-up over every page: the
    course's settings say Never (an ``overrides.json`` in this venv's JupyterLab),
    and widget state is saved with the notebook (a reopened calculator shows its
    last chart, not "model not found");
  * terminals opened in it find ``seckill``: the server (and so every terminal it
    starts) has this venv's bin/ first on PATH;
  * Jupyter's own log goes to ``.run/logs/jupyterlab.log``; the terminal shows the
    course's progress and, last, the ONE line with the URL and its token.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
import webbrowser
from pathlib import Path
from typing import TextIO

from seckill.stack import processes
from seckill.config import REPO_ROOT, settings
from seckill.errors import SeckillError

DEFAULT_PORT = 18888
# JupyterLab reads default settings from <sys.prefix>/share/jupyter/lab/settings/overrides.json.
OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    # Save widget state with the notebook: a calculator reopened without a kernel still shows its last chart.
    "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True},
}


class LabError(SeckillError):
    """JupyterLab cannot start; the message says why and what to do."""


def overrides(lang: str | None = None) -> dict:
    """The course's JupyterLab settings; the interface in Chinese (language pack) when the language is zh."""
    from seckill.i18n import jupyterlab_locale

    return {**OVERRIDES, "@jupyterlab/translation-extension:plugin": {"locale": jupyterlab_locale(lang)}}


def write_overrides(prefix: Path | None = None, lang: str | None = None) -> Path:
    """Merge the course's settings into this environment's JupyterLab overrides.json; returns its path."""
    path = Path(prefix or sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    try:
        current = json.loads(path.read_text())
    except (OSError, ValueError):
        current = {}
    merged = {**current, **{k: {**current.get(k, {}), **v} for k, v in overrides(lang).items()}}
    if merged != current:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(merged, indent=2) + "\n")
    return path


def server_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: this venv's bin/ first on PATH, so its terminals find `seckill`."""
    env = dict(os.environ if base is None else base)
    venv_bin = str(Path(sys.executable).parent)
    parts = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join([venv_bin, *parts])
    env["VIRTUAL_ENV"] = sys.prefix
    return env


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def serve(port: int, *, headless: bool, token: str | None = None, out: TextIO = sys.stdout) -> int:
    """Run JupyterLab on notebooks/ until it exits or we are interrupted; returns its exit code.

    Raises LabError (one line) when the port cannot be bound or the server does not come up.
    """
    import secrets

    if not processes.port_free(port):
        raise LabError(f"port {port} is taken by {processes.who_listens(port)}; "
                       f"use another: make lab PORT={processes.free_port_near(port)}")
    token = token or os.environ.get("SECKILL_LAB_TOKEN") or secrets.token_hex(16)
    write_overrides()
    log_path = settings().run_dir / "logs" / "jupyterlab.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={REPO_ROOT / 'notebooks'}",
            "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
            "--ServerApp.port_retries=0", "--no-browser"]
    if os.geteuid() == 0:
        args.append("--allow-root")
    print(f"• JupyterLab starting on 127.0.0.1:{port} (its log: {log_path}) …", file=out, flush=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, env=server_env(), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        ready = processes.wait_until(lambda: proc.poll() is not None or
                                     _answers(f"http://127.0.0.1:{port}/api/status?token={token}"),
                                     timeout=120, interval=0.3)
        if proc.poll() is not None or not ready:
            reason = processes.log_reason(log_path) or ": (its log is empty)"
            raise LabError(f"JupyterLab did not start{reason}; whole log: {log_path}")
        from seckill.i18n import lang

        # the Chinese edition opens on its own folder (notebooks/zh), the English one on notebooks/
        url = f"http://127.0.0.1:{port}/lab{'/tree/zh' if lang() == 'zh' else ''}?token={token}"
        if not headless:
            webbrowser.open(url)
        print(f"JupyterLab: {url}   (Ctrl-C stops it; `make down` stops the stack)", file=out, flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def install_sigterm() -> None:
    """SIGTERM (a test, `kill`) stops JupyterLab as Ctrl-C does, so no server is left behind."""
    signal.signal(signal.SIGTERM, _on_sigterm)
