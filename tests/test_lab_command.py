"""`make lab HEADLESS=1` runs `seckill lab --headless`: the stack up, JupyterLab serving the course."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from seckill import processes, stack

SECKILL = str(Path(sys.executable).parent / "seckill")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_lab_headless_serves_jupyterlab_on_the_notebooks_with_the_stack_up(stack_urls):
    port, token = free_port(), "test-token-123"
    env = {**os.environ, "SECKILL_LAB_TOKEN": token}
    lab = subprocess.Popen([SECKILL, "lab", "--headless", "--port", str(port)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        first = lab.stderr.readline()  # stack progress lines come first
        lines = [first]
        while "JupyterLab:" not in lines[-1] and len(lines) < 50:
            lines.append(lab.stderr.readline())
        assert f"http://127.0.0.1:{port}/lab?token={token}" in lines[-1], lines

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2):
                    return True
            except OSError:
                return False

        assert processes.wait_until(answers, timeout=60, interval=0.3), "JupyterLab did not answer"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents?token={token}", timeout=5) as resp:
            names = {item["name"] for item in json.load(resp)["content"]}
        assert "00_start_here.ipynb" in names, "JupyterLab does not serve notebooks/"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=5) as resp:
            assert resp.status == 200 and "JupyterLab" in resp.read().decode()
        assert stack.healthy()
    finally:
        os.killpg(lab.pid, signal.SIGTERM)
        try:
            lab.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(lab.pid, signal.SIGKILL)
            lab.wait()
    assert not processes.port_open(port)
