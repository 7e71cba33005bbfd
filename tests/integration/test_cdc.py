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
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.decode import UNAVAILABLE
from ingestion.cdc.publisher import CdcPublisher, slot_status
from ingestion.cdc.sink import CdcSink, SinkReport
from ingestion.cdc.verify import compare_table
from lakehouse import duck
from lakehouse.settings import OLTP_TABLES, Settings
from lakehouse.stack import LocalStack
from lakehouse.synthetic.entities import generate
from lakehouse.synthetic.schema import ensure_schema


@dataclass
class CdcEnv:
    settings: Settings
    stop: threading.Event = field(default_factory=threading.Event)
    publisher: CdcPublisher | None = None
    thread: threading.Thread | None = None

    # ---------------------------------------------------------------- publisher
    def start_publisher(self) -> None:
        self.stop = threading.Event()
        self.publisher = CdcPublisher(self.settings)
        self.thread = threading.Thread(target=self.publisher.run, args=(self.stop,), daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            slot = slot_status(self.settings)
            if slot and slot["active"]:
                return
            time.sleep(0.3)
        raise AssertionError("Debezium did not open its replication slot within 90 s")

    def stop_publisher(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(60)
            assert not self.thread.is_alive(), "publisher did not stop"

    # ---------------------------------------------------------------- sink
    @property
    def config(self) -> SinkConfig:
        return SinkConfig.from_settings(self.settings)

    def sink_once(self, tables: list[str] | None = None) -> SinkReport:
        with CdcSink(self.config) as sink:
            return sink.run_once(tables=tables)

    def sink_subprocess(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.settings.to_env()}
        return subprocess.run(
            [sys.executable, "-m", "lakehouse.cli", "cdc", "sink", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def wait_consistent(self, tables: tuple[str, ...] = OLTP_TABLES, timeout: float = 90) -> SinkReport:
        """Run the sink until silver equals PostgreSQL for `tables` (Debezium is asynchronous)."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            report = self.sink_once()
            diffs = [compare_table(self.settings, t) for t in tables]
            if all(d.equal for d in diffs):
                self.assert_bronze_unique()
                return report
            last = "; ".join(d.summary() for d in diffs if not d.equal)
            if time.monotonic() > deadline:
                raise AssertionError(f"silver never matched PostgreSQL: {last}")
            time.sleep(1)

    # ---------------------------------------------------------------- lake
    def query(self, sql: str) -> list[tuple]:
        con = duck.connect(self.settings)
        try:
            return con.sql(sql).fetchall()
        finally:
            con.close()

    def delta(self, layer: str, table: str) -> str:
        return f"delta_scan('{self.config.uri(layer, table)}')"  # type: ignore[arg-type]

    def assert_bronze_unique(self) -> None:
        for table in OLTP_TABLES:
            try:
                dupes = self.query(
                    f"select kafka_partition, kafka_offset, count(*) from {self.delta('bronze', table)} "
                    "group by 1, 2 having count(*) > 1"
                )
            except Exception as exc:  # table not created yet
                if "does not exist" in str(exc) or "No files" in str(exc) or "not found" in str(exc).lower():
                    continue
                raise
            assert dupes == [], f"bronze {table} holds (partition, offset) twice: {dupes[:5]}"

    # ---------------------------------------------------------------- source
    def execute(self, statement: str, params: tuple = ()) -> None:
        with psycopg.connect(self.settings.postgres_dsn, autocommit=True) as conn:
            conn.execute(statement, params)  # type: ignore[arg-type]

    def fetch(self, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.settings.postgres_dsn) as conn:
            return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]

    def produce(self, topic: str, messages: list[tuple[bytes | None, bytes | None]]) -> None:
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap})
        for key, value in messages:
            producer.produce(topic, key=key, value=value)
        assert producer.flush(10) == 0

    def topic_messages(self, topic: str) -> list[tuple[int, bytes | None]]:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"inspect-{uuid.uuid4().hex}",
                "enable.partition.eof": True,
            }
        )
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        seen = []
        at_end: set[int] = set()
        try:
            while len(at_end) < len(partitions):
                msg = consumer.poll(15)
                assert msg is not None, "no message or end of partition within 15 s"
                if msg.error():
                    assert msg.error().code() == KafkaError._PARTITION_EOF
                    at_end.add(msg.partition())
                    continue
                seen.append((msg.offset(), msg.value()))
        finally:
            consumer.close()
        return seen


@pytest.fixture
def cdc(isolated_settings: Callable[[], Settings]) -> Iterator[CdcEnv]:
    settings = isolated_settings()
    settings = settings.model_copy(
        update={
            "cdc_slot_name": f"slot_{settings.postgres_db}",
            "state_dir": settings.state_path / settings.postgres_db,
        }
    )
    ensure_schema(settings)
    generate(settings, "customers", 50, seed=7)
    generate(settings, "products", 20, seed=7)
    generate(settings, "orders", 100, seed=7)
    env = CdcEnv(settings)
    env.start_publisher()
    yield env
    env.stop_publisher()
    from ingestion.cdc.publisher import drop_slot

    drop_slot(settings)


def test_snapshot_then_streaming_inserts_updates_deletes(cdc: CdcEnv) -> None:
    report = cdc.wait_consistent()
    snapshot = cdc.query(f"select op, count(*) from {cdc.delta('bronze', 'orders')} group by 1")
    assert dict(snapshot) == {"r": 100}
    assert report.tables["orders"].error is None

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
        f"select * exclude (_cdc_lsn, _cdc_op, _cdc_source_ts, _cdc_deleted, _cdc_updated_at) "
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
    assert "stay in Kafka" in error
    assert cdc.query(f"select count(*) from {cdc.delta('bronze', 'inventory')}")[0][0] == bronze_before
    assert len(cdc.topic_messages(topic)) > bronze_before, "the changes are still in Kafka"
    cli = cdc.sink_subprocess("--table", "inventory")
    assert cli.returncode == 1 and "incompatible schema change" in cli.stdout + cli.stderr

    # the way out: decide the column's representation, rebuild the table from its topic
    cdc.settings = cdc.settings.model_copy(update={"cdc_column_types": {"inventory.reorder_level": "string"}})
    with CdcSink(cdc.config) as sink:
        dropped = sink.rebuild("inventory")
    assert len(dropped) == 3
    report = cdc.wait_consistent(("inventory", "orders"))
    assert report.tables.get("inventory") is None or report.tables["inventory"].error is None
    replayed = cdc.query(f"select count(*) from {cdc.delta('bronze', 'inventory')}")[0][0]
    assert replayed == len([m for m in cdc.topic_messages(topic) if m[1] is not None])


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


@pytest.mark.parametrize(
    ("crash_at", "delay"),
    [
        ("bronze-commit:before", 0.0),
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


def test_publisher_restart_resumes_without_a_new_snapshot(cdc: CdcEnv) -> None:
    cdc.wait_consistent(("orders",))
    cdc.stop_publisher()
    cdc.execute("update shop.orders set status = 'delivered' where order_id <= 5")
    cdc.start_publisher()
    cdc.wait_consistent(("orders",))
    ops = dict(cdc.query(f"select op, count(*) from {cdc.delta('bronze', 'orders')} group by 1"))
    assert ops["r"] == 100, "a restart must not snapshot again"


def test_broker_restart_loses_nothing(cdc: CdcEnv, local_stack: LocalStack) -> None:
    cdc.wait_consistent(("orders",))
    kafka = next(s for s in local_stack.status() if s.name == "kafka")
    os.kill(kafka.pid, signal.SIGKILL)  # type: ignore[arg-type]
    cdc.execute("update shop.orders set status = 'returned' where order_id between 60 and 70")
    local_stack.up(log=lambda _m: None)
    cdc.wait_consistent(("orders",), timeout=120)
