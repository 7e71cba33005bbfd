"""A cross-process lock for work that processes starting together must not do twice at once."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (flock: the kernel releases it if the process dies).

    Every Dagster process (webserver, daemon, code server, each run, each test worker) imports the
    definitions, and the import builds what is missing on a fresh checkout or state dir: the dlt
    pipelines' working dirs, the dbt manifest. Done by two processes at once, one failed or read the
    other's half-written files; under this lock the second one finds the first one's result.
    """
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
