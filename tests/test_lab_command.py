"""`make lab HEADLESS=1 PORT=…` runs `seckill lab --headless --port …`: the stack up, JupyterLab serving the course.

What a learner sees in their terminal: progress lines, then ONE line with the URL and token, last;
Jupyter's own log goes to a file. Terminals opened in that JupyterLab find `seckill`, and JupyterLab
does not ask about Jupyter news.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import psutil

from seckill.stack import processes
from seckill import stack
from seckill.config import settings

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = str(Path(sys.executable).parent)


def free_port() -> int:
    return processes.free_port_near(20_000 + os.getpid() % 700)


def _lines(stream, sink: queue.Queue) -> None:
    for line in stream:
        sink.put(line.rstrip("\n"))


def _api(port: int, token: str, path: str, method: str = "GET"):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}?token={token}", method=method,
                                     data=b"{}" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp) if resp.status != 204 else None


def test_make_lab_headless_port_serves_the_course_and_prints_its_url_last(stack_urls):
    port, token = free_port(), "test-token-123"
    env = {**os.environ, "SECKILL_LAB_TOKEN": token, "PATH": "/usr/bin:/bin"}  # as a fresh shell: no venv
    lab = subprocess.Popen(["make", "--no-print-directory", "lab", "HEADLESS=1", f"PORT={port}"], cwd=REPO,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL, start_new_session=True)
    out, err = queue.Queue(), queue.Queue()
    threading.Thread(target=_lines, args=(lab.stdout, out), daemon=True).start()
    threading.Thread(target=_lines, args=(lab.stderr, err), daemon=True).start()
    try:
        lines = []
        while not lines or "JupyterLab:" not in lines[-1]:
            lines.append(out.get(timeout=180))
        assert f"http://127.0.0.1:{port}/lab?token={token}" in lines[-1], lines
        assert lines[-1].count("http") == 1
        names = {item["name"] for item in _api(port, token, "/api/contents")["content"]}
        assert "00_start_here.ipynb" in names, "JupyterLab does not serve notebooks/"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5) as resp:
            assert resp.status == 200 and "JupyterLab" in resp.read().decode()
        assert stack.healthy()

        # A terminal opened in this JupyterLab finds `seckill`: its shell has the venv's bin/ on PATH.
        [server] = [p for p in psutil.process_iter(["cmdline"])
                    if f"--port={port}" in " ".join(p.info["cmdline"] or []) and "jupyter" in " ".join(p.info["cmdline"])]
        before = {c.pid for c in server.children(recursive=True)}
        terminal = _api(port, token, "/api/terminals", method="POST")
        assert processes.wait_until(lambda: {c.pid for c in server.children(recursive=True)} - before, timeout=20)
        [shell] = [c for c in server.children(recursive=True) if c.pid not in before][:1]
        shell_path = shell.environ()["PATH"]
        assert shell_path.split(os.pathsep)[0] == VENV_BIN, shell_path
        assert shutil.which("seckill", path=shell_path) == f"{VENV_BIN}/seckill"
        _api(port, token, f"/api/terminals/{terminal['name']}", method="DELETE")

        # No news pop-up: the course's JupyterLab settings say Never.
        overrides = json.loads((Path(sys.prefix) / "share/jupyter/lab/settings/overrides.json").read_text())
        assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"

        # Jupyter's log is in a file, not in the learner's terminal; the URL stays the last line.
        log = settings().run_dir / "logs" / "jupyterlab.log"
        assert "ServerApp" in log.read_text()
        assert err.empty(), list(err.queue)
        assert out.empty(), list(out.queue)
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait()
    assert processes.wait_until(lambda: processes.port_free(port), timeout=30), "JupyterLab left running"


def test_lab_on_a_taken_port_says_so_in_one_line_with_a_free_one(stack_urls):
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", free_port()))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run([f"{VENV_BIN}/seckill", "lab", "--headless"], capture_output=True, text=True,
                                env={**os.environ, "SECKILL_LAB_PORT": str(port)}, timeout=120)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"seckill: port {port} is taken by pid {os.getpid()}") and "make lab PORT=" in line, line
    suggested = int(line.split("make lab PORT=")[1].split()[0])
    assert suggested not in processes.EPHEMERAL
