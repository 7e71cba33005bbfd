"""The CDC publisher as a service of the local stack: restarted on its own (`lakehouse restart cdc`),
it is reported healthy only once Debezium holds its replication slot steadily (Debezium opens the
slot, closes it and opens it again a moment later: a check that accepted the first opening made
`lakehouse up` fail right after a restart)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from lakehouse.settings import Settings
from lakehouse.stack import LocalStack


def test_restarting_the_publisher_alone_is_healthy_when_it_returns(local_stack: LocalStack, settings: Settings) -> None:
    before = {s.name: s.pid for s in local_stack.status()}
    restarted = subprocess.run(
        [sys.executable, "-m", "lakehouse.cli", "restart", "cdc"],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    for _ in range(2):
        statuses = local_stack.restart(["cdc"], log=lambda _m: None)
        assert all(s.healthy for s in statuses), statuses
        for _check in range(5):  # and it stays healthy: no flapping right after the restart
            assert all(s.healthy for s in local_stack.status()), local_stack.status()
            time.sleep(0.3)
    after = {s.name: s.pid for s in local_stack.status()}
    assert after["cdc"] != before["cdc"]
    assert {k: v for k, v in after.items() if k != "cdc"} == {k: v for k, v in before.items() if k != "cdc"}, (
        "only the publisher restarts"
    )
