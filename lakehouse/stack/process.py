"""Background processes that the project starts, records and stops again.

Each process gets a PID record (pid + kernel start time, so a recycled PID is never mistaken for
ours) and one log file under the state directory. `stop` only signals processes whose record still
matches, so `lakehouse down` never touches anything it did not start.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil


class StackError(RuntimeError):
    """A local service could not be started, reached or stopped; the message says what to do."""


@dataclass(frozen=True)
class ProcessRecord:
    name: str
    pid: int
    create_time: float
    argv: list[str]

    def is_alive(self) -> bool:
        """True while the recorded process (same PID *and* same start time) still runs."""
        try:
            proc = psutil.Process(self.pid)
            return abs(proc.create_time() - self.create_time) < 0.5 and proc.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False


class ProcessTable:
    """PID records and log files of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.run_dir = state_dir / "run"
        self.log_dir = state_dir / "logs"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _record_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def get(self, name: str) -> ProcessRecord | None:
        path = self._record_path(name)
        if not path.exists():
            return None
        try:
            return ProcessRecord(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            path.unlink()  # a torn record cannot name a process of ours
            return None

    def forget(self, name: str) -> None:
        self._record_path(name).unlink(missing_ok=True)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        cwd: Path | None = None,
        user: str | None = None,
    ) -> ProcessRecord:
        """Start `argv` in its own session (so it outlives the CLI), logging to `<name>.log`."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(name), "ab") as log:
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(argv)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=user,
                group=user,
                extra_groups=[] if user else None,
                # a background shell may have left SIGINT ignored; services must obey signals
                restore_signals=True,
                preexec_fn=_default_signals,
            )
        record = ProcessRecord(name, popen.pid, psutil.Process(popen.pid).create_time(), list(argv))
        tmp = self._record_path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(record.__dict__))
        tmp.replace(self._record_path(name))
        return record

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM, timeout: float = 20.0) -> bool:
        """Stop the recorded process group; SIGKILL after `timeout`. Returns True if one was running."""
        record = self.get(name)
        if record is None:
            return False
        was_alive = record.is_alive()
        if was_alive:
            # children that started sessions of their own (LocalStack's DynamoDB Local and kinesis-mock)
            # are outside the process group: remembered now, stopped after their parent
            descendants = _descendants(record.pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pid, sig)
            deadline = time.monotonic() + timeout
            while record.is_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if record.is_alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(record.pid, signal.SIGKILL)
                while record.is_alive():
                    time.sleep(0.05)
            _terminate(descendants, timeout)
        self.forget(name)
        return was_alive

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.log_path(name)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _terminate(processes: list[psutil.Process], timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout`, whatever of `processes` still runs (PID reuse is detected)."""
    alive = [p for p in processes if _running(p)]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, still = psutil.wait_procs(alive, timeout=timeout)
    for proc in still:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(still, timeout=5)


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def port_in_use(host: str, port: int) -> bool:
    """True if something already listens on host:port (we try to bind it ourselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (for tests and ad-hoc stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tcp_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
