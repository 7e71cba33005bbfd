"""Through the real `dagster-daemon`: stop the CDC service (publisher + sink) while the simulator
writes, and the replication slot checks (lake_health_sensor) and silver's freshness (Dagster's
freshness daemon) fire, each notified once by the alert sensor to a local HTTP receiver; start it
again and each clears once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from pydantic import SecretStr

from lakehouse.dagster_instance import dagster_env
from lakehouse.settings import Settings
from lakehouse.synthetic.entities import generate
from lakehouse.synthetic.simulate import simulate
from orchestration.cdc_events import follow
from tests.conftest import REPO_ROOT
from tests.fixtures.receiver import Receiver, http_receiver
from tests.integration.cdc_support import cdc_environment

SLOT_LIMIT = 8 * 1024 * 1024
INCIDENTS = (
    "freshness:silver/customers",
    "check:postgres/replication_slot:active",
    "check:postgres/replication_slot:retained_wal",
)


def _statuses(receiver: Receiver, incident: str) -> list[str]:
    return [b["status"] for b in receiver.at("/json") if b["incident"] == incident]


def _load_error(log: Path) -> str | None:
    """The first line of a code-location load error in the daemon's log (the daemon keeps running)."""
    text = log.read_text(errors="replace")
    if "DagsterUserCodeLoadError" not in text:
        return None
    causes = [line for line in text.splitlines() if re.match(r"^[\w.]+(Error|Exception): ", line)]
    return causes[-1] if causes else "see the daemon log"


def _wait(what: str, condition: Callable[[], bool], timeout: float, daemon: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert daemon.poll() is None, "dagster-daemon exited"
        error = _load_error(log)
        assert error is None, f"the code location did not load: {error} ({log})"
        assert time.monotonic() < deadline, f"timed out waiting for {what} ({log})"
        time.sleep(1)


class Service:
    """The prod CDC service in threads: the publisher (cdc env) and the sink reporting to Dagster."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance) -> None:
        self.settings, self.instance = settings, instance
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=follow,
            args=(self.settings, self.instance.report_runless_asset_event, self.stop_event),
            kwargs={"pace_seconds": 0.5, "history_check_seconds": 1.0},
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(60)
            assert not self.thread.is_alive(), "the sink service did not stop"


def _customers_writer(settings: Settings, stop: threading.Event) -> None:
    """Keeps customers changing (silver/customers stays fresh while the sink runs)."""
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        step = 0
        while not stop.wait(0.5):
            step += 1
            conn.execute("update shop.customers set last_name = last_name where customer_id = %s", (step % 8 + 1,))


def test_stopped_cdc_service_fires_slot_and_freshness_once_and_clears_once(
    isolated_settings: Callable[[], Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    with http_receiver() as receiver, cdc_environment(isolated_settings, customers=8, products=4, orders=6) as env:
        settings = env.settings.model_copy(
            update={
                "alert_webhook_url": SecretStr(receiver.url("/json")),
                # silver fails 75 s after its last materialization (warns after 60 s, Dagster's minimum)
                "freshness_hours": {"silver": (60 / 3600, 75 / 3600)},
                "slot_max_retained_wal_bytes": SLOT_LIMIT,
                "health_check_interval_seconds": 10,
                "alert_sensor_interval_seconds": 5,
            }
        )
        environment = dagster_env(settings)
        for key in ("DAGSTER_HOME", "DAGSTER_LOCAL_STORAGE", "DAGSTER_LOCAL_COMPUTE_LOGS"):
            monkeypatch.setenv(key, environment[key])
        log_path = settings.state_path / "dagster-daemon.log"
        log = open(log_path, "ab")  # noqa: SIM115 - closed below
        daemon = subprocess.Popen(
            [sys.executable, "-m", "dagster._daemon", "run", "-m", "tests.integration.ops_location"],
            env={**environment, "FRESHNESS_DAEMON_INTERVAL_SECONDS": "3"},
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        writer_stop = threading.Event()
        writers = [
            threading.Thread(target=_customers_writer, args=(settings, writer_stop), daemon=True),
            threading.Thread(
                target=simulate, args=(settings, 10.0, 0.0), kwargs={"seed": 3, "stop": writer_stop}, daemon=True
            ),
        ]
        with dg.DagsterInstance.get() as instance:
            service = Service(settings, instance)
            try:
                service.start()
                for writer in writers:
                    writer.start()
                slot = dg.AssetCheckKey(dg.AssetKey(["postgres", "replication_slot"]), "retained_wal")

                def slot_checked_and_passing() -> bool:
                    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key([slot]).get(slot)
                    return bool(latest and latest.evaluation and latest.evaluation.passed)

                # baseline: the daemon evaluates, everything passes, nothing is notified for our incidents
                _wait("the first passing slot check", slot_checked_and_passing, 360, daemon, log_path)
                time.sleep(20)  # freshness of silver/customers evaluated as PASS meanwhile
                assert all(_statuses(receiver, i) == [] for i in INCIDENTS), receiver.bodies

                # the service stops while the source keeps changing (and a bulk load adds WAL)
                service.stop()
                env.stop_publisher()
                generate(settings, "orders", 3000, seed=11)
                _wait(
                    "a notification for each incident",
                    lambda: all(_statuses(receiver, i) == ["firing"] for i in INCIDENTS),
                    240,
                    daemon,
                    log_path,
                )
                time.sleep(12)  # more ticks of both sensors and the freshness daemon: no repeat
                assert all(_statuses(receiver, i) == ["firing"] for i in INCIDENTS), receiver.bodies

                # back: the publisher reads the slot again, the sink applies and reports silver
                env.start_publisher()
                service.start()
                _wait(
                    "each incident to clear",
                    lambda: all(_statuses(receiver, i) == ["firing", "resolved"] for i in INCIDENTS),
                    240,
                    daemon,
                    log_path,
                )
                time.sleep(12)
                assert all(_statuses(receiver, i) == ["firing", "resolved"] for i in INCIDENTS), receiver.bodies
                fired = {b["incident"]: b for b in receiver.at("/json") if b["status"] == "firing"}
                assert fired["freshness:silver/customers"]["asset"] == "silver/customers"
                assert "inactive" in (fired["check:postgres/replication_slot:active"]["error"] or "")
            finally:
                writer_stop.set()
                service.stop()
                os.killpg(daemon.pid, signal.SIGTERM)
                try:
                    daemon.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(daemon.pid, signal.SIGKILL)
                    daemon.wait(10)
                log.close()
