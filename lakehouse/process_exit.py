"""End a process with its own exit status, without CPython's interpreter teardown.

Why: native libraries the lakehouse uses run their own threads (DuckDB connections, Arrow's I/O
pool, the embedded JVM of Debezium). When CPython finalizes, such a thread that takes the GIL back is
ended by a forced unwind; through a C++ `noexcept` frame that aborts the process ("terminate called
without an active exception", SIGABRT) or it crashes outright (SIGSEGV), after the command has done
its work and printed its summary (duckdb/duckdb#13904). The exit status then lies: 134/139 instead of
the documented 0, 1 or 3.

Everything a command commits happens before it returns, and the components release their clients
and threads themselves (`CdcSink.close`). What is left is the teardown, which this module replaces
by the part that matters: the `atexit` handlers (log flushing, temporary files), flushed standard
streams, then `os._exit` with the status the command chose.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn


def exit_status(code: object) -> int:
    """The status Python itself would exit with for `SystemExit(code)` (printing a message code)."""
    if code is None:
        return 0
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def exit_now(status: int) -> NoReturn:
    """Run the `atexit` handlers (but JPype's, see `jvm_exit_handlers`), flush stdout/stderr, end with `status`."""
    for handler in jvm_exit_handlers():
        atexit.unregister(handler)
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):  # closed or broken pipe: nothing more to say
                stream.flush()
        os._exit(status)


def run_and_exit(command: Callable[[], object]) -> NoReturn:
    """Run a command-line entry point, then `exit_now` with its status (an exception's traceback: 1)."""
    try:
        result = command()
        status = result if isinstance(result, int) and not isinstance(result, bool) else 0
    except SystemExit as exc:
        status = exit_status(exc.code)
    except KeyboardInterrupt:
        status = 130
    except BaseException:
        traceback.print_exc()
        status = 1
    exit_now(status)


def jvm_exit_handlers() -> list[Callable[..., object]]:
    """JPype's `atexit` handler: it shuts the embedded JVM down, which crashes while Debezium's
    threads still run. The JVM needs no shutdown (its state is in Kafka/Kinesis and the offset file)."""
    core = sys.modules.get("jpype._core")
    handler = getattr(core, "_JTerminate", None) if core is not None else None
    return [handler] if callable(handler) else []
