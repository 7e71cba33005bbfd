"""`lakehouse.process_exit`: a command's exit status survives native threads alive at exit (issue 20).

The control test shows the crash itself: a DuckDB query running in a daemon thread when Python
exits aborts the process (duckdb/duckdb#13904). If that ever stops happening the control fails,
and the guard can be reconsidered; if the guard stops working, the other tests fail.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lakehouse.process_exit import exit_status

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import atexit, sys, threading
    import duckdb

    started = threading.Event()

    def busy() -> None:  # a native library's work still running when the command ends
        con = duckdb.connect()
        started.set()
        while True:
            con.sql("select sum(range) from range(2000000)").fetchall()

    threading.Thread(target=busy, daemon=True).start()
    started.wait()
    atexit.register(lambda: print("exit handler ran", flush=True))
    mode, status = sys.argv[1], int(sys.argv[2])

    def command():
        print("command done", flush=True)
        raise SystemExit(status)

    if mode == "plain":
        command()
    from lakehouse.process_exit import run_and_exit
    run_and_exit(command)
    """
)


def _run(mode: str, status: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, str(status)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_plain_exit_with_a_native_thread_running_aborts() -> None:
    """The control: the reason the guard exists (SIGABRT after the command's work was done)."""
    result = _run("plain", 3)
    assert result.returncode == -signal.SIGABRT, (result.returncode, result.stderr)
    assert "terminate called without an active exception" in result.stderr
    assert "command done" in result.stdout


@pytest.mark.parametrize("status", [0, 1, 3])
def test_guarded_exit_keeps_the_status_and_runs_exit_handlers(status: int) -> None:
    result = _run("guarded", status)
    assert result.returncode == status, (result.returncode, result.stderr)
    assert result.stdout.splitlines() == ["command done", "exit handler ran"]
    assert "terminate called" not in result.stderr


def test_lakehouse_cli_entry_point_exits_with_the_commands_status() -> None:
    """The installed `lakehouse` script and `python -m lakehouse.cli` go through the guard."""
    bad_option = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "cdc", "sink", "--crash-at", "nowhere"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_option.returncode == 2 and "--crash-at must be one of" in bad_option.stderr
    script = Path(sys.executable).with_name("lakehouse")
    assert "lakehouse.cli import main" in script.read_text(), "the console script must be lakehouse.cli:main"


@pytest.mark.parametrize(
    ("code", "status"),
    [(None, 0), (0, 0), (3, 3), (True, 1), (False, 0), (256 + 2, 2), ("a message", 1)],
)
def test_exit_status_maps_system_exit_codes_as_python_does(code: object, status: int) -> None:
    assert exit_status(code) == status
