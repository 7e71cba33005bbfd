"""The sink against the real local services without Debezium: crafted messages on the session's
tansu broker, Delta tables on the S3 emulator (conditional PUT).

- two sinks creating the same table at once: one wins, the other is fenced (no duplicate rows);
- a topic recreated under the sink (its stored position lies beyond the new log): the table stops
  with a clear error instead of skipping offsets, normal restarts at the log end do not.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import boto3
import pyarrow as pa
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import DeltaTable

from ingestion.cdc.config import SinkConfig
from ingestion.cdc.lake import CommitFailedError, DeltaStore
from ingestion.cdc.monitor import tables_with_new_data
from ingestion.cdc.publisher import KinesisPublishingHandler
from ingestion.cdc.sink import CdcSink, OffsetOutOfRange
from lakehouse.kafka import client_config
from lakehouse.settings import Settings
from tests.fixtures.races import race_two_creators


def test_two_creators_of_one_table_on_s3_one_is_fenced(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    config = SinkConfig.from_settings(settings)
    for attempt in range(3):
        uri = config.uri("bronze", f"race_{attempt}")
        outcomes = race_two_creators(uri, config.storage_options)
        assert sorted(outcomes.values()) == ["created", "fenced"], outcomes
        rows = DeltaTable(uri, storage_options=config.storage_options).to_pyarrow_table()
        assert rows.num_rows == 1
    # and a creator that comes late finds the table there
    with pytest.raises(CommitFailedError):
        DeltaStore(config.storage_options).append(config.uri("bronze", "race_0"), None, pa.table({"writer": [3]}), {})


def _envelope(customer_id: int, lsn: int, table: str = "customers") -> bytes:
    source = {"schema": "shop", "table": table, "lsn": lsn, "txId": lsn, "ts_ms": 1_795_456_446_000 + lsn}
    after = {"customer_id": customer_id, "email": f"{customer_id}@example.invalid"}
    return json.dumps({"before": None, "after": after, "source": source, "op": "c"}).encode()


def _create_topic(settings: Settings, topic: str) -> None:
    admin = AdminClient(client_config(settings))
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(15)


def _produce(settings: Settings, topic: str, ids: range) -> None:
    producer = Producer(client_config(settings))
    for i in ids:
        producer.produce(topic, key=json.dumps({"customer_id": i}).encode(), value=_envelope(i, 100 + i))
    assert producer.flush(10) == 0


def test_recreated_topic_stops_the_table_instead_of_skipping_offsets(isolated_settings: Callable[[], Settings]) -> None:
    settings = isolated_settings()
    config = SinkConfig.from_settings(settings)
    topic = config.topic("customers")
    _create_topic(settings, topic)
    _produce(settings, topic, range(5))
    with CdcSink(config) as sink:
        assert sink.run_once(["customers"], timeout=60).tables["customers"].changes == 5
    # a restart exactly at the log end, and one more change (inside the last batch): business as usual
    with CdcSink(config) as sink:
        report = sink.run_once(["customers"], timeout=60)
    assert report.tables.get("customers") is None or report.tables["customers"].error is None
    _produce(settings, topic, range(5, 6))
    with CdcSink(config) as sink:
        assert sink.run_once(["customers"], timeout=60).tables["customers"].changes == 1

    # the topic is recreated (e.g. by mistake) and holds fewer messages than the lake has applied
    admin = AdminClient(client_config(settings))
    admin.delete_topics([topic])[topic].result(15)
    deadline = time.monotonic() + 15
    while topic in admin.list_topics(timeout=5).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    _create_topic(settings, topic)
    _produce(settings, topic, range(100, 102))
    assert "customers" in tables_with_new_data(config), "the sensor must launch the run that reports it"
    with CdcSink(config) as sink:
        started = time.monotonic()
        report = sink.run_once(["customers"], timeout=60)
        assert time.monotonic() - started < 30, "the error must come quickly, not as a timeout"
    error = report.tables["customers"].error or ""
    assert "offset out of range for customers" in error and "up to offset 5" in error, error
    bronze = DeltaTable(config.uri("bronze", "customers"), storage_options=config.storage_options)
    assert bronze.to_pyarrow_table().num_rows == 6, "nothing of the new topic was written"

    # follow mode stops with the same error (not silently skipping)
    with CdcSink(config) as sink, pytest.raises(OffsetOutOfRange):
        sink.follow(threading.Event(), tables=["customers"])

    # the way out: rebuild the table from the (new) topic
    with CdcSink(config) as sink:
        sink.rebuild("customers")
    with CdcSink(config) as sink:
        report = sink.run_once(["customers"], timeout=60)
    assert report.tables["customers"].error is None and report.tables["customers"].changes == 2


def test_recreated_kinesis_stream_stops_the_tables_and_a_rebuilt_one_flows(
    isolated_settings: Callable[[], Settings],
) -> None:
    """The same on the Kinesis stream shared by all tables (on the emulator): positions that the
    recreated stream does not hold stop their tables, loudly; a rebuilt table flows again while the
    other stays stopped (a stopped table never blocks the others)."""
    settings = isolated_settings().model_copy(update={"cdc_transport": "kinesis"})
    config = SinkConfig.from_settings(settings)
    publisher = KinesisPublishingHandler(settings)

    def publish(table: str, ids: range) -> None:
        records = [
            (config.topic(table), json.dumps({"customer_id": i}).encode(), _envelope(i, 100 + i, table)) for i in ids
        ]
        publisher.publish(records)

    publish("customers", range(5))
    publish("addresses", range(3))
    with CdcSink(config) as sink:
        report = sink.run_once(timeout=60)
    assert report.tables["customers"].changes == 5 and report.tables["addresses"].changes == 3

    client = boto3.client("kinesis", **settings.boto3_kwargs())
    client.delete_stream(StreamName=settings.kinesis_stream)
    publisher = KinesisPublishingHandler(settings)  # creates it again: its sequence numbers start over
    publish("customers", range(100, 102))
    assert {"customers", "addresses"} <= set(tables_with_new_data(config)), (
        "the sensor must launch the run that reports it"
    )
    with CdcSink(config) as sink:
        report = sink.run_once(timeout=60)
    for table in ("customers", "addresses"):
        assert f"offset out of range for {table}" in (report.tables[table].error or ""), report.tables[table]
    assert (
        DeltaTable(config.uri("bronze", "customers"), storage_options=config.storage_options)
        .to_pyarrow_table()
        .num_rows
        == 5
    )

    with CdcSink(config) as sink:
        sink.rebuild("customers")
    with CdcSink(config) as sink:
        report = sink.run_once(timeout=60)
    assert report.tables["customers"].error is None and report.tables["customers"].changes == 2
    assert "offset out of range for addresses" in (report.tables["addresses"].error or "")


def test_kinesis_stream_with_several_shards_keeps_each_keys_order(
    isolated_settings: Callable[[], Settings],
) -> None:
    """Three shards on the emulator, two tables, 40 keys changed five times each, published in
    batches and read by two runs: every record lands in bronze once, each key's changes sit in one
    shard and were read in LSN order, and silver holds each key's last change."""
    settings = isolated_settings().model_copy(update={"cdc_transport": "kinesis", "cdc_kinesis_shards": 3})
    config = SinkConfig.from_settings(settings)
    publisher = KinesisPublishingHandler(settings)
    client = boto3.client("kinesis", **settings.boto3_kwargs())
    assert len(client.list_shards(StreamName=settings.kinesis_stream)["Shards"]) == 3

    def publish(version: int) -> None:
        records = []
        for table in ("customers", "addresses"):
            for i in range(40):
                envelope = json.loads(_envelope(i, 1_000 * version + i, table))
                envelope["op"], envelope["after"]["email"] = ("c" if version == 0 else "u"), f"v{version}"
                records.append(
                    (config.topic(table), json.dumps({"customer_id": i}).encode(), json.dumps(envelope).encode())
                )
        publisher.publish(records)

    for version in range(3):
        publish(version)
    with CdcSink(config) as sink:
        first = sink.run_once(timeout=60)
    assert first.tables["customers"].changes == 120 and first.tables["addresses"].changes == 120
    for version in range(3, 5):
        publish(version)
    with CdcSink(config) as sink:
        second = sink.run_once(timeout=60)
    assert second.tables["customers"].changes == 80 and second.tables["addresses"].changes == 80
    for table in ("customers", "addresses"):
        bronze = DeltaTable(config.uri("bronze", table), storage_options=config.storage_options).to_pyarrow_table()
        assert bronze.num_rows == 200
        rows = sorted(
            zip(
                bronze["kafka_partition"].to_pylist(),
                bronze["kafka_offset"].to_pylist(),
                bronze["kafka_key"].to_pylist(),
                bronze["lsn"].to_pylist(),
                strict=True,
            )
        )
        assert len({(shard, offset) for shard, offset, _key, _lsn in rows}) == 200
        assert len({shard for shard, _offset, _key, _lsn in rows}) > 1, "40 keys over 3 shards use more than one"
        by_key: dict[str, list[tuple[int, int]]] = {}
        for shard, _offset, key, lsn in rows:
            by_key.setdefault(key, []).append((shard, lsn))
        for key, changes in by_key.items():
            assert len({shard for shard, _lsn in changes}) == 1, f"{table} {key}: changes in several shards"
            lsns = [lsn for _shard, lsn in changes]
            assert lsns == sorted(lsns) and len(lsns) == 5, f"{table} {key}: read out of order: {lsns}"
        silver = DeltaTable(config.uri("silver", table), storage_options=config.storage_options).to_pyarrow_table()
        assert sorted(silver["customer_id"].to_pylist()) == list(range(40))
        assert set(silver["email"].to_pylist()) == {"v4"}
