"""The CDC processes end with their documented exit status, never a crash in interpreter teardown.

Issue 20: native threads (DuckDB, Arrow, the embedded JVM) could abort or segfault a process after
its work was done, turning 0 or 3 into 134/139. Each process that uses the sink's clients runs here
in a subprocess on the real stack (PostgreSQL → Debezium → Kafka or Kinesis → Delta on the S3
emulator); the unit test tests/unit/test_process_exit.py shows the crash itself and the guard.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ingestion.cdc.verify import compare_table
from lakehouse.settings import Settings
from lakehouse.synthetic.entities import generate
from tests.integration.cdc_support import TRANSPORTS, CdcEnv, cdc_environment

#: what a process that died in teardown prints (SIGABRT from std::terminate) or how it ends
TEARDOWN_CRASHES = ("terminate called", "Fatal Python error", "Segmentation fault")
#: the sensor's probe, as the Dagster daemon runs it, in a plain Python process
PROBE = """
import json
from ingestion.cdc.config import SinkConfig
from ingestion.cdc.monitor import tables_with_new_data
from lakehouse.settings import get_settings
print(json.dumps(tables_with_new_data(SinkConfig.from_settings(get_settings()))))
"""


@pytest.fixture(params=TRANSPORTS)
def cdc(isolated_settings: Callable[[], Settings], request: pytest.FixtureRequest) -> Iterator[CdcEnv]:
    with cdc_environment(isolated_settings, transport=request.param) as env:
        yield env


def _assert_clean_exit(returncode: int, output: str, expected: int) -> None:
    assert returncode == expected, f"exit status {returncode}, expected {expected}:\n{output[-4000:]}"
    for sign in TEARDOWN_CRASHES:
        assert sign not in output, output[-4000:]


def _stop_with_sigterm(process: subprocess.Popen[str], timeout: float = 120) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return output


def _wait_until(condition: Callable[[], bool], process: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the process ended early ({process.returncode}):\n{process.communicate()[0][-4000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"not consistent within {timeout:.0f} s:\n{process.communicate()[0][-4000:]}")
        time.sleep(1)


def test_one_shot_and_follow_mode_sink_exit_with_their_status(cdc: CdcEnv) -> None:
    """One-shot: 0 once applied. Follow mode (history worker, parallel appliers) stopped by SIGTERM: 0."""
    generate(cdc.settings, "orders", 40, seed=31)
    time.sleep(2)  # let Debezium publish
    once = cdc.sink_subprocess(timeout=300)
    _assert_clean_exit(once.returncode, once.stdout + once.stderr, 0)

    env = {**os.environ, **cdc.settings.to_env()}
    follower = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "cdc", "sink", "--follow"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        generate(cdc.settings, "orders", 40, seed=32)
        cdc.execute("update shop.orders set status = 'shipped' where order_id <= 10")
        _wait_until(lambda: all(compare_table(cdc.settings, t).equal for t in ("orders", "order_items")), follower)
    finally:
        output = _stop_with_sigterm(follower)
    _assert_clean_exit(follower.returncode, output, 0)
    cdc.assert_bronze_unique()


@pytest.mark.parametrize("cdc", ["kafka"], indirect=True)
def test_sensor_probe_and_the_always_on_sink_exit_with_their_status(cdc: CdcEnv, tmp_path: Path) -> None:
    """The sensor's probe (Kafka clients, Delta handles) and `orchestration.cdc_events` (SIGTERM)."""
    cdc.wait_consistent(("orders",))
    cdc.execute("update shop.orders set status = 'paid' where order_id <= 5")
    env = {**os.environ, **cdc.settings.to_env(), "DAGSTER_HOME": str(tmp_path)}
    deadline = time.monotonic() + 60
    while True:  # until Debezium has published the update: every probe must exit 0
        probe = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
        _assert_clean_exit(probe.returncode, probe.stdout + probe.stderr, 0)
        if "orders" in json.loads(probe.stdout.strip().splitlines()[-1]) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert "orders" in json.loads(probe.stdout.strip().splitlines()[-1]), probe.stdout

    service = subprocess.Popen(
        [sys.executable, "-m", "orchestration.cdc_events", "--pace-seconds", "1", "--history-check-seconds", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_until(lambda: compare_table(cdc.settings, "orders").equal, service)
    finally:
        output = _stop_with_sigterm(service)
    _assert_clean_exit(service.returncode, output, 0)
    assert "CDC sink stopped;" in output, output[-4000:]
