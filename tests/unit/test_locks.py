"""lakehouse.locks.exclusive: one process at a time, and a holder that dies frees the lock."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from lakehouse.locks import exclusive


def _critical_section(lock_file: str, journal: str, tag: str, barrier: object) -> None:
    barrier.wait(timeout=30)  # type: ignore[attr-defined]
    with exclusive(Path(lock_file)):
        with open(journal, "a") as out:
            out.write(f"{tag}:in\n")
        time.sleep(0.2)
        with open(journal, "a") as out:
            out.write(f"{tag}:out\n")


def test_sections_never_overlap(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    journal = tmp_path / "journal"
    tags = [f"p{number}" for number in range(4)]
    with context.Manager() as manager, ProcessPoolExecutor(len(tags), mp_context=context) as pool:
        barrier = manager.Barrier(len(tags))
        lock_file = str(tmp_path / "nested" / "dir" / ".lock")  # its directory is created
        futures = [pool.submit(_critical_section, lock_file, str(journal), tag, barrier) for tag in tags]
        for future in futures:
            future.result(timeout=60)
    lines = journal.read_text().split()
    assert len(lines) == 2 * len(tags)
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        assert enter.endswith(":in") and leave == enter.replace(":in", ":out"), lines


def test_a_holder_killed_with_sigkill_frees_the_lock(tmp_path: Path) -> None:
    lock_file = tmp_path / ".lock"
    ready = tmp_path / "ready"
    pid = os.fork()
    if pid == 0:  # child: take the lock, say so, hold it until killed
        try:
            with exclusive(lock_file):
                ready.touch()
                time.sleep(60)
        finally:
            os._exit(0)
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert time.monotonic() < deadline, "the child never took the lock"
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    started = time.monotonic()
    with exclusive(lock_file):
        assert time.monotonic() - started < 5
