"""CDC end to end over real services: PostgreSQL → Debezium (embedded) → Kafka → Delta sink.

Every test gets its own database, topic prefix, replication slot and lake bucket on the shared
stack. "Consistent" always means: silver equals the PostgreSQL table row by row
(`ingestion.cdc.verify.compare_table`) and bronze holds each (partition, offset) once.
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

from ingestion.cdc.decode import UNAVAILABLE
from ingestion.cdc.sink import CdcSink
from ingestion.cdc.verify import compare_table
from lakehouse.settings import Settings
from lakehouse.stack import LocalStack
from lakehouse.synthetic.entities import generate
from tests.integration.cdc_support import TRANSPORTS, CdcEnv, cdc_environment


@pytest.fixture
def cdc(isolated_settings: Callable[[], Settings], request: pytest.FixtureRequest) -> Iterator[CdcEnv]:
    """Kafka unless the test is parametrized with `ON_BOTH_TRANSPORTS`."""
    with cdc_environment(isolated_settings, transport=getattr(request, "param", "kafka")) as env:
        yield env


#: the tests that run on Kinesis too: end to end, crafted records on the shared stream, a stopped
#: table among flowing ones, dead letters, and the kill -9 at every commit stage (the others test
#: apply logic that does not depend on the transport, and each Kinesis run costs 10-25 s)
ON_BOTH_TRANSPORTS = pytest.mark.parametrize("cdc", TRANSPORTS, indirect=True)


@ON_BOTH_TRANSPORTS
def test_snapshot_then_streaming_inserts_updates_deletes(cdc: CdcEnv) -> None:
    report = cdc.wait_consistent()
    snapshot = cdc.query(f"select op, count(*) from {cdc.delta('bronze', 'orders')} group by 1")
    assert dict(snapshot) == {"r": 100}
    assert all(entry.error is None for entry in report.tables.values()), report
    verified = cdc.cli("verify", "--table", "orders", "--table", "customers")
    assert verified.returncode == 0 and verified.stdout.count("identical") == 2, verified.stdout + verified.stderr

    cdc.execute("update shop.orders set status = 'cancelled' where order_id in (1, 2, 3)")
    cdc.execute("delete from shop.payments where order_id = 4")
    cdc.execute("delete from shop.order_items where order_id = 4")
    cdc.execute("delete from shop.orders where order_id = 4")
    generate(cdc.settings, "orders", 10, seed=8)
    cdc.wait_consistent()

    ops = dict(cdc.query(f"select op, count(*) from {cdc.delta('bronze', 'orders')} group by 1"))
    assert ops["u"] >= 3 and ops["d"] == 1 and ops["c"] == 10
    tombstone = cdc.query(f"select _cdc_deleted, status from {cdc.delta('silver', 'orders')} where order_id = 4")
    assert tombstone == [(True, tombstone[0][1])], "a deleted key stays as a tombstone row"
    history = cdc.query(
        f"select status, is_current, valid_to is null from {cdc.delta('history', 'orders')} "
        "where order_id = 1 order by _cdc_lsn"
    )
    assert history[-1] == ("cancelled", True, True)
    assert all(not current and closed is False for _s, current, closed in history[:-1])
    deleted_history = cdc.query(
        f"select _cdc_op, is_current from {cdc.delta('history', 'orders')} where order_id = 4 order by _cdc_lsn"
    )
    assert deleted_history[-1] == ("d", False) and not any(current for _op, current in deleted_history)


def test_many_updates_of_one_key_in_one_batch(cdc: CdcEnv) -> None:
    cdc.wait_consistent(("orders",))
    for i in range(40):
        cdc.execute("update shop.orders set currency = %s where order_id = 10", ("EUR" if i % 2 else "USD",))
    cdc.execute("update shop.orders set status = 'shipped' where order_id = 10")
    cdc.wait_consistent(("orders",))
    versions = cdc.query(
        f"select count(*), count(*) filter (where is_current) from {cdc.delta('history', 'orders')} where order_id = 10"
    )
    assert versions == [(42, 1)]  # snapshot + 41 updates, exactly one current
    chain = cdc.query(
        f"select count(*) from (select valid_to, lead(valid_from) over (order by _cdc_lsn) as next_from "
        f"from {cdc.delta('history', 'orders')} where order_id = 10) where valid_to is distinct from next_from"
    )
    assert chain == [(0,)], "each version ends where the next begins"


def _envelope(table: str, op: str, before: dict | None, after: dict | None, lsn: int, schema: str = "shop") -> bytes:
    source = {"schema": schema, "table": table, "lsn": lsn, "txId": lsn, "ts_ms": 1_795_456_446_000 + lsn}
    return json.dumps({"before": before, "after": after, "source": source, "op": op}).encode()


@ON_BOTH_TRANSPORTS
def test_duplicate_and_out_of_order_deliveries(cdc: CdcEnv) -> None:
    cdc.wait_consistent(("customers",))
    topic = cdc.settings.cdc_topic("customers")
    row = dict(
        zip(
            ["customer_id", "email"],
            cdc.fetch("select customer_id, email from shop.customers where customer_id = 5")[0],
            strict=True,
        )
    )
    current_lsn = cdc.query(f"select _cdc_lsn from {cdc.delta('silver', 'customers')} where customer_id = 5")[0][0]
    key = json.dumps({"customer_id": 5}).encode()
    stale = dict(row, email="stale@example.invalid")
    existing = cdc.topic_messages(topic)
    duplicate = next(v for _o, v in existing if v and json.loads(v)["after"]["customer_id"] == 5)
    cdc.produce(
        topic,
        [
            (key, duplicate),  # the same change delivered again
            (key, _envelope("customers", "u", row, stale, current_lsn - 1)),  # older than what silver holds
        ],
    )
    report = cdc.sink_once(["customers"])
    assert report.tables["customers"].changes == 2
    assert compare_table(cdc.settings, "customers").equal, "stale or duplicate deliveries must not win"
    cdc.assert_bronze_unique()

    # a delete followed by an older update of the same key: the key stays deleted
    ghost = {"customer_id": 999_999, "email": "ghost@example.invalid"}
    ghost_key = json.dumps({"customer_id": 999_999}).encode()
    cdc.produce(
        topic,
        [
            (ghost_key, _envelope("customers", "c", None, ghost, 10**12)),
            (ghost_key, _envelope("customers", "d", ghost, None, 10**12 + 2)),
            (ghost_key, None),  # tombstone
            (ghost_key, _envelope("customers", "u", ghost, dict(ghost, email="late@example.invalid"), 10**12 + 1)),
        ],
    )
    report = cdc.sink_once(["customers"])
    assert report.tables["customers"].tombstones == 1 and report.dead_letters == 0
    state = cdc.query(
        f"select _cdc_deleted, email, _cdc_lsn from {cdc.delta('silver', 'customers')} where customer_id = 999999"
    )
    assert state == [(True, "ghost@example.invalid", 10**12 + 2)]
    chain = cdc.query(
        f"select _cdc_op, email, is_current from {cdc.delta('history', 'customers')} "
        "where customer_id = 999999 order by _cdc_lsn"
    )
    assert chain == [
        ("c", "ghost@example.invalid", False),
        ("u", "late@example.invalid", False),
        ("d", "ghost@example.invalid", False),
    ], "the late version is slotted into history in LSN order and nothing is current"


def test_unchanged_toast_values_keep_the_stored_value(cdc: CdcEnv) -> None:
    cdc.wait_consistent(("products",))
    description = cdc.fetch("select description from shop.products where product_id = 3")[0][0]
    assert len(description) > 2000, "the generator must produce TOASTed descriptions"
    cdc.execute("update shop.products set price = price + 1 where product_id = 3")
    cdc.wait_consistent(("products",))
    assert compare_table(cdc.settings, "products").equal

    # Debezium without a before-image sends a placeholder for unchanged TOAST columns
    topic = cdc.settings.cdc_topic("products")
    stored = cdc.query(
        f"select * exclude (_cdc_lsn, _cdc_op, _cdc_source_ts, _cdc_deleted, _cdc_updated_at, _cdc_unavailable) "
        f"from {cdc.delta('silver', 'products')} where product_id = 3"
    )
    columns = [r[0] for r in cdc.query(f"describe select * from {cdc.delta('silver', 'products')}")]
    after = dict(zip([c for c in columns if not c.startswith("_cdc_")], stored[0], strict=True))
    after.update(description=UNAVAILABLE, name="Renamed product")
    lsn = cdc.query(f"select _cdc_lsn from {cdc.delta('silver', 'products')} where product_id = 3")[0][0] + 1
    cdc.produce(topic, [(json.dumps({"product_id": 3}).encode(), _envelope("products", "u", None, after, lsn))])
    cdc.sink_once(["products"])
    silver = cdc.query(f"select name, description from {cdc.delta('silver', 'products')} where product_id = 3")
    assert silver == [("Renamed product", description)]
    versions = cdc.query(
        f"select description = '{UNAVAILABLE}' from {cdc.delta('history', 'products')} where product_id = 3"
    )
    assert versions and not any(v for (v,) in versions), "history never stores the placeholder"


def test_add_column_flows_to_bronze_silver_and_history(cdc: CdcEnv) -> None:
    cdc.wait_consistent(("customers",))
    cdc.execute("alter table shop.customers add column loyalty_tier text")
    cdc.execute("update shop.customers set loyalty_tier = 'gold' where customer_id <= 3")
    cdc.wait_consistent(("customers",))
    assert cdc.query(f"select count(*) from {cdc.delta('silver', 'customers')} where loyalty_tier = 'gold'") == [(3,)]
    assert cdc.query(
        f"select count(*) from {cdc.delta('history', 'customers')} where loyalty_tier = 'gold' and is_current"
    ) == [(3,)]
    assert cdc.query(f"select count(*) from {cdc.delta('bronze', 'customers')} where after.loyalty_tier = 'gold'") == [
        (3,)
    ]


@ON_BOTH_TRANSPORTS
def test_incompatible_type_change_stops_only_that_table(cdc: CdcEnv) -> None:
    cdc.wait_consistent(("inventory", "orders"))
    bronze_before = cdc.query(f"select count(*) from {cdc.delta('bronze', 'inventory')}")[0][0]
    cdc.execute("alter table shop.inventory alter column reorder_level type text using 'level-' || reorder_level")
    cdc.execute("update shop.inventory set quantity_on_hand = quantity_on_hand + 1")
    cdc.execute("update shop.orders set status = 'paid' where order_id = 20")
    topic = cdc.settings.cdc_topic("inventory")
    deadline = time.monotonic() + 60
    while len(cdc.topic_messages(topic)) <= bronze_before and time.monotonic() < deadline:
        time.sleep(1)
    # orders keep flowing while inventory is stopped
    deadline = time.monotonic() + 60
    while True:
        report = cdc.sink_once()
        if compare_table(cdc.settings, "orders").equal or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert compare_table(cdc.settings, "orders").equal
    error = report.tables["inventory"].error or ""
    assert "incompatible schema change in inventory.reorder_level" in error
    assert "stay in the stream" in error
    assert cdc.query(f"select count(*) from {cdc.delta('bronze', 'inventory')}")[0][0] == bronze_before
    assert len(cdc.topic_messages(topic)) > bronze_before, "the changes are still in the stream"
    cli = cdc.sink_subprocess("--table", "inventory")
    assert cli.returncode == 3 and "incompatible schema change" in cli.stdout + cli.stderr  # 3: a table is stopped

    # the way out: decide the column's representation, rebuild the table from its topic
    cdc.settings = cdc.settings.model_copy(update={"cdc_column_types": {"inventory.reorder_level": "string"}})
    with CdcSink(cdc.config) as sink:
        dropped = sink.rebuild("inventory")
    assert len(dropped) == 3
    report = cdc.wait_consistent(("inventory", "orders"))
    assert report.tables.get("inventory") is None or report.tables["inventory"].error is None
    replayed = cdc.query(f"select count(*) from {cdc.delta('bronze', 'inventory')}")[0][0]
    assert replayed == len([m for m in cdc.topic_messages(topic) if m[1] is not None])


@ON_BOTH_TRANSPORTS
def test_dead_letters_for_malformed_messages_and_unknown_tables(cdc: CdcEnv) -> None:
    cdc.wait_consistent(("orders",))
    prefix = cdc.settings.cdc_topic_prefix
    cdc.produce(cdc.settings.cdc_topic("orders"), [(b'{"order_id": 1}', b"{this is not json")])
    cdc.produce(
        f"{prefix}.shop.gift_cards",
        [(b'{"id": 1}', _envelope("gift_cards", "c", None, {"id": 1}, 5))],
    )
    cdc.execute("update shop.orders set status = 'paid' where order_id = 30")
    cdc.wait_consistent(("orders",))
    dead = cdc.query(f"select topic, error, value from {cdc.delta('bronze', '_dead_letters')} order by topic")
    errors = {topic: (error, value) for topic, error, value in dead}
    assert errors[cdc.settings.cdc_topic("orders")][0].startswith("malformed JSON")
    assert errors[cdc.settings.cdc_topic("orders")][1] == b"{this is not json"
    assert "unknown table shop.gift_cards" in errors[f"{prefix}.shop.gift_cards"][0]
    cdc.sink_once()
    again = cdc.query(f"select count(*) from {cdc.delta('bronze', '_dead_letters')}")
    assert again == [(len(dead),)], "dead letters are written once"


@ON_BOTH_TRANSPORTS
@pytest.mark.parametrize(
    ("crash_at", "delay"),
    [
        ("bronze-commit:before", 0.0),
        ("bronze-commit:after", 0.0),  # bronze committed, silver and history not
        ("kafka-commit:before", 0.0),  # after every Delta commit, before the Kafka offset commit
        ("silver-merge:start", 0.05),  # SIGKILL while the MERGE runs
        ("history-merge:start", 0.0),  # bronze and silver committed, history not
    ],
)
def test_kill_9_of_the_sink_loses_and_duplicates_nothing(cdc: CdcEnv, crash_at: str, delay: float) -> None:
    cdc.wait_consistent(("orders", "order_items", "payments"))
    generate(cdc.settings, "orders", 300, seed=11)
    cdc.execute("update shop.orders set status = 'shipped' where order_id <= 50")
    time.sleep(3)  # let Debezium publish
    crashed = cdc.sink_subprocess("--crash-at", crash_at, "--crash-delay", str(delay))
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    cdc.wait_consistent()
    cdc.assert_history_consistent()
    cdc.assert_bronze_matches_stream(("orders", "order_items", "payments"))


def test_kill_9_in_the_follow_mode_history_worker(cdc: CdcEnv) -> None:
    """In follow mode history is written by a second worker: the crash hook reaches it too."""
    cdc.wait_consistent(("orders", "order_items", "payments"))
    follower = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "cdc", "sink", "--follow", "--crash-at", "history-merge:start"],
        env={**os.environ, **cdc.settings.to_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        generate(cdc.settings, "orders", 100, seed=12)
        output, _ = follower.communicate(timeout=180)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == -signal.SIGKILL, output[-3000:]
    assert "crash at history-merge:start (cdc-history)" in output, output[-3000:]
    cdc.wait_consistent()
    cdc.assert_history_consistent()


def test_two_sinks_at_once_write_everything_exactly_once(cdc: CdcEnv) -> None:
    cdc.wait_consistent()
    env = {**os.environ, **cdc.settings.to_env()}
    follower = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "cdc", "sink", "--follow"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        from lakehouse.synthetic.simulate import simulate

        simulate(cdc.settings, rate=200, duration=6, seed=5)
        for _ in range(3):
            cdc.sink_once()  # the batch sink races the follower
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(60)
    cdc.wait_consistent()
    cdc.assert_history_consistent()


def test_publisher_restart_resumes_without_a_new_snapshot(cdc: CdcEnv) -> None:
    cdc.wait_consistent(("orders",))
    cdc.stop_publisher()
    cdc.execute("update shop.orders set status = 'delivered' where order_id <= 5")
    cdc.start_publisher()
    cdc.wait_consistent(("orders",))
    ops = dict(cdc.query(f"select op, count(*) from {cdc.delta('bronze', 'orders')} group by 1"))
    assert ops["r"] == 100, "a restart must not snapshot again"


FOLLOW = [sys.executable, "-m", "lakehouse.cli", "cdc", "sink", "--follow"]


def _kill_broker(local_stack: LocalStack) -> None:
    kafka = next(s for s in local_stack.status() if s.name == "kafka")
    os.kill(kafka.pid, signal.SIGKILL)  # type: ignore[arg-type]


def _restore_broker(local_stack: LocalStack) -> None:
    """Bring the session's broker back whatever happened: every later Kafka test needs it (a slow
    start under load is retried rather than left for the next tests to fail on)."""
    for attempt in range(3):
        try:
            local_stack.up(log=lambda _m: None)
            return
        except Exception:
            if attempt == 2:
                raise
            time.sleep(5)


def _stop_follower(follower: subprocess.Popen) -> None:
    follower.send_signal(signal.SIGINT)
    try:
        follower.wait(60)
    except subprocess.TimeoutExpired:
        follower.kill()
        follower.wait(10)


def _silver_behind_bronze(cdc: CdcEnv, status: str) -> None:
    """A change in bronze that silver has not applied (a run killed between the commits)."""
    cdc.execute("update shop.orders set status = %s where order_id between 40 and 45", (status,))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        report = cdc.sink_once(["orders"], downstream=False)
        if report.tables.get("orders") and report.tables["orders"].changes:
            break
        time.sleep(1)
    assert not compare_table(cdc.settings, "orders").equal, "silver must be behind for this test"


def test_follow_mode_survives_the_broker_at_start_up_and_during_catch_up(
    cdc: CdcEnv, local_stack: LocalStack, tmp_path: Path
) -> None:
    """The follower starts while the broker is down (its catch-up needs the topics' partitions from
    Kafka), and a second follower loses the broker in the middle of its catch-up: both wait and then
    repair silver and history."""
    cdc.wait_consistent(("orders",))
    for stage, status in (("start-up", "returned"), ("catch-up", "delivered")):
        _silver_behind_bronze(cdc, status)
        log_path = tmp_path / f"follower-{stage}.log"
        follower: subprocess.Popen | None = None
        try:
            if stage == "start-up":
                _kill_broker(local_stack)
            with log_path.open("w") as log:
                follower = subprocess.Popen(
                    [*FOLLOW, "--table", "orders", "--pause-at", "catch-up:table", "--pause-seconds", "4"],
                    env={**os.environ, **cdc.settings.to_env()},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            deadline = time.monotonic() + 60
            while "paused at catch-up:table" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
            if stage == "catch-up":
                _kill_broker(local_stack)  # while the follower is paused inside its catch-up
            deadline = time.monotonic() + 60  # the partition lookup meets the outage (after its 10 s timeout)
            while "delayed, Kafka unreachable" not in log_path.read_text() and time.monotonic() < deadline:
                assert follower.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.5)
            assert "delayed, Kafka unreachable" in log_path.read_text(), log_path.read_text()[-3000:]
            time.sleep(2)
            assert follower.poll() is None, log_path.read_text()[-3000:]
            local_stack.up(log=lambda _m: None)
            deadline = time.monotonic() + 120
            while not compare_table(cdc.settings, "orders").equal and time.monotonic() < deadline:
                assert follower.poll() is None, log_path.read_text()[-3000:]
                time.sleep(1)
            assert compare_table(cdc.settings, "orders").equal, f"{stage}: silver was not repaired"
        finally:
            try:
                _restore_broker(local_stack)  # first: the next tests need it, whatever happened here
            finally:
                if follower is not None:
                    _stop_follower(follower)
    cdc.assert_history_consistent(("orders",))


def test_broker_restart_loses_nothing(cdc: CdcEnv, local_stack: LocalStack, tmp_path: Path) -> None:
    """A follow-mode sink keeps running across the outage (longer than its topic rediscovery
    interval) and applies the changes made during and after it."""
    cdc.wait_consistent(("orders",))
    log = (tmp_path / "follower.log").open("w")
    follower = subprocess.Popen(
        [sys.executable, "-m", "lakehouse.cli", "cdc", "sink", "--follow"],
        env={**os.environ, **cdc.settings.to_env()},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        time.sleep(3)
        _kill_broker(local_stack)
        cdc.execute("update shop.orders set status = 'returned' where order_id between 60 and 70")
        time.sleep(25)  # > rediscovery interval (10 s) + metadata timeout (10 s): discovery meets the outage
        assert follower.poll() is None, (tmp_path / "follower.log").read_text()[-3000:]
        local_stack.up(log=lambda _m: None)
        cdc.execute("update shop.orders set status = 'delivered' where order_id between 71 and 75")
        deadline = time.monotonic() + 120
        while not compare_table(cdc.settings, "orders").equal and time.monotonic() < deadline:
            assert follower.poll() is None, (tmp_path / "follower.log").read_text()[-3000:]
            time.sleep(1)
        assert compare_table(cdc.settings, "orders").equal, "the follower did not apply the changes"
    finally:
        try:
            _restore_broker(local_stack)  # first: the next tests need it, whatever happened here
        finally:
            _stop_follower(follower)
            log.close()
    cdc.wait_consistent(("orders",), timeout=120)
    cdc.assert_history_consistent(("orders",))
