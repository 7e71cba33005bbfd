"""`lakehouse demo` with the UI: serves Dagster, and Ctrl-C stops everything the demo started.

It stops the session's stack on purpose, then starts it again for the tests that run after it (under
`make test` a worker runs other files after this one)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import psutil

from lakehouse.settings import Settings
from lakehouse.stack import LocalStack
from tests.conftest import REPO_ROOT


def _project_processes(settings: Settings) -> list[psutil.Process]:
    """Processes that belong to this stack: their command line or environment names its state dir."""
    state = str(settings.state_path)
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            if state in " ".join(proc.info["cmdline"] or []) or proc.environ().get("LAKEHOUSE_STATE_DIR") == state:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_demo_serves_the_ui_and_ctrl_c_stops_everything(demo: Settings, local_stack: LocalStack) -> None:
    url = f"http://{demo.host}:{demo.dagster_port}/server_info"
    process = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "demo"],
        env={**os.environ, **demo.to_env()},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert process.poll() is None, f"demo exited early:\n{process.stdout.read() if process.stdout else ''}"
        assert time.monotonic() < deadline, "the demo's Dagster UI never answered"
        time.sleep(2)
    assert all(s.healthy for s in local_stack.status())

    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground process group
    try:
        output, _ = process.communicate(timeout=180)
        assert process.returncode == 0, output[-3000:]
        assert "stopping the demo" in output

        assert all(s.state == "stopped" for s in local_stack.status()), local_stack.status()
        deadline = time.monotonic() + 30
        while _project_processes(demo) and time.monotonic() < deadline:
            time.sleep(1)
        leftovers = [(p.pid, " ".join(p.cmdline())[:120]) for p in _project_processes(demo)]
        assert leftovers == [], f"processes left running after Ctrl-C: {leftovers}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        local_stack.up(log=lambda _msg: None)  # the session's stack, for the tests after this one
    assert all(s.healthy for s in local_stack.status()), local_stack.status()
